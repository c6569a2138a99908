//! `export` and `import`: sessions to and from other tools' formats.
//!
//! Progress goes to stderr: a bar on a terminal, a plain line every few
//! seconds otherwise. Ctrl-C (or SIGTERM) stops the work and leaves no
//! output file; the one-line summary goes to stdout.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use integr8tor::envelope::Topic;
use integr8tor::export::{self, Control, ExportError, ExportOptions, Format, Progress};
use integr8tor::human;

use super::Outcome;

/// `integr8tor export FILE OUT [--format F] [--from TS_MS] [--to TS_MS] [--topics T,...] [--force]`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The session file.
    pub file: PathBuf,
    /// The file to write.
    pub out: PathBuf,
    /// csv, sqlite, mcap or jsonl (default: from OUT's extension).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Only records at or after this instant (ms since the Unix epoch, as `ts_ms`).
    #[arg(long, value_name = "TS_MS", allow_negative_numbers = true)]
    pub from: Option<i64>,
    /// Only records at or before this instant.
    #[arg(long, value_name = "TS_MS", allow_negative_numbers = true)]
    pub to: Option<i64>,
    /// Only these topics (`noise.params` or `params`, ...; comma-separated or repeated).
    #[arg(long, value_name = "TOPIC", num_args = 1.., value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `integr8tor import DB OUT [--force]`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The SQLite recording (a `params(ts_ms, path, value, actor)` table, or an export).
    pub db: PathBuf,
    /// The session file to write (`.msgpack`).
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Set by SIGINT or SIGTERM.
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .context("installing the signal handlers")?;
    }
    Ok(flag)
}

/// Shows progress on stderr: a bar on a terminal, else a line every few seconds.
struct Shown {
    bar: Option<ProgressBar>,
    what: String,
    bytes: bool,
    last_line: Instant,
}

const LINE_EVERY: Duration = Duration::from_secs(2);

impl Shown {
    fn new(what: String, bytes: bool) -> Shown {
        let bar = std::io::stderr().is_terminal().then(|| {
            let template = if bytes {
                "{msg} [{bar:40}] {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            } else {
                "{msg} [{bar:40}] {percent:>3}% {pos}/{len} rows {per_sec} eta {eta}"
            };
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.clone());
            bar
        });
        if bar.is_none() {
            eprintln!("integr8tor: {what}");
        }
        Shown {
            bar,
            what,
            bytes,
            last_line: Instant::now(),
        }
    }

    fn update(&mut self, p: Progress) {
        if let Some(bar) = &self.bar {
            bar.set_length(p.total);
            bar.set_position(p.done);
            return;
        }
        if self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            let done = if self.bytes {
                format!("{} of {}", human::bytes(p.done), human::bytes(p.total))
            } else {
                format!("{} of {} rows", p.done, p.total)
            };
            eprintln!(
                "integr8tor: {}: {:.0}% ({done}, {} records)",
                self.what,
                p.fraction() * 100.0,
                p.records
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The library's error with the command line's hints.
fn explain(e: ExportError) -> anyhow::Error {
    match e {
        ExportError::Exists(p) => {
            anyhow::anyhow!("{}: already exists; --force replaces it", p.display())
        }
        other => other.into(),
    }
}

/// Canonical topic names from `noise.params` or `params`.
fn topic_names(given: &[String]) -> anyhow::Result<Vec<String>> {
    given
        .iter()
        .map(|t| {
            let t = t.trim();
            let full = if t.starts_with("noise.") {
                t.to_owned()
            } else {
                format!("noise.{t}")
            };
            match Topic::from_name(&full) {
                Some(topic) => Ok(topic.name().to_owned()),
                None => anyhow::bail!(
                    "unknown topic `{t}` (noise.params, noise.mod, noise.audio, noise.events, noise.state)"
                ),
            }
        })
        .collect()
}

fn format_of(explicit: Option<Format>, out: &Path) -> anyhow::Result<Format> {
    match explicit.or_else(|| Format::from_path(out)) {
        Some(f) => Ok(f),
        None => anyhow::bail!(
            "{}: cannot tell the format from the extension; use --format csv|sqlite|mcap|jsonl \
             (or name it .csv, .db, .mcap, .jsonl)",
            out.display()
        ),
    }
}

/// Exports a session file.
pub fn export(a: ExportArgs) -> anyhow::Result<Outcome> {
    let format = format_of(a.format, &a.out)?;
    if let (Some(f), Some(t)) = (a.from, a.to) {
        if t < f {
            anyhow::bail!("--to ({t}) is before --from ({f})");
        }
    }
    let opts = ExportOptions {
        from: a.from,
        to: a.to,
        topics: topic_names(&a.topics)?,
        force: a.force,
    };
    let stop = stop_flag()?;
    let started = Instant::now();
    let mut shown = Shown::new(
        format!(
            "exporting {} to {} ({format})",
            a.file.display(),
            a.out.display()
        ),
        true,
    );
    let result = {
        let mut ctl = Control::new(&stop, |p| shown.update(p));
        export::export(&a.file, &a.out, format, &opts, &mut ctl)
    };
    shown.finish();
    let stats = result.map_err(explain)?;
    let secs = started.elapsed().as_secs_f64();
    let mut line = format!(
        "exported {} events and {} snapshots to {} ({}, {:.2} s",
        stats.events,
        stats.snapshots,
        a.out.display(),
        human::bytes(stats.output_bytes),
        secs
    );
    if stats.skipped > 0 {
        line.push_str(&format!(
            "; {} records on topics {format} has no table for were left out",
            stats.skipped
        ));
    }
    line.push(')');
    println!("{line}");
    Ok(Outcome::Ok)
}

/// Imports an SQLite recording into a session file.
pub fn import(a: ImportArgs) -> anyhow::Result<Outcome> {
    let stop = stop_flag()?;
    let started = Instant::now();
    let mut shown = Shown::new(
        format!("importing {} to {}", a.db.display(), a.out.display()),
        false,
    );
    let result = {
        let mut ctl = Control::new(&stop, |p| shown.update(p));
        export::import_sqlite(&a.db, &a.out, a.force, &mut ctl)
    };
    shown.finish();
    let stats = result.map_err(explain)?;
    println!(
        "imported {} events and {} snapshots to {} ({}, {:.2} s)",
        stats.events,
        stats.snapshots,
        a.out.display(),
        human::bytes(stats.output_bytes),
        started.elapsed().as_secs_f64()
    );
    Ok(Outcome::Ok)
}
