//! Streaming reader for session files (docs/formats.md section 3).
//!
//! The reader pulls the file in large chunks and parses records in place:
//! no value trees, no per-record allocation. It yields each record with its
//! byte offset and raw bytes, and keeps a [`ReadReport`] of what it met:
//! unknown record types (skipped and counted), records that are MessagePack
//! but not valid session records, a truncated tail (dropped and measured),
//! and corruption (an error naming the byte offset, or with
//! [`ReadOptions::recover`] the end of the readable part).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::envelope::{ActorKind, Topic};
use crate::msgpack::{Cursor, DecodeError, Kind};

/// Records larger than this are taken for a corrupt length, not waited for.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// Bytes pulled from the source at a time. Small enough that a chunk is
/// still in the CPU cache when its records are parsed.
const CHUNK_BYTES: usize = 256 << 10;

/// How to treat damage in the middle of a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Keep every record before a corrupt offset instead of failing, and
    /// skip (and count) well-formed records that are not valid session records.
    pub recover: bool,
}

/// Where and why a file stops being readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// Byte offset of the first record that cannot be read.
    pub offset: u64,
    /// What is wrong there.
    pub reason: String,
}

/// What a read met besides good records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Event records yielded.
    pub event_records: u64,
    /// Snapshot records yielded.
    pub snapshot_records: u64,
    /// Records of another `type`, skipped.
    pub unknown_records: u64,
    /// Well-formed MessagePack maps that are not valid records (recover mode only).
    pub invalid_records: u64,
    /// The first invalid record, if any.
    pub first_invalid: Option<Corruption>,
    /// Bytes of a record cut short at the end of the file.
    pub dropped_bytes: u64,
    /// Offset of that cut-short record.
    pub truncated_at: Option<u64>,
    /// Corruption that ended a recovering read.
    pub corrupt: Option<Corruption>,
    /// End offset of the last complete record (everything before it is readable).
    pub good_bytes: u64,
}

impl ReadReport {
    /// True when the file had nothing wrong with it (unknown record types are allowed).
    pub fn is_clean(&self) -> bool {
        self.dropped_bytes == 0 && self.corrupt.is_none() && self.invalid_records == 0
    }
}

/// Why a session file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The path is a directory or another non-file.
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
    /// Bytes that are not a valid record, at an offset.
    #[error("{path}: corrupt at byte {}: {}", corruption.offset, corruption.reason)]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where and why.
        corruption: Corruption,
    },
}

/// The fields of an event's envelope that the core needs, read in place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventFields<'a> {
    /// `ts_ms`
    pub ts_ms: i64,
    /// `session_id` (str or bin bytes)
    pub session_id: &'a [u8],
    /// `producer_id`
    pub producer_id: &'a [u8],
    /// `seq`
    pub seq: u64,
    /// `actor`
    pub actor: ActorKind,
    /// The name an event is filed under: `path` for params, mod and audio,
    /// `type` for events, `key` for state; `None` for other topics.
    pub name: Option<&'a [u8]>,
    /// `value` for params and mod, `peak` for audio, NaN otherwise.
    pub value: f64,
}

impl<'a> EventFields<'a> {
    /// Parses an envelope map at the cursor, requiring what docs/formats.md requires
    /// for `topic` (`None`: a topic outside the five, only common fields).
    pub fn parse(topic: Option<Topic>, c: &mut Cursor<'a>) -> Result<Self, FieldError> {
        let at = c.abs_pos();
        let n = c.read_map_len().map_err(|e| match e {
            DecodeError::Type { found, .. } => {
                FieldError::Invalid(format!("envelope at byte {at} is {found}, not a map"))
            }
            other => FieldError::Decode(other),
        })?;
        let mut ts_ms = None;
        let mut session_id = None;
        let mut producer_id = None;
        let mut seq = None;
        let mut actor = ActorKind::Missing;
        let mut name = None;
        let mut value = None;
        // Is `key` the field that holds the name, or the value, on this topic?
        let is_name = |key: &[u8]| match topic {
            Some(Topic::Params | Topic::Mod | Topic::Audio) => is(key, b"path"),
            Some(Topic::Events) => is(key, b"type"),
            Some(Topic::State) => is(key, b"key"),
            None => false,
        };
        let is_value = |key: &[u8]| match topic {
            Some(Topic::Params | Topic::Mod) => is(key, b"value"),
            Some(Topic::Audio) => is(key, b"peak"),
            _ => false,
        };
        for _ in 0..n {
            let key = c.read_bytes_str().map_err(|e| invalid("a key", e))?;
            // Tested one by one in the order producers usually send them: a
            // chain of well-predicted branches is faster here than a jump on
            // the key's length.
            if is(key, b"v") {
                c.skip_value().map_err(FieldError::Decode)?
            } else if is(key, b"session_id") {
                session_id = Some(c.read_bytes_str().map_err(|e| invalid("session_id", e))?)
            } else if is(key, b"producer_id") {
                producer_id = Some(c.read_bytes_str().map_err(|e| invalid("producer_id", e))?)
            } else if is(key, b"seq") {
                seq = Some(c.read_u64().map_err(|e| invalid("seq", e))?)
            } else if is(key, b"ts_ms") {
                ts_ms = Some(c.read_i64().map_err(|e| invalid("ts_ms", e))?)
            } else if is_name(key) {
                name = Some(c.read_bytes_str().map_err(|e| invalid("name", e))?)
            } else if is_value(key) {
                value = Some(c.read_f64().map_err(|e| invalid("value", e))?)
            } else if is(key, b"actor") {
                actor = ActorKind::from_bytes(c.read_bytes_str().map_err(|e| invalid("actor", e))?)
            } else {
                c.skip_value().map_err(FieldError::Decode)?
            }
        }
        let missing = |f: &str| FieldError::Invalid(format!("envelope has no `{f}`"));
        let required_name = match topic {
            Some(Topic::Params | Topic::Mod | Topic::Audio) => Some("path"),
            Some(Topic::Events) => Some("type"),
            Some(Topic::State) => Some("key"),
            None => None,
        };
        if let (Some(f), None) = (required_name, name) {
            return Err(missing(f));
        }
        let value = match topic {
            Some(Topic::Params | Topic::Mod) => value.ok_or_else(|| missing("value"))?,
            Some(Topic::Audio) => value.ok_or_else(|| missing("peak"))?,
            _ => f64::NAN,
        };
        Ok(EventFields {
            ts_ms: ts_ms.ok_or_else(|| missing("ts_ms"))?,
            session_id: session_id.ok_or_else(|| missing("session_id"))?,
            producer_id: producer_id.ok_or_else(|| missing("producer_id"))?,
            seq: seq.ok_or_else(|| missing("seq"))?,
            actor,
            name,
            value,
        })
    }
}

/// `key == lit`, compared as a fixed-size array: no call to `memcmp` on the hot path.
#[inline(always)]
fn is<const N: usize>(key: &[u8], lit: &[u8; N]) -> bool {
    <&[u8; N]>::try_from(key).is_ok_and(|k| k == lit)
}

/// Why an envelope's fields could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldError {
    /// The bytes themselves are broken or cut short.
    Decode(DecodeError),
    /// Valid MessagePack, but not a valid envelope.
    Invalid(String),
}

fn invalid(field: &str, e: DecodeError) -> FieldError {
    match e {
        DecodeError::Type {
            expected, found, ..
        } => FieldError::Invalid(format!("`{field}` should be {expected}, is {found}")),
        DecodeError::Range { expected, .. } => {
            FieldError::Invalid(format!("`{field}` is out of range for {expected}"))
        }
        other => FieldError::Decode(other),
    }
}

/// One record, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecordRef<'a> {
    /// `{"type": "event", ...}`
    Event {
        /// The topic name as stored.
        topic: &'a [u8],
        /// The topic, if it is one of the five.
        known_topic: Option<Topic>,
        /// The Kafka key (nil → `None`).
        key: Option<&'a [u8]>,
        /// The envelope map's raw bytes.
        data: &'a [u8],
        /// The envelope's core fields.
        fields: EventFields<'a>,
    },
    /// `{"type": "snapshot", ...}`
    Snapshot {
        /// The snapshot's instant.
        ts_ms: i64,
        /// The state map's raw bytes.
        state: &'a [u8],
    },
    /// A record of another type (already counted).
    Unknown,
}

/// A record with where it sits in the file.
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    /// Byte offset of the record's first byte.
    pub offset: u64,
    /// The record's exact bytes.
    pub raw: &'a [u8],
    /// The parsed record.
    pub record: RecordRef<'a>,
}

/// Outcome of parsing one record from a buffer.
enum Parsed<'a> {
    Record(RecordRef<'a>, usize),
    /// Needs more bytes than the buffer has.
    NeedMore,
    /// Bytes that are not a record: nothing after can be trusted.
    Corrupt(String),
    /// A well-formed map that is not a valid record; its length is known.
    Invalid(String, usize),
}

/// Parses the record at the start of `buf`; `base` is its file offset.
fn parse_record(buf: &[u8], base: usize) -> Parsed<'_> {
    let mut c = Cursor::with_base(buf, base);
    match c.peek_kind() {
        Err(_) => return Parsed::NeedMore,
        Ok(Kind::Map) => {}
        Ok(Kind::Invalid) => {
            return Parsed::Corrupt(format!("byte 0x{:02x} is not valid MessagePack", buf[0]))
        }
        Ok(kind) => {
            return Parsed::Corrupt(format!(
                "record is {kind} (marker 0x{:02x}), not a map",
                buf[0]
            ))
        }
    }
    match parse_map_record(&mut c) {
        Ok(rec) => Parsed::Record(rec, c.pos()),
        Err(RecordFault::Decode(e)) if e.is_eof() => Parsed::NeedMore,
        Err(RecordFault::Decode(e)) => Parsed::Corrupt(e.to_string()),
        Err(RecordFault::Invalid(reason)) => {
            // Find the record's end so that a recovering read can step over it.
            let mut whole = Cursor::with_base(buf, base);
            match whole.skip_value() {
                Ok(()) => Parsed::Invalid(reason, whole.pos()),
                Err(e) if e.is_eof() => Parsed::NeedMore,
                Err(e) => Parsed::Corrupt(e.to_string()),
            }
        }
    }
}

enum RecordFault {
    Decode(DecodeError),
    Invalid(String),
}

impl From<DecodeError> for RecordFault {
    fn from(e: DecodeError) -> Self {
        RecordFault::Decode(e)
    }
}

impl From<FieldError> for RecordFault {
    fn from(e: FieldError) -> Self {
        match e {
            FieldError::Decode(d) => RecordFault::Decode(d),
            FieldError::Invalid(s) => RecordFault::Invalid(s),
        }
    }
}

fn not_string(field: &str, e: DecodeError) -> RecordFault {
    match e {
        DecodeError::Type { found, .. } => {
            RecordFault::Invalid(format!("`{field}` should be a string, is {found}"))
        }
        other => RecordFault::Decode(other),
    }
}

fn parse_map_record<'a>(c: &mut Cursor<'a>) -> Result<RecordRef<'a>, RecordFault> {
    let n = c.read_map_len()?;
    let mut rtype: Option<Result<&[u8], Kind>> = None;
    let mut topic: Option<&'a [u8]> = None;
    let mut key: Option<Option<&'a [u8]>> = None;
    let mut data: Option<(&'a [u8], usize)> = None;
    let mut fields: Option<EventFields<'a>> = None;
    let mut ts_ms: Option<i64> = None;
    let mut state: Option<&'a [u8]> = None;
    for _ in 0..n {
        let k = c
            .read_bytes_str()
            .map_err(|e| not_string("a record key", e))?;
        // in the order writers send them (see `EventFields::parse`)
        if is(k, b"type") {
            rtype = Some(match c.peek_kind()? {
                Kind::Str | Kind::Bin => Ok(c.read_bytes_str()?),
                other => {
                    c.skip_value()?;
                    Err(other)
                }
            })
        } else if is(k, b"topic") {
            topic = Some(c.read_bytes_str().map_err(|e| not_string("topic", e))?)
        } else if is(k, b"key") {
            key = Some(if c.read_nil()? {
                None
            } else {
                Some(c.read_bytes_str().map_err(|e| not_string("key", e))?)
            })
        } else if is(k, b"data") {
            let start = c.pos();
            let data_base = c.abs_pos();
            match topic {
                // the usual order: topic first, so the envelope is read in place
                Some(t) if c.peek_kind()? == Kind::Map => {
                    fields = Some(EventFields::parse(Topic::from_name_bytes(t), c)?);
                }
                _ => c.skip_value()?,
            }
            data = Some((c.since(start), data_base));
        } else if is(k, b"ts_ms") {
            ts_ms = Some(c.read_i64().map_err(|e| match e {
                DecodeError::Type { found, .. } => {
                    RecordFault::Invalid(format!("snapshot `ts_ms` is {found}"))
                }
                // a well-formed integer, only too big: an invalid record, not corruption
                DecodeError::Range { expected, .. } => {
                    RecordFault::Invalid(format!("snapshot `ts_ms` is out of range for {expected}"))
                }
                other => RecordFault::Decode(other),
            })?)
        } else if is(k, b"state") {
            state = Some(c.raw_value()?)
        } else {
            c.skip_value()?
        }
    }
    match rtype {
        Some(Ok(b"event")) => {
            let topic = topic.ok_or_else(|| RecordFault::Invalid("event has no `topic`".into()))?;
            let (data, data_base) =
                data.ok_or_else(|| RecordFault::Invalid("event has no `data`".into()))?;
            let known_topic = Topic::from_name_bytes(topic);
            let fields = match fields {
                Some(f) => f,
                None => EventFields::parse(known_topic, &mut Cursor::with_base(data, data_base))?,
            };
            Ok(RecordRef::Event {
                topic,
                known_topic,
                key: key.flatten(),
                data,
                fields,
            })
        }
        Some(Ok(b"snapshot")) => {
            let ts_ms =
                ts_ms.ok_or_else(|| RecordFault::Invalid("snapshot has no `ts_ms`".into()))?;
            let state =
                state.ok_or_else(|| RecordFault::Invalid("snapshot has no `state`".into()))?;
            if Cursor::new(state).peek_kind()? != Kind::Map {
                return Err(RecordFault::Invalid("snapshot `state` is not a map".into()));
            }
            Ok(RecordRef::Snapshot { ts_ms, state })
        }
        _ => Ok(RecordRef::Unknown),
    }
}

/// Parses the single record at the start of `buf`; `offset` is where it sits in its file.
pub fn parse_one(buf: &[u8], offset: u64) -> Result<RecordRef<'_>, Corruption> {
    let fail = |reason: String| Corruption { offset, reason };
    match parse_record(buf, offset as usize) {
        Parsed::Record(r, _) => Ok(r),
        Parsed::NeedMore => Err(fail("record is cut short".into())),
        Parsed::Corrupt(reason) | Parsed::Invalid(reason, _) => Err(fail(reason)),
    }
}

/// The valid record at the start of `buf` and its length in bytes, if there is one.
pub(crate) fn parse_record_len(buf: &[u8], offset: u64) -> Option<(RecordRef<'_>, usize)> {
    match parse_record(buf, offset as usize) {
        Parsed::Record(r, len) => Some((r, len)),
        _ => None,
    }
}

/// Length of the first complete MessagePack value in `buf`, if it is complete and valid.
pub fn record_len(buf: &[u8]) -> Option<usize> {
    let mut c = Cursor::new(buf);
    c.skip_value().ok().map(|_| c.pos())
}

/// Reads the entries of a snapshot's `state` map: path → value.
pub fn snapshot_entries(state: &[u8], mut each: impl FnMut(&[u8], f64)) -> Result<(), DecodeError> {
    let mut c = Cursor::new(state);
    let n = c.read_map_len()?;
    for _ in 0..n {
        let path = c.read_bytes_str()?;
        let value = c.read_f64()?;
        each(path, value);
    }
    Ok(())
}

/// A streaming reader over any byte source.
pub struct Reader<R> {
    src: R,
    path: PathBuf,
    opts: ReadOptions,
    buf: Vec<u8>,
    /// Start of unread bytes in `buf`.
    start: usize,
    /// End of valid bytes in `buf`.
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    src_done: bool,
    finished: bool,
    report: ReadReport,
    chunk: usize,
}

impl Reader<File> {
    /// Opens a session file for reading.
    pub fn open(path: &Path, opts: ReadOptions) -> Result<Self, ReadError> {
        let io = |source| ReadError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(ReadError::NotAFile(path.to_owned()));
        }
        Ok(Reader::new(file, path, opts))
    }
}

impl<R: Read> Reader<R> {
    /// A reader over `src`; `path` is only used in messages.
    pub fn new(src: R, path: &Path, opts: ReadOptions) -> Self {
        Self::starting_at(src, path, opts, 0)
    }

    /// A reader over `src`, whose first byte sits at `offset` in the file:
    /// offsets in records and in the report are file offsets. `offset` must be
    /// where a record starts (or the end of the file).
    pub fn starting_at(src: R, path: &Path, opts: ReadOptions, offset: u64) -> Self {
        Reader {
            src,
            path: path.to_owned(),
            opts,
            buf: Vec::new(),
            start: 0,
            end: 0,
            base: offset,
            src_done: false,
            finished: false,
            report: ReadReport {
                good_bytes: offset,
                ..ReadReport::default()
            },
            chunk: CHUNK_BYTES,
        }
    }

    /// Pulls no more than `remaining` bytes (plus one, to see the end) at a
    /// time when the source is known to be that short.
    pub(crate) fn expecting(mut self, remaining: u64) -> Self {
        self.chunk = (remaining.saturating_add(1)).min(CHUNK_BYTES as u64) as usize;
        self
    }

    /// What the read has met so far (complete once `next` returned `None`).
    pub fn report(&self) -> &ReadReport {
        &self.report
    }

    /// Bytes consumed so far (for progress).
    pub fn position(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Pulls more bytes, keeping the unread tail. Returns false at end of input.
    fn fill(&mut self) -> Result<bool, ReadError> {
        if self.src_done {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        let want = (self.end * 2).max(self.chunk);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.src_done = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ReadError::Io {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
    }

    fn corrupt(&mut self, offset: u64, reason: String) -> Result<(), ReadError> {
        let corruption = Corruption { offset, reason };
        self.finished = true;
        if self.opts.recover {
            self.report.corrupt = Some(corruption);
            Ok(())
        } else {
            Err(ReadError::Corrupt {
                path: self.path.clone(),
                corruption,
            })
        }
    }

    /// The next complete record, or `None` at the end of what is readable.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Located<'_>>, ReadError> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let offset = self.base + self.start as u64;
            let avail = self.end - self.start;
            if avail == 0 && !self.fill()? {
                self.finished = true;
                return Ok(None);
            }
            if avail == 0 {
                continue;
            }
            // NLL cannot see that the buffer is only mutated (by `fill`) on the
            // paths that return nothing borrowed from it, so the view handed
            // out is detached from the loop's borrow here.
            // SAFETY: `view` points into `self.buf`, which is not resized or
            // written until the next call of `next(&mut self)`; the returned
            // record borrows `self`, so it cannot outlive that call.
            let view: &[u8] = unsafe {
                let live = &self.buf[self.start..self.end];
                std::slice::from_raw_parts(live.as_ptr(), live.len())
            };
            let outcome = match parse_record(view, offset as usize) {
                Parsed::Record(record, len) => Ok((record, len)),
                Parsed::NeedMore => Err(None),
                Parsed::Corrupt(reason) => Err(Some((reason, None))),
                Parsed::Invalid(reason, len) => Err(Some((reason, Some(len)))),
            };
            match outcome {
                Ok((record, len)) => {
                    self.start += len;
                    self.report.good_bytes = offset + len as u64;
                    match record {
                        RecordRef::Event { .. } => self.report.event_records += 1,
                        RecordRef::Snapshot { .. } => self.report.snapshot_records += 1,
                        RecordRef::Unknown => self.report.unknown_records += 1,
                    }
                    return Ok(Some(Located {
                        offset,
                        raw: &view[..len],
                        record,
                    }));
                }
                Err(None) => {
                    if avail >= MAX_RECORD_BYTES {
                        self.corrupt(
                            offset,
                            format!("record is larger than {} MiB", MAX_RECORD_BYTES >> 20),
                        )?;
                        return Ok(None);
                    }
                    if !self.fill()? {
                        // The input ends inside this record: a truncated tail.
                        self.report.dropped_bytes = avail as u64;
                        self.report.truncated_at = Some(offset);
                        self.finished = true;
                        return Ok(None);
                    }
                }
                Err(Some((reason, None))) => {
                    self.corrupt(offset, reason)?;
                    return Ok(None);
                }
                Err(Some((reason, Some(len)))) => {
                    if !self.opts.recover {
                        self.corrupt(offset, reason)?;
                        return Ok(None);
                    }
                    self.report.invalid_records += 1;
                    if self.report.first_invalid.is_none() {
                        self.report.first_invalid = Some(Corruption { offset, reason });
                    }
                    self.start += len;
                    self.report.good_bytes = offset + len as u64;
                }
            }
        }
    }
}
