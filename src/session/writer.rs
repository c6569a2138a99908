//! Session writer (docs/formats.md section 3, writing rules).
//!
//! [`SessionWriter`] appends event records, keeps the current state and
//! appends a snapshot after any event more than the snapshot interval past
//! the last snapshot. It buffers in memory; every append, and
//! [`SessionWriter::flush_if_due`] between appends, writes the buffer out
//! once it is [`FLUSH_INTERVAL`] old, and [`SessionWriter::finish`] flushes
//! and fsyncs. The recorder owns one on its own thread.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hashbrown::HashMap;

use crate::envelope::{Envelope, Topic};
use crate::msgpack::{write as w, Cursor};
use crate::session::reader::{EventFields, FieldError};

/// The snapshot interval of docs/formats.md: a snapshot follows any event more
/// than this many milliseconds past the last one.
pub const SNAPSHOT_INTERVAL_MS: i64 = 5_000;

/// Buffered records reach the file at least this often, as long as the
/// owner appends or calls [`SessionWriter::flush_if_due`] (the recorder
/// does so at least every 20 ms), so a killed recorder loses less than
/// this plus the receive latency.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Why a record was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The payload is not a valid envelope; nothing was written.
    #[error("not a valid envelope: {0}")]
    InvalidEnvelope(String),
    /// The disk said no.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Counts of what a writer has written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Event records appended.
    pub events: u64,
    /// Snapshot records appended.
    pub snapshots: u64,
    /// Bytes appended (buffered or on disk).
    pub bytes: u64,
}

/// The current state: path → value, in first-seen order.
#[derive(Debug, Default)]
struct State {
    index: HashMap<Box<[u8]>, usize>,
    entries: Vec<(Box<[u8]>, f64)>,
}

impl State {
    fn set(&mut self, path: &[u8], value: f64) {
        match self.index.get(path) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(path.into(), self.entries.len());
                self.entries.push((path.into(), value));
            }
        }
    }
}

/// Appends records to a session file.
pub struct SessionWriter<W: Write = File> {
    out: W,
    path: PathBuf,
    buf: Vec<u8>,
    state: State,
    last_snapshot_ts: Option<i64>,
    snapshot_interval_ms: i64,
    last_flush: Instant,
    stats: WriterStats,
}

impl SessionWriter<File> {
    /// Creates a new file; fails if it already exists, so nothing is overwritten.
    pub fn create(path: &Path) -> Result<Self, WriteError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| WriteError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| WriteError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(SessionWriter::new(file, path))
    }

    /// Flushes, fsyncs and closes the file.
    pub fn finish(mut self) -> Result<WriterStats, WriteError> {
        self.flush()?;
        self.out.sync_all().map_err(|source| WriteError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.stats)
    }
}

impl<W: Write> SessionWriter<W> {
    /// A writer over any sink; `path` is only used in messages.
    pub fn new(out: W, path: &Path) -> Self {
        SessionWriter {
            out,
            path: path.to_owned(),
            buf: Vec::with_capacity(256 << 10),
            state: State::default(),
            last_snapshot_ts: None,
            snapshot_interval_ms: SNAPSHOT_INTERVAL_MS,
            last_flush: Instant::now(),
            stats: WriterStats::default(),
        }
    }

    /// Changes the snapshot interval (docs/formats.md fixes 5,000 ms; other values are for experiments).
    pub fn with_snapshot_interval(mut self, ms: i64) -> Self {
        self.snapshot_interval_ms = ms.max(1);
        self
    }

    /// What has been written so far.
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an event record whose `data` is an envelope map exactly as received.
    /// An invalid envelope is refused and nothing is written.
    pub fn append_event(
        &mut self,
        topic: &str,
        key: Option<&str>,
        data: &[u8],
    ) -> Result<(), WriteError> {
        let known = Topic::from_name(topic);
        let mut c = Cursor::new(data);
        let fields = EventFields::parse(known, &mut c).map_err(|e| {
            WriteError::InvalidEnvelope(match e {
                FieldError::Decode(d) => d.to_string(),
                FieldError::Invalid(s) => s,
            })
        })?;
        if !c.is_empty() {
            return Err(WriteError::InvalidEnvelope(format!(
                "{} bytes after the envelope map",
                data.len() - c.pos()
            )));
        }
        let param = match (known, fields.name) {
            (Some(Topic::Params), Some(path)) => Some((path, fields.value)),
            _ => None,
        };
        self.append_valid(topic, key, data, fields.ts_ms, param)
    }

    /// Appends an event record for a payload the caller has already checked
    /// (the recorder: its subscriber decoded every message), skipping a
    /// second validation. `ts_ms` and `param` (path and value of a
    /// `noise.params` message) must be what `data` holds.
    pub fn append_checked(
        &mut self,
        topic: Topic,
        key: Option<&str>,
        data: &[u8],
        ts_ms: i64,
        param: Option<(&str, f64)>,
    ) -> Result<(), WriteError> {
        let param = param.map(|(path, value)| (path.as_bytes(), value));
        self.append_valid(topic.name(), key, data, ts_ms, param)
    }

    fn append_valid(
        &mut self,
        topic: &str,
        key: Option<&str>,
        data: &[u8],
        ts_ms: i64,
        param: Option<(&[u8], f64)>,
    ) -> Result<(), WriteError> {
        let before = self.buf.len();
        w::map_len(&mut self.buf, 4);
        w::str(&mut self.buf, "type");
        w::str(&mut self.buf, "event");
        w::str(&mut self.buf, "topic");
        w::str(&mut self.buf, topic);
        w::str(&mut self.buf, "key");
        match key {
            Some(k) => w::str(&mut self.buf, k),
            None => w::nil(&mut self.buf),
        }
        w::str(&mut self.buf, "data");
        self.buf.extend_from_slice(data);
        self.stats.events += 1;
        self.stats.bytes += (self.buf.len() - before) as u64;

        if let Some((path, value)) = param {
            self.state.set(path, value);
        }
        let due = match self.last_snapshot_ts {
            None => true,
            Some(last) => ts_ms.saturating_sub(last) > self.snapshot_interval_ms,
        };
        if due {
            self.append_snapshot(ts_ms);
        }
        self.flush_if_due(Instant::now())
    }

    /// Encodes and appends an envelope (keyed as docs/formats.md section 1 says).
    pub fn append_envelope(&mut self, env: &Envelope) -> Result<(), WriteError> {
        let data = env.encode();
        self.append_event(env.topic().name(), Some(env.kafka_key()), &data)
    }

    fn append_snapshot(&mut self, ts_ms: i64) {
        let before = self.buf.len();
        w::map_len(&mut self.buf, 3);
        w::str(&mut self.buf, "type");
        w::str(&mut self.buf, "snapshot");
        w::str(&mut self.buf, "ts_ms");
        w::int(&mut self.buf, ts_ms);
        w::str(&mut self.buf, "state");
        w::map_len(&mut self.buf, self.state.entries.len());
        for (path, value) in &self.state.entries {
            // paths come from validated envelopes: str or UTF-8 bin
            w::str(&mut self.buf, &String::from_utf8_lossy(path));
            w::f64(&mut self.buf, *value);
        }
        self.last_snapshot_ts = Some(ts_ms);
        self.stats.snapshots += 1;
        self.stats.bytes += (self.buf.len() - before) as u64;
    }

    /// Writes the buffer out if the last flush is [`FLUSH_INTERVAL`] old.
    pub fn flush_if_due(&mut self, now: Instant) -> Result<(), WriteError> {
        if now.duration_since(self.last_flush) >= FLUSH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every buffered record to the sink.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        self.last_flush = Instant::now();
        if self.buf.is_empty() {
            return Ok(());
        }
        let res = self.out.write_all(&self.buf).and_then(|_| self.out.flush());
        self.buf.clear();
        res.map_err(|source| WriteError::Io {
            path: self.path.clone(),
            source,
        })
    }
}
