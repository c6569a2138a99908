//! `info`, `state` and `check`: session files from the command line.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use integr8tor::human::escape;
use integr8tor::session::{ReadOptions, Reader, Session};
use serde::Serialize;

use super::Outcome;

/// `integr8tor info FILE [--json]`
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The session file.
    pub file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `integr8tor state FILE --at TS_MS [--json]`
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The session file.
    pub file: PathBuf,
    /// The instant, in milliseconds since the Unix epoch (as `ts_ms`).
    #[arg(long, value_name = "TS_MS", allow_negative_numbers = true)]
    pub at: i64,
    /// Print one JSON object (path → value) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `integr8tor check FILE [--recover OUT]`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The session file.
    pub file: PathBuf,
    /// Write every readable record to OUT (a new file).
    #[arg(long, value_name = "OUT")]
    pub recover: Option<PathBuf>,
}

#[derive(Serialize)]
struct Info<'a> {
    file: String,
    event_records: u64,
    snapshot_records: u64,
    by_topic: BTreeMap<&'a str, u64>,
    first_ts_ms: Option<i64>,
    last_ts_ms: Option<i64>,
    duration_ms: i64,
    param_paths: Vec<&'a str>,
    producers: Vec<&'a str>,
    session_ids: Vec<&'a str>,
    dropped_bytes: u64,
    unknown_records: u64,
    file_bytes: u64,
}

fn load(file: &Path) -> anyhow::Result<Session> {
    Session::open(file).map_err(|e| {
        let hint = match e {
            integr8tor::session::LoadError::Read(integr8tor::session::ReadError::Corrupt {
                ..
            }) => format!(
                " (run `integr8tor check {} --recover OUT` to salvage the records before it)",
                file.display()
            ),
            _ => String::new(),
        };
        anyhow::anyhow!("{e}{hint}")
    })
}

/// Summarizes a session.
pub fn info(a: InfoArgs) -> anyhow::Result<Outcome> {
    let s = load(&a.file)?;
    let report = s.read_report();
    let (first, last) = match s.time_range() {
        Some((f, l)) => (Some(f), Some(l)),
        None => (None, None),
    };
    let info = Info {
        file: a.file.display().to_string(),
        event_records: report.event_records,
        snapshot_records: report.snapshot_records,
        by_topic: s.by_topic().into_iter().collect(),
        first_ts_ms: first,
        last_ts_ms: last,
        duration_ms: last.zip(first).map_or(0, |(l, f)| l - f),
        param_paths: s.param_paths().collect(),
        producers: s.producers(),
        session_ids: s.session_ids(),
        dropped_bytes: report.dropped_bytes,
        unknown_records: report.unknown_records,
        file_bytes: s.file_bytes(),
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &info)?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    // text from the file (topics, paths, producers, ids) is escaped: no
    // control character of a hostile producer reaches the terminal
    writeln!(out, "file:        {}", escape(&info.file))?;
    writeln!(
        out,
        "records:     {} events, {} snapshots, {} of unknown type",
        info.event_records, info.snapshot_records, info.unknown_records
    )?;
    for (t, n) in &info.by_topic {
        writeln!(out, "  {:<14} {n}", escape(t))?;
    }
    match (first, last) {
        (Some(f), Some(l)) => writeln!(
            out,
            "time:        {f} .. {l} ({:.3} s)",
            (l - f) as f64 / 1000.0
        )?,
        _ => writeln!(out, "time:        no events")?,
    }
    writeln!(out, "parameters:  {}", info.param_paths.len())?;
    for p in &info.param_paths {
        writeln!(out, "  {}", escape(p))?;
    }
    writeln!(out, "producers:   {}", escape(&info.producers.join(", ")))?;
    writeln!(out, "sessions:    {}", escape(&info.session_ids.join(", ")))?;
    if info.dropped_bytes > 0 {
        writeln!(
            out,
            "truncated:   last record cut short, {} bytes dropped",
            info.dropped_bytes
        )?;
    }
    Ok(Outcome::Ok)
}

/// Prints the exact state at an instant.
pub fn state(a: StateArgs) -> anyhow::Result<Outcome> {
    let s = load(&a.file)?;
    let state = s.state_at(a.at);
    let mut out = std::io::stdout().lock();
    if a.json {
        // serde_json prints the shortest text that reads back as the same f64
        let map: serde_json::Map<String, serde_json::Value> = state
            .iter()
            .map(|&(id, v)| (s.name(id).to_owned(), json_number(v)))
            .collect();
        serde_json::to_writer_pretty(&mut out, &map)?;
        writeln!(out)?;
    } else {
        if state.is_empty() {
            writeln!(out, "no parameter set at {}", a.at)?;
        }
        for (id, v) in state {
            writeln!(out, "{:<28} {v}", escape(s.name(id)))?;
        }
    }
    Ok(Outcome::Ok)
}

fn json_number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Verifies a file; with `--recover`, writes every readable record to a new file.
pub fn check(a: CheckArgs) -> anyhow::Result<Outcome> {
    let name = escape(&a.file.display().to_string()).into_owned();
    let mut reader = Reader::open(&a.file, ReadOptions { recover: true })?;
    if std::fs::metadata(&a.file)?.len() == 0 {
        bail!("{name}: empty file, no records");
    }
    let mut sink = match &a.recover {
        Some(out) => Some(RecoverSink::create(out)?),
        None => None,
    };
    while let Some(rec) = reader.next()? {
        if let Some(s) = sink.as_mut() {
            s.write(rec.raw)?;
        }
    }
    let r = reader.report().clone();
    let mut out = std::io::stdout().lock();
    if let Some(c) = &r.corrupt {
        writeln!(
            out,
            "{name}: corrupt at byte {}: {}",
            c.offset,
            escape(&c.reason)
        )?;
    }
    if let Some(c) = &r.first_invalid {
        writeln!(
            out,
            "{name}: {} invalid record(s), the first at byte {}: {}",
            r.invalid_records,
            c.offset,
            escape(&c.reason)
        )?;
    }
    if let Some(at) = r.truncated_at {
        writeln!(
            out,
            "{name}: truncated at byte {at}: the last record is cut short, {} bytes dropped",
            r.dropped_bytes
        )?;
    }
    let kept = r.event_records + r.snapshot_records + r.unknown_records;
    if r.is_clean() {
        writeln!(
            out,
            "{name}: ok, {} events, {} snapshots{}",
            r.event_records,
            r.snapshot_records,
            if r.unknown_records > 0 {
                format!(", {} records of unknown type skipped", r.unknown_records)
            } else {
                String::new()
            }
        )?;
    } else {
        writeln!(
            out,
            "{name}: {kept} readable records up to byte {}",
            r.good_bytes
        )?;
    }
    if let Some(s) = sink {
        let path = s.finish()?;
        writeln!(
            out,
            "recovered {kept} records to {}",
            escape(&path.display().to_string())
        )?;
    }
    Ok(if r.is_clean() {
        Outcome::Ok
    } else {
        Outcome::Finding
    })
}

/// Writes recovered records to a temporary file renamed into place at the end,
/// so OUT is either complete or absent.
struct RecoverSink {
    tmp: PathBuf,
    out: PathBuf,
    file: std::io::BufWriter<File>,
}

impl RecoverSink {
    fn create(out: &Path) -> anyhow::Result<Self> {
        if out.exists() {
            // this also refuses the input itself
            bail!(
                "{}: already exists; choose a new file for --recover",
                out.display()
            );
        }
        let tmp = out.with_extension("recovering");
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(RecoverSink {
            tmp,
            out: out.to_owned(),
            file: std::io::BufWriter::new(file),
        })
    }

    fn write(&mut self, raw: &[u8]) -> anyhow::Result<()> {
        self.file
            .write_all(raw)
            .with_context(|| format!("writing {}", self.tmp.display()))
    }

    fn finish(self) -> anyhow::Result<PathBuf> {
        let file = self
            .file
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing {}: {}", self.tmp.display(), e.error()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.out).with_context(|| {
            format!("renaming {} to {}", self.tmp.display(), self.out.display())
        })?;
        Ok(self.out)
    }
}
