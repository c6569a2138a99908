//! Small drawing helpers shared by the panels: time and size formatting, colours.

use egui::Color32;

/// The recording red.
pub const REC_RED: Color32 = Color32::from_rgb(0xE5, 0x48, 0x4D);
/// The accent for the playhead and active transport.
pub const PLAYHEAD: Color32 = Color32::from_rgb(0xFF, 0xB0, 0x20);
/// Pinned paths.
pub const PIN: Color32 = Color32::from_rgb(0x4D, 0xB6, 0xFF);
/// Good state.
pub const OK_GREEN: Color32 = Color32::from_rgb(0x4C, 0xC3, 0x6B);
/// Warning state.
pub const WARN: Color32 = Color32::from_rgb(0xF2, 0xA5, 0x3A);

/// `mm:ss.t` (or `h:mm:ss` past an hour) for a duration in ms.
pub fn fmt_clock(ms: i64) -> String {
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let (h, m, s, tenths) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        (ms % 1000) / 100,
    );
    let sign = if neg { "-" } else { "" };
    if h > 0 {
        format!("{sign}{h}:{m:02}:{s:02}")
    } else {
        format!("{sign}{m:02}:{s:02}.{tenths}")
    }
}

pub use crate::human::bytes as fmt_bytes;

/// `12,345`-style counts.
pub fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub use crate::human::date_time as fmt_date;

/// Shortens `text` to at most `max` characters by cutting out its middle
/// (`/home/me/…/gig.msgpack`), so both the start and the file name stay.
pub fn elide_middle(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max || max < 5 {
        return text.to_owned();
    }
    let keep = max - 1;
    let head = keep / 2;
    let tail = keep - head;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// A label showing `text` elided in the middle to fit about `width`
/// points, with the whole text on hover.
pub fn elided_label(
    ui: &mut egui::Ui,
    text: &str,
    width: f32,
    rich: impl Fn(String) -> egui::RichText,
) -> egui::Response {
    let char_w = 7.0;
    let max = ((width / char_w) as usize).max(8);
    let shown = elide_middle(text, max);
    let r = ui.add(egui::Label::new(rich(shown.clone())).wrap_mode(egui::TextWrapMode::Extend));
    if shown != text {
        r.on_hover_text(text)
    } else {
        r
    }
}

/// Blends two colours (t = 0: a, 1: b).
pub fn lerp_color(a: Color32, b: Color32, t: f32) -> Color32 {
    let t = t.clamp(0.0, 1.0);
    let mix = |x: u8, y: u8| (f32::from(x) + (f32::from(y) - f32::from(x)) * t).round() as u8;
    Color32::from_rgba_unmultiplied(
        mix(a.r(), b.r()),
        mix(a.g(), b.g()),
        mix(a.b(), b.b()),
        mix(a.a(), b.a()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_clock(0), "00:00.0");
        assert_eq!(fmt_clock(61_234), "01:01.2");
        assert_eq!(fmt_clock(3_723_000), "1:02:03");
        assert_eq!(fmt_clock(-1500), "-00:01.5");
        assert_eq!(fmt_bytes(999), "999 B");
        assert_eq!(fmt_bytes(3_300_793), "3.3 MB");
        assert_eq!(fmt_count(30_293), "30,293");
        assert_eq!(fmt_count(7), "7");
        assert_eq!(fmt_count(1_000_000), "1,000,000");
        assert_eq!(elide_middle("short", 10), "short");
        let e = elide_middle(
            "/home/performer/sessions/session-2026-11-25-162250.msgpack",
            24,
        );
        assert_eq!(e.chars().count(), 24);
        assert!(
            e.starts_with("/home/perfo") && e.ends_with("2250.msgpack"),
            "{e}"
        );
    }
}
