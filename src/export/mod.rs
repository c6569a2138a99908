//! Sessions in other tools: exports to CSV, SQLite, MCAP and JSON Lines, and
//! imports of SQLite recordings.
//!
//! Every export streams the session file in file (arrival) order with the
//! session [`Reader`](crate::session::Reader) on a reader thread, which
//! decodes each record and hands what the format needs to the writing
//! thread in batches of a few thousand records (a few in flight), so that
//! both cores work and memory does not grow with the file. Output goes to a temporary file beside the target and is renamed
//! into place only when it is complete; an error, a truncated or corrupt
//! input, or a cancel leaves no output at all, and an existing file is only
//! replaced when the caller asked for it.
//!
//! The JSON spelling of records and envelopes is in [`json`]; the columns of
//! each format are described in its module.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::session::ReadError;

pub mod csv;
pub mod import;
pub mod json;
pub mod jsonl;
pub mod mcap;
mod mcap_file;
mod output;
mod source;
pub mod sqlite;

pub use import::{import_sqlite, ImportStats};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Comma-separated values, one row per event ([`csv`]).
    Csv,
    /// An SQLite database with one table per kind of record ([`sqlite`]).
    Sqlite,
    /// MCAP with JSON messages, for Foxglove ([`mcap`]).
    Mcap,
    /// JSON Lines, one object per record ([`jsonl`]).
    Jsonl,
}

impl Format {
    /// Every format, in the order menus show them.
    pub const ALL: [Format; 4] = [Format::Csv, Format::Sqlite, Format::Mcap, Format::Jsonl];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Sqlite => "sqlite",
            Format::Mcap => "mcap",
            Format::Jsonl => "jsonl",
        }
    }

    /// The usual file extension (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Sqlite => "db",
            Format::Mcap => "mcap",
            Format::Jsonl => "jsonl",
        }
    }

    /// The format a file name's extension implies (`.csv`, `.db`, `.sqlite`,
    /// `.sqlite3`, `.mcap`, `.jsonl`, `.ndjson`), if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "db" | "sqlite" | "sqlite3" => Some(Format::Sqlite),
            "mcap" => Some(Format::Mcap),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown format `{s}` (csv, sqlite, mcap or jsonl)"))
    }
}

/// What to export and how to write it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Only records with `ts_ms >= from`.
    pub from: Option<i64>,
    /// Only records with `ts_ms <= to`.
    pub to: Option<i64>,
    /// Only events on these topics (empty: every topic). Snapshots are kept
    /// when `noise.params` is among them.
    pub topics: Vec<String>,
    /// Replace an existing output file.
    pub force: bool,
}

/// How far a long export or import has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Units done: input bytes for exports, rows for imports.
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// Records written so far.
    pub records: u64,
}

impl Progress {
    /// Done as a fraction of the total, 0..=1.
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            (self.done as f64 / self.total as f64).min(1.0) as f32
        }
    }
}

/// Records between two progress reports and cancel checks.
const PROGRESS_EVERY: u64 = 8192;

/// Progress reporting and cancellation for a long export or import.
pub struct Control<'a> {
    cancel: Option<&'a AtomicBool>,
    on_progress: Box<dyn FnMut(Progress) + 'a>,
}

impl<'a> Control<'a> {
    /// No progress reports, no cancel.
    pub fn none() -> Control<'static> {
        Control {
            cancel: None,
            on_progress: Box::new(|_| {}),
        }
    }

    /// Reports progress to `on_progress` and stops when `cancel` turns true.
    pub fn new(cancel: &'a AtomicBool, on_progress: impl FnMut(Progress) + 'a) -> Control<'a> {
        Control {
            cancel: Some(cancel),
            on_progress: Box::new(on_progress),
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Reports `p`; fails when the caller has asked to stop.
    fn tick(&mut self, p: Progress, out: &Path) -> Result<(), ExportError> {
        (self.on_progress)(p);
        if self.cancelled() {
            return Err(ExportError::Cancelled(out.to_owned()));
        }
        Ok(())
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Event records exported.
    pub events: u64,
    /// Snapshot records exported.
    pub snapshots: u64,
    /// Records in range that the format has no place for (SQLite keeps
    /// params, mod, events and snapshots; `noise.audio`, `noise.state` and
    /// other topics are counted here).
    pub skipped: u64,
    /// Bytes of the input read.
    pub input_bytes: u64,
    /// Bytes of the output file.
    pub output_bytes: u64,
    /// Messages written (MCAP: a parameter change is on its topic's channel
    /// and on its path's channel); equals `events + snapshots` elsewhere.
    pub messages: u64,
}

/// Why an export or import failed. Whatever the reason, the output file
/// was not created (or left as it was).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The session file could not be read, or is corrupt (the reader's
    /// message names the byte offset).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The session file ends inside a record.
    #[error(
        "{}: truncated at byte {offset}: the last record is cut short ({dropped} bytes); \
         `integr8tor check {} --recover OUT` keeps the records before it",
        path.display(), path.display()
    )]
    Truncated {
        /// The input.
        path: PathBuf,
        /// Where the cut-short record starts.
        offset: u64,
        /// Its bytes present.
        dropped: u64,
    },
    /// A record the reader accepted but whose envelope is not valid.
    #[error("{}: record at byte {offset}: {reason}", path.display())]
    Record {
        /// The input.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The output exists and replacing it was not asked for.
    #[error("{}: already exists", .0.display())]
    Exists(PathBuf),
    /// The output would replace the input.
    #[error("{}: is the input file", .0.display())]
    SameFile(PathBuf),
    /// Reading or writing a file failed (a full disk, a missing folder...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The output format's library refused (SQLite, MCAP, CSV).
    #[error("{}: {message}", path.display())]
    Output {
        /// The output file.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
    /// An import's database is not a recording this project can read.
    #[error("{}: {message}", path.display())]
    NotARecording {
        /// The database.
        path: PathBuf,
        /// What it lacks.
        message: String,
    },
    /// The caller cancelled; nothing was written.
    #[error("cancelled; {} was not written", .0.display())]
    Cancelled(PathBuf),
}

/// Exports the session file `input` to `out` in `format`.
pub fn export(
    input: &Path,
    out: &Path,
    format: Format,
    opts: &ExportOptions,
    ctl: &mut Control<'_>,
) -> Result<ExportStats, ExportError> {
    let staged = output::Staged::create(out, Some(input), opts.force)?;
    let mut stats = match format {
        Format::Csv => csv::write(input, &staged, opts, ctl)?,
        Format::Sqlite => sqlite::write(input, &staged, opts, ctl)?,
        Format::Mcap => mcap::write(input, &staged, opts, ctl)?,
        Format::Jsonl => jsonl::write(input, &staged, opts, ctl)?,
    };
    stats.output_bytes = staged.commit()?;
    Ok(stats)
}
