//! Numbers as people read them, shared by the CLI and the app.

/// `1.2 MB`-style sizes (decimal units, as file managers show them).
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Unix ms as a wall-clock time in the machine's time zone, formatted with
/// `chrono`'s `strftime` syntax.
fn local(unix_ms: i64, format: &str) -> String {
    in_zone(&chrono::Local, unix_ms, format)
}

fn in_zone<Tz: chrono::TimeZone>(zone: &Tz, unix_ms: i64, format: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    match zone.timestamp_millis_opt(unix_ms).earliest() {
        Some(t) => t.format(format).to_string(),
        // beyond chrono's range (±262,000 years): say what it is
        None => format!("{unix_ms} ms"),
    }
}

const DATE_TIME: &str = "%Y-%m-%d %H:%M";
const TIME_OF_DAY: &str = "%H:%M:%S%.3f";
const FILE_STAMP: &str = "%Y-%m-%d-%H%M%S";

/// `2026-11-25 19:51`: a date and time, local.
pub fn date_time(unix_ms: i64) -> String {
    local(unix_ms, DATE_TIME)
}

/// `19:51:03.321`: a time of day with milliseconds, local.
pub fn time_of_day(unix_ms: i64) -> String {
    local(unix_ms, TIME_OF_DAY)
}

/// `2026-11-25-195103`: a date and time for a file name, local.
pub fn file_stamp(unix_ms: i64) -> String {
    local(unix_ms, FILE_STAMP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    #[test]
    fn sizes() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 KB");
        assert_eq!(bytes(404_000_000), "404.0 MB");
    }

    #[test]
    fn wall_clock_times_follow_the_zone() {
        let utc = |ms, f| in_zone(&Utc, ms, f);
        assert_eq!(utc(0, DATE_TIME), "1970-01-01 00:00");
        // 2024-02-29 23:59:59.999 UTC, a leap day
        assert_eq!(utc(1_709_251_199_999, FILE_STAMP), "2024-02-29-235959");
        assert_eq!(utc(1_709_251_200_000, FILE_STAMP), "2024-03-01-000000");
        assert_eq!(utc(1_795_623_770_321, TIME_OF_DAY), "16:22:50.321");
        assert_eq!(utc(-1000, FILE_STAMP), "1969-12-31-235959");
        // the same instants an hour east and five and a half hours west
        let cet = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            in_zone(&cet, 1_709_251_199_999, FILE_STAMP),
            "2024-03-01-005959"
        );
        let west = FixedOffset::west_opt(5 * 3600 + 1800).unwrap();
        assert_eq!(in_zone(&west, 0, DATE_TIME), "1969-12-31 18:30");
        assert_eq!(utc(i64::MAX, DATE_TIME), format!("{} ms", i64::MAX));
    }
}

/// Text from data made safe to print: control characters (ESC, CR, BEL,
/// C1 controls...) and the bidirectional overrides are written as escapes
/// (`\u{1b}`), so no producer can move the cursor or recolour a terminal.
/// Printable text comes back borrowed.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`escape`] for bytes that may not be UTF-8 (invalid bytes become U+FFFD).
pub fn escape_bytes(b: &[u8]) -> String {
    escape(&String::from_utf8_lossy(b)).into_owned()
}

#[cfg(test)]
mod escape_tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_untouched() {
        assert!(matches!(
            escape("gen.1.cutoff é"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            escape("a\x1b[2Jb\r\n\u{7}"),
            "a\\u{1b}[2Jb\\u{d}\\u{a}\\u{7}"
        );
        assert_eq!(escape("x\u{202e}y\u{9b}"), "x\\u{202e}y\\u{9b}");
        assert_eq!(escape_bytes(b"k\xff\x1b"), "k\u{fffd}\\u{1b}");
    }
}
