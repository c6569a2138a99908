//! A session loaded for browsing, scrubbing and playback.
//!
//! Every event becomes one 32-byte [`EventEntry`] in a table ordered by
//! `ts_ms` (stably); names, producers and topics are interned, and everything
//! else about an event (session id, seq, extra fields) stays in the file,
//! read back on demand by its offset. Per-name lanes index the table, and
//! checkpoints of the full parameter state every few hundred parameter
//! events make [`Session::state_at`] exact and fast at any instant.

use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use hashbrown::HashMap;

use crate::envelope::{ActorKind, Envelope, EnvelopeError, Topic};
use crate::session::reader::{
    snapshot_entries, ReadError, ReadOptions, ReadReport, Reader, RecordRef,
};
use crate::session::split::{self, FileAt};

/// Index of an interned name (a parameter path, `bus.N`, an event type, a state key).
pub type NameId = u32;

/// Marks an event with no name (a topic outside the five).
pub const NO_NAME: NameId = NameId::MAX;

/// One event, as compact as the hot paths need.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct EventEntry {
    /// `ts_ms` of the envelope.
    pub ts_ms: i64,
    /// `value` (params, mod), `peak` (audio), NaN otherwise.
    pub value: f64,
    /// Byte offset of the record in the file.
    pub offset: u64,
    /// Interned name, or [`NO_NAME`].
    pub name: NameId,
    /// Interned producer id.
    pub producer: u16,
    /// Interned topic (the five known ones are 0..5 in [`Topic::ALL`] order).
    pub topic: u8,
    /// Actor class.
    pub actor: ActorKind,
}

const _: () = assert!(std::mem::size_of::<EventEntry>() == 32);

/// A file snapshot's position (its state is read from the file on demand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotMark {
    /// The snapshot's instant.
    pub ts_ms: i64,
    /// Byte offset of the record.
    pub offset: u64,
}

/// Why a session could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read or is corrupt.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The file has no bytes at all.
    #[error("{0}: empty file, no records")]
    Empty(PathBuf),
    /// The caller cancelled the load.
    #[error("loading cancelled")]
    Cancelled,
    /// More distinct names or producers than the compact table holds.
    #[error("{path}: more than {limit} distinct {what}")]
    TooMany {
        /// The file.
        path: PathBuf,
        /// What overflowed.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// An event's record could not be read back.
    #[error("{path}: event at byte {offset}: {reason}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Its offset.
        offset: u64,
        /// What failed.
        reason: String,
    },
}

/// Progress of a load, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    /// Bytes read so far.
    pub bytes_read: u64,
    /// File size.
    pub total_bytes: u64,
}

/// Interns byte strings to dense ids.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<Box<[u8]>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    #[inline]
    fn intern(&mut self, bytes: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(bytes) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(bytes.into(), id);
        self.names
            .push(String::from_utf8_lossy(bytes).into_owned().into_boxed_str());
        id
    }

    /// The interned byte strings, by id.
    fn in_id_order(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut raw: Vec<&[u8]> = vec![&[]; self.names.len()];
        for (bytes, &id) in &self.ids {
            raw[id as usize] = bytes;
        }
        raw.into_iter()
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name.as_bytes()).copied()
    }
}

/// Full parameter state after a number of parameter events (in `ts_ms` order).
#[derive(Debug)]
struct Checkpoint {
    /// Value per parameter slot; `None` where the path has not been set yet.
    values: Box<[Option<f64>]>,
}

/// A loaded session.
#[derive(Debug)]
pub struct Session {
    path: PathBuf,
    file: File,
    events: Vec<EventEntry>,
    names: Interner,
    topics: Vec<Box<str>>,
    producers: Interner,
    session_ids: Vec<Box<str>>,
    /// Per name: indices into `events`, in order.
    lanes: Vec<Vec<u32>>,
    /// Parameter paths in sorted order; the position is the parameter's slot.
    param_names: Vec<NameId>,
    /// Slot of each name (`u32::MAX` for names that are not parameters).
    param_slot: Vec<u32>,
    /// Indices of `noise.params` events, in `ts_ms` order.
    params: Vec<u32>,
    /// State after `params[..i * checkpoint_every]`.
    checkpoints: Vec<Checkpoint>,
    checkpoint_every: usize,
    snapshots: Vec<SnapshotMark>,
    /// What the file's snapshots add to the events' state, in `ts_ms` order.
    overlay: SnapshotOverlay,
    by_topic: Vec<u64>,
    report: ReadReport,
    file_bytes: u64,
}

/// The part of the file's snapshots that the state at time t needs
/// (docs/formats.md, section 3: start from the last snapshot with `ts_ms <= t`,
/// then apply every parameter event with `ts_ms <= t`).
///
/// Events win over snapshots, so a snapshot's value of a path matters only
/// while no event has set that path yet: each snapshot keeps just those
/// entries, which are few (the paths a recording knew from before its start
/// and nobody touched since). Every snapshot keeps its place, even with no
/// entries left, because a later snapshot that lacks a path ends the earlier
/// snapshot's value of it.
#[derive(Debug, Default)]
struct SnapshotOverlay {
    /// Per snapshot in `ts_ms` order (stably): its instant and where its
    /// entries start in `entries`.
    marks: Vec<(i64, u32)>,
    /// (parameter slot, value), grouped by snapshot, by slot within one.
    entries: Vec<(u32, f64)>,
}

impl SnapshotOverlay {
    /// Index into `marks` of the last snapshot with `ts_ms <= t`.
    fn last_at_or_before(&self, t: i64) -> Option<usize> {
        self.marks.partition_point(|m| m.0 <= t).checked_sub(1)
    }

    /// The entries of snapshot `k`.
    fn entries(&self, k: usize) -> &[(u32, f64)] {
        let start = self.marks[k].1 as usize;
        let end = self
            .marks
            .get(k + 1)
            .map_or(self.entries.len(), |m| m.1 as usize);
        &self.entries[start..end]
    }

    /// Snapshot `k`'s value of a slot, if it holds one that counts.
    fn value(&self, k: usize, slot: u32) -> Option<f64> {
        let e = self.entries(k);
        e.binary_search_by_key(&slot, |x| x.0).ok().map(|i| e[i].1)
    }
}

/// A value a snapshot gives a path that no event has set yet: from `ts_ms`
/// on, the path's state is `value` (see [`Session::snapshot_changes`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotChange {
    /// The snapshot's instant.
    pub ts_ms: i64,
    /// The parameter path.
    pub name: NameId,
    /// Its value from then on.
    pub value: f64,
}

const MIN_CHECKPOINT_EVERY: usize = 256;

/// Files at least this big are loaded in parallel parts.
const PARALLEL_MIN_BYTES: u64 = 2 << 20;

/// At most this many parts (and threads) per load.
const MAX_PARTS: usize = 8;

/// Why a part's read stopped.
enum Stop {
    /// It reached the start of the next part.
    Reached,
    /// The reader found nothing more to read: the end of the file, a cut-short
    /// last record, or (when recovering) corruption.
    Ended,
    /// An error that ends the whole load.
    Failed(LoadError),
    /// The progress callback cancelled the load.
    Cancelled,
}

impl Stop {
    fn is_reached(&self) -> bool {
        matches!(self, Stop::Reached)
    }
}

/// What one part of a file held.
struct PartOut {
    builder: Builder,
    report: ReadReport,
    /// Offset of the first byte after the part's last record.
    end: u64,
    stop: Stop,
}

/// Reads records from `start` (a record boundary) until a record starts at or
/// after `limit`, or the reader stops. `tick` gets the bytes read so far every so
/// often and returns false to cancel.
fn parse_part(
    file: &File,
    path: &Path,
    opts: ReadOptions,
    start: u64,
    limit: u64,
    tick: &mut dyn FnMut(u64) -> bool,
) -> PartOut {
    let file_bytes = file.metadata().map_or(0, |m| m.len());
    // The first part's table gets room for the whole file, so that the other
    // parts' tables are appended to it without moving it.
    let span = if start == 0 {
        file_bytes
    } else {
        limit.min(file_bytes).saturating_sub(start)
    };
    let mut b = Builder::new(path, file_bytes, span);
    let mut reader = Reader::starting_at(FileAt::new(file, start), path, opts, start)
        .expecting(file_bytes.saturating_sub(start));
    let mut n = 0u32;
    let stop = loop {
        if reader.position() >= limit {
            break Stop::Reached;
        }
        let rec = match reader.next() {
            Ok(Some(rec)) => rec,
            Ok(None) => break Stop::Ended,
            Err(e) => break Stop::Failed(e.into()),
        };
        match rec.record {
            RecordRef::Event {
                topic,
                known_topic,
                fields,
                ..
            } => {
                if let Err(e) = b.event(rec.offset, topic, known_topic, &fields) {
                    break Stop::Failed(e);
                }
            }
            RecordRef::Snapshot { ts_ms, state } => b.snapshot(ts_ms, rec.offset, state),
            RecordRef::Unknown => {}
        }
        n = n.wrapping_add(1);
        if n % 1024 == 1 && !tick(reader.position() - start) {
            break Stop::Cancelled;
        }
    };
    if matches!(stop, Stop::Reached | Stop::Ended) {
        b.sort_events();
    }
    PartOut {
        end: reader.position(),
        report: reader.report().clone(),
        builder: b,
        stop,
    }
}

impl ReadReport {
    /// The report of a read that went on into `next` after this one.
    fn followed_by(self, next: ReadReport) -> ReadReport {
        ReadReport {
            event_records: self.event_records + next.event_records,
            snapshot_records: self.snapshot_records + next.snapshot_records,
            unknown_records: self.unknown_records + next.unknown_records,
            invalid_records: self.invalid_records + next.invalid_records,
            first_invalid: self.first_invalid.or(next.first_invalid),
            ..next
        }
    }
}

impl Session {
    /// Loads a session file (strict: corruption is an error naming its offset).
    pub fn open(path: &Path) -> Result<Session, LoadError> {
        Self::open_with(path, ReadOptions::default(), |_| ControlFlow::Continue(()))
    }

    /// Loads with options, reporting progress; the callback may cancel the load.
    ///
    /// Files of a few MiB and more are parsed in parallel parts, one per core
    /// (see [`Session::open_in_parts`]); the result is the same either way.
    pub fn open_with(
        path: &Path,
        opts: ReadOptions,
        progress: impl FnMut(LoadProgress) -> ControlFlow<()>,
    ) -> Result<Session, LoadError> {
        Self::load(path, opts, None, progress)
    }

    /// Like [`Session::open_with`], splitting the file into (up to) `parts`
    /// parts parsed on their own threads, whatever its size.
    ///
    /// Each part after the first starts at a record boundary found near its
    /// share of the file; it is used only once the part before it has ended
    /// exactly there, and otherwise the rest of the file is read on from where
    /// that part ended. Names and producers are numbered in file order and
    /// the event tables are merged stably, so the session, its report and its
    /// errors are exactly those of a one-part read.
    pub fn open_in_parts(
        path: &Path,
        opts: ReadOptions,
        parts: usize,
        progress: impl FnMut(LoadProgress) -> ControlFlow<()>,
    ) -> Result<Session, LoadError> {
        Self::load(path, opts, Some(parts), progress)
    }

    fn load(
        path: &Path,
        opts: ReadOptions,
        parts: Option<usize>,
        mut progress: impl FnMut(LoadProgress) -> ControlFlow<()>,
    ) -> Result<Session, LoadError> {
        let io = |source| {
            LoadError::Read(ReadError::Io {
                path: path.to_owned(),
                source,
            })
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(ReadError::NotAFile(path.to_owned()).into());
        }
        let total_bytes = meta.len();
        if total_bytes == 0 {
            return Err(LoadError::Empty(path.to_owned()));
        }
        let parts = match parts {
            Some(n) => n,
            None if total_bytes >= PARALLEL_MIN_BYTES => {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            }
            None => 1,
        }
        .clamp(1, MAX_PARTS);

        // Where the parts start: record boundaries near equal shares of the file.
        let mut starts = vec![0u64];
        for k in 1..parts as u64 {
            let from = (total_bytes / parts as u64 * k).max(starts[starts.len() - 1] + 1);
            if let Some(b) = split::find_boundary(&file, from, total_bytes).map_err(io)? {
                starts.push(b);
            }
        }
        let limit = |k: usize| starts.get(k + 1).copied().unwrap_or(u64::MAX);

        let cancel = AtomicBool::new(false);
        let done: Vec<AtomicU64> = starts.iter().map(|_| AtomicU64::new(0)).collect();
        let mut next_progress = 0u64;
        let mut tick = |read: u64| {
            let read = read + done.iter().map(|d| d.load(Relaxed)).sum::<u64>();
            if read >= next_progress {
                next_progress = read + (4 << 20);
                let p = LoadProgress {
                    bytes_read: read,
                    total_bytes,
                };
                if progress(p).is_break() {
                    cancel.store(true, Relaxed);
                    return false;
                }
            }
            true
        };
        let outs: Vec<PartOut> = std::thread::scope(|s| {
            let others: Vec<_> = (1..starts.len())
                .map(|k| {
                    let (file, starts, done, cancel) = (&file, &starts, &done, &cancel);
                    let job = move || {
                        parse_part(file, path, opts, starts[k], limit(k), &mut |pos| {
                            done[k].store(pos, Relaxed);
                            !cancel.load(Relaxed)
                        })
                    };
                    std::thread::Builder::new()
                        .name("session-load".into())
                        .spawn_scoped(s, job)
                        .map_err(|_| k)
                })
                .collect();
            let mut outs = vec![parse_part(&file, path, opts, 0, limit(0), &mut tick)];
            for h in others {
                outs.push(match h {
                    Ok(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                    // no thread to be had: parse that part here
                    Err(k) => parse_part(&file, path, opts, starts[k], limit(k), &mut |_| {
                        !cancel.load(Relaxed)
                    }),
                });
            }
            outs
        });

        // The parts that a one-part read would have met, in order.
        let mut used: Vec<PartOut> = Vec::with_capacity(outs.len());
        for (k, out) in outs.into_iter().enumerate() {
            let next_start = starts.get(k + 1).copied();
            let (stop, end) = (out.stop.is_reached(), out.end);
            used.push(out);
            if !stop {
                break;
            }
            if Some(end) != next_start {
                // The next part did not start at a record boundary after all.
                used.push(parse_part(&file, path, opts, end, u64::MAX, &mut tick));
                break;
            }
        }

        let mut used = used.into_iter();
        let first = used.next().expect("the first part is always used");
        let (mut b, mut report, mut stop) = (first.builder, first.report, first.stop);
        let mut runs = vec![std::mem::take(&mut b.events)];
        for part in used {
            let mut events = b.absorb(part.builder)?;
            report = report.followed_by(part.report);
            stop = part.stop;
            runs.push(std::mem::take(&mut events));
        }
        match stop {
            Stop::Failed(e) => return Err(e),
            Stop::Cancelled => return Err(LoadError::Cancelled),
            Stop::Reached | Stop::Ended => {}
        }
        b.events = split::merge_runs(runs);
        let _ = progress(LoadProgress {
            bytes_read: total_bytes,
            total_bytes,
        });
        Ok(b.finish(file, report))
    }

    /// The file this session was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every event, ordered by `ts_ms` (stably: ties keep file order).
    pub fn events(&self) -> &[EventEntry] {
        &self.events
    }

    /// The name behind an id.
    pub fn name(&self, id: NameId) -> &str {
        self.names.names.get(id as usize).map_or("", |s| s)
    }

    /// The id of a name, if any event carries it.
    pub fn name_id(&self, name: &str) -> Option<NameId> {
        self.names.get(name)
    }

    /// Number of distinct names.
    pub fn name_count(&self) -> usize {
        self.names.names.len()
    }

    /// The topic name behind an entry's topic index.
    pub fn topic_name(&self, topic: u8) -> &str {
        &self.topics[topic as usize]
    }

    /// The known topic of an entry, if it is one of the five.
    pub fn topic_of(&self, e: &EventEntry) -> Option<Topic> {
        Topic::ALL.get(e.topic as usize).copied()
    }

    /// The producer id behind an entry's producer index.
    pub fn producer_name(&self, producer: u16) -> &str {
        self.producers
            .names
            .get(producer as usize)
            .map_or("", |s| s)
    }

    /// Producer ids, sorted.
    pub fn producers(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.producers.names.iter().map(|s| &**s).collect();
        v.sort_unstable();
        v
    }

    /// Session ids seen in envelopes, sorted.
    pub fn session_ids(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.session_ids.iter().map(|s| &**s).collect();
        v.sort_unstable();
        v
    }

    /// Indices into [`Session::events`] of every event with this name, in order.
    pub fn lane(&self, name: NameId) -> &[u32] {
        self.lanes.get(name as usize).map_or(&[], |l| l)
    }

    /// Parameter paths (names seen on `noise.params`), sorted.
    pub fn param_paths(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.param_names.iter().map(|&id| self.name(id))
    }

    /// Ids of the parameter paths, in sorted path order.
    pub fn param_ids(&self) -> &[NameId] {
        &self.param_names
    }

    /// Indices of the `noise.params` events, in `ts_ms` order.
    pub fn param_events(&self) -> &[u32] {
        &self.params
    }

    /// The file's snapshots, in file order.
    pub fn snapshots(&self) -> &[SnapshotMark] {
        &self.snapshots
    }

    /// Event records per topic name, sorted by topic.
    pub fn by_topic(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self
            .by_topic
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (&*self.topics[i], n))
            .collect();
        v.sort_unstable();
        v
    }

    /// What the reader met: dropped bytes, unknown and invalid records, corruption.
    pub fn read_report(&self) -> &ReadReport {
        &self.report
    }

    /// Size of the file when it was loaded.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// First and last `ts_ms`, if there are events.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        Some((self.events.first()?.ts_ms, self.events.last()?.ts_ms))
    }

    /// Index of the first event with `ts_ms > t` (the number of events at or before `t`).
    pub fn events_until(&self, t: i64) -> usize {
        self.events.partition_point(|e| e.ts_ms <= t)
    }

    /// Heap bytes held by the in-memory tables (not the file).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let names: usize = self.names.names.iter().map(|s| s.len() * 2 + 48).sum();
        let lanes: usize = self
            .lanes
            .iter()
            .map(|l| l.capacity() * 4 + size_of::<Vec<u32>>())
            .sum();
        let cps: usize = self
            .checkpoints
            .iter()
            .map(|c| c.values.len() * size_of::<Option<f64>>() + size_of::<Checkpoint>())
            .sum();
        self.events.capacity() * size_of::<EventEntry>()
            + self.params.capacity() * 4
            + self.param_slot.capacity() * 4
            + self.param_names.capacity() * 4
            + self.snapshots.capacity() * size_of::<SnapshotMark>()
            + self.overlay.marks.capacity() * size_of::<(i64, u32)>()
            + self.overlay.entries.capacity() * size_of::<(u32, f64)>()
            + names
            + lanes
            + cps
    }

    /// The exact parameter state at `t` (docs/formats.md, section 3): the last file
    /// snapshot with `ts_ms <= t`, overlaid by every `noise.params` event with
    /// `ts_ms <= t` applied in `ts_ms` order (stably). Events win; a path that
    /// only a snapshot holds keeps the snapshot's value. Returns (path id,
    /// value) pairs in sorted path order.
    ///
    /// The events' part starts from the nearest checkpoint at or before `t`,
    /// so it stays exact when producers' clocks are skewed (a file snapshot
    /// is taken in arrival order and may hold a value whose `ts_ms` lies
    /// after it; such a value is an event's and the event decides).
    pub fn state_at(&self, t: i64) -> Vec<(NameId, f64)> {
        let values = self.state_values_at(t);
        values
            .iter()
            .enumerate()
            .filter_map(|(slot, v)| v.map(|v| (self.param_names[slot], v)))
            .collect()
    }

    /// Like [`Session::state_at`], as a dense vector indexed like [`Session::param_ids`].
    pub fn state_values_at(&self, t: i64) -> Vec<Option<f64>> {
        let upto = self
            .params
            .partition_point(|&i| self.events[i as usize].ts_ms <= t);
        let cp = upto / self.checkpoint_every;
        let mut values = self.checkpoints[cp].values.to_vec();
        for &i in &self.params[cp * self.checkpoint_every..upto] {
            let e = &self.events[i as usize];
            values[self.param_slot[e.name as usize] as usize] = Some(e.value);
        }
        if let Some(k) = self.overlay.last_at_or_before(t) {
            for &(slot, v) in self.overlay.entries(k) {
                values[slot as usize].get_or_insert(v);
            }
        }
        values
    }

    /// The value of one parameter at `t` by the same rule, if it has one by then.
    pub fn value_at(&self, name: NameId, t: i64) -> Option<f64> {
        if let Some(e) = self.setter_at(name, t) {
            return Some(e.value);
        }
        let slot = *self.param_slot.get(name as usize)?;
        let k = self.overlay.last_at_or_before(t)?;
        self.overlay.value(k, slot)
    }

    /// The last `noise.params` event of `name` with `ts_ms <= t`: the one
    /// whose value the path holds at `t`, when an event set it.
    pub fn setter_at(&self, name: NameId, t: i64) -> Option<&EventEntry> {
        // a name may also be an event type or a mod path: only parameter events count
        if *self.param_slot.get(name as usize)? == u32::MAX {
            return None;
        }
        let lane = self.lane(name);
        let n = lane.partition_point(|&i| self.events[i as usize].ts_ms <= t);
        lane[..n]
            .iter()
            .rev()
            .map(|&i| &self.events[i as usize])
            .find(|e| self.topic_of(e) == Some(Topic::Params))
    }

    /// Where the state changes because of a snapshot rather than an event: a
    /// path no event has set yet takes a snapshot's value, or a new one from
    /// a later snapshot. In `ts_ms` order. A player sends these like events
    /// so that what it sent always equals [`Session::state_at`].
    pub fn snapshot_changes(&self) -> Vec<SnapshotChange> {
        let o = &self.overlay;
        let mut out = Vec::new();
        for k in 0..o.marks.len() {
            for &(slot, value) in o.entries(k) {
                let before = k.checked_sub(1).and_then(|p| o.value(p, slot));
                if before.map(f64::to_bits) != Some(value.to_bits()) {
                    out.push(SnapshotChange {
                        ts_ms: o.marks[k].0,
                        name: self.param_names[slot as usize],
                        value,
                    });
                }
            }
        }
        out
    }

    /// Reads an event's record back from the file and decodes its envelope
    /// with every field, extras included.
    pub fn envelope(&self, e: &EventEntry) -> Result<Envelope, LoadError> {
        let topic = self
            .topic_of(e)
            .ok_or_else(|| self.record_error(e.offset, "not on one of the five topics".into()))?;
        let raw = self.record_bytes(e.offset)?;
        let data = match crate::session::reader::parse_one(&raw, e.offset) {
            Ok(RecordRef::Event { data, .. }) => data,
            Ok(_) => return Err(self.record_error(e.offset, "not an event record".into())),
            Err(c) => return Err(self.record_error(e.offset, c.reason)),
        };
        Envelope::decode(topic, data)
            .map_err(|err: EnvelopeError| self.record_error(e.offset, err.to_string()))
    }

    /// The state stored in a file snapshot, as (path, value) pairs.
    pub fn snapshot_state(&self, mark: &SnapshotMark) -> Result<Vec<(String, f64)>, LoadError> {
        let raw = self.record_bytes(mark.offset)?;
        let state = match crate::session::reader::parse_one(&raw, mark.offset) {
            Ok(RecordRef::Snapshot { state, .. }) => state,
            Ok(_) => return Err(self.record_error(mark.offset, "not a snapshot record".into())),
            Err(c) => return Err(self.record_error(mark.offset, c.reason)),
        };
        let mut out = Vec::new();
        snapshot_entries(state, |p, v| {
            out.push((String::from_utf8_lossy(p).into_owned(), v))
        })
        .map_err(|err| self.record_error(mark.offset, err.to_string()))?;
        Ok(out)
    }

    fn record_error(&self, offset: u64, reason: String) -> LoadError {
        LoadError::Record {
            path: self.path.clone(),
            offset,
            reason,
        }
    }

    /// The raw bytes of the record at `offset` (read until it is complete).
    fn record_bytes(&self, offset: u64) -> Result<Vec<u8>, LoadError> {
        let mut len = 1024usize;
        loop {
            let avail = self.file_bytes.saturating_sub(offset) as usize;
            let want = len.min(avail);
            let mut buf = vec![0u8; want];
            self.file
                .read_exact_at(&mut buf, offset)
                .map_err(|err| self.record_error(offset, err.to_string()))?;
            match crate::session::reader::record_len(&buf) {
                Some(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                None if want < avail && len < crate::session::reader::MAX_RECORD_BYTES => len *= 4,
                None => return Err(self.record_error(offset, "record is cut short".into())),
            }
        }
    }
}

/// Collects events during a load.
struct Builder {
    path: PathBuf,
    file_bytes: u64,
    events: Vec<EventEntry>,
    names: Interner,
    topic_ids: Interner,
    producers: Interner,
    session_ids: Vec<Box<str>>,
    last_session: Vec<u8>,
    snapshots: Vec<SnapshotMark>,
    /// Per snapshot (parallel to `snapshots`): where its entries start in `snapshot_entries`.
    snapshot_starts: Vec<u32>,
    /// Every snapshot's (name, value) entries, as stored.
    snapshot_entries: Vec<(NameId, f64)>,
    by_topic: Vec<u64>,
}

impl Builder {
    /// A builder for `span` bytes of a file of `file_bytes`.
    fn new(path: &Path, file_bytes: u64, span: u64) -> Self {
        let mut topic_ids = Interner::default();
        for t in Topic::ALL {
            topic_ids.intern(t.name().as_bytes());
        }
        Builder {
            path: path.to_owned(),
            file_bytes,
            // records average a little over 200 bytes; start near the final size
            events: Vec::with_capacity((span / 200) as usize),
            names: Interner::default(),
            topic_ids,
            producers: Interner::default(),
            session_ids: Vec::new(),
            last_session: Vec::new(),
            snapshots: Vec::new(),
            snapshot_starts: Vec::new(),
            snapshot_entries: Vec::new(),
            by_topic: vec![0; Topic::ALL.len()],
        }
    }

    /// A snapshot record: its place, and its entries with interned paths. An
    /// entry that is not a (string, number) pair ends the snapshot's entries
    /// there; the ones before it count.
    fn snapshot(&mut self, ts_ms: i64, offset: u64, state: &[u8]) {
        self.snapshots.push(SnapshotMark { ts_ms, offset });
        self.snapshot_starts
            .push(self.snapshot_entries.len() as u32);
        let (names, entries) = (&mut self.names, &mut self.snapshot_entries);
        let _ = snapshot_entries(state, |path, value| {
            let id = names.intern(path);
            if id != NO_NAME {
                entries.push((id, value));
            }
        });
    }

    fn too_many(&self, what: &'static str, limit: u64) -> LoadError {
        LoadError::TooMany {
            path: self.path.clone(),
            what,
            limit,
        }
    }

    #[inline]
    fn event(
        &mut self,
        offset: u64,
        topic: &[u8],
        known: Option<Topic>,
        f: &crate::session::reader::EventFields<'_>,
    ) -> Result<(), LoadError> {
        let topic_id = match known {
            Some(t) => t as u32,
            None => {
                let id = self.topic_ids.intern(topic);
                if id > u8::MAX as u32 {
                    return Err(self.too_many("topics", 256));
                }
                self.by_topic.resize(self.topic_ids.names.len(), 0);
                id
            }
        };
        self.by_topic[topic_id as usize] += 1;
        let name = match f.name {
            Some(n) => {
                let id = self.names.intern(n);
                if id == NO_NAME {
                    return Err(self.too_many("names", NO_NAME as u64));
                }
                id
            }
            None => NO_NAME,
        };
        let producer = self.producers.intern(f.producer_id);
        if producer > u16::MAX as u32 {
            return Err(self.too_many("producers", 1 << 16));
        }
        if f.session_id != self.last_session.as_slice() {
            self.last_session.clear();
            self.last_session.extend_from_slice(f.session_id);
            let s = String::from_utf8_lossy(f.session_id);
            if !self.session_ids.iter().any(|x| **x == *s) {
                self.session_ids.push(s.into_owned().into_boxed_str());
            }
        }
        self.events.push(EventEntry {
            ts_ms: f.ts_ms,
            value: f.value,
            offset,
            name,
            producer: producer as u16,
            topic: topic_id as u8,
            actor: f.actor,
        });
        Ok(())
    }

    /// Orders the events by `ts_ms`, stably.
    fn sort_events(&mut self) {
        split::sort_nearly_sorted(&mut self.events);
    }

    /// Takes in the names, producers, topics, session ids, topic counts and
    /// snapshots of the builder of the next part of the file, numbering what
    /// is new to this one as a one-part read would have; returns that part's
    /// events renumbered to match.
    fn absorb(&mut self, next: Builder) -> Result<Vec<EventEntry>, LoadError> {
        let names: Vec<u32> = next
            .names
            .in_id_order()
            .map(|n| self.names.intern(n))
            .collect();
        if self.names.names.len() > NO_NAME as usize {
            return Err(self.too_many("names", NO_NAME as u64));
        }
        let producers: Vec<u32> = next
            .producers
            .in_id_order()
            .map(|p| self.producers.intern(p))
            .collect();
        if self.producers.names.len() > 1 << 16 {
            return Err(self.too_many("producers", 1 << 16));
        }
        let topics: Vec<u32> = next
            .topic_ids
            .in_id_order()
            .map(|t| self.topic_ids.intern(t))
            .collect();
        if self.topic_ids.names.len() > 256 {
            return Err(self.too_many("topics", 256));
        }
        self.by_topic.resize(self.topic_ids.names.len(), 0);
        for (local, n) in next.by_topic.iter().enumerate() {
            self.by_topic[topics[local] as usize] += n;
        }
        for s in next.session_ids {
            if !self.session_ids.contains(&s) {
                self.session_ids.push(s);
            }
        }
        self.snapshots.extend_from_slice(&next.snapshots);
        let base = self.snapshot_entries.len() as u32;
        self.snapshot_starts
            .extend(next.snapshot_starts.iter().map(|&s| s + base));
        self.snapshot_entries.extend(
            next.snapshot_entries
                .iter()
                .map(|&(name, v)| (names[name as usize], v)),
        );

        let mut events = next.events;
        let same = |map: &[u32]| map.iter().enumerate().all(|(i, &g)| i as u32 == g);
        if !(same(&names) && same(&producers) && same(&topics)) {
            for e in &mut events {
                if e.name != NO_NAME {
                    e.name = names[e.name as usize];
                }
                e.producer = producers[e.producer as usize] as u16;
                e.topic = topics[e.topic as usize] as u8;
            }
        }
        Ok(events)
    }

    fn finish(self, file: File, report: ReadReport) -> Session {
        let Builder {
            path,
            file_bytes,
            mut events,
            names,
            topic_ids,
            producers,
            session_ids,
            snapshots,
            snapshot_starts,
            snapshot_entries,
            by_topic,
            ..
        } = self;
        debug_assert!(events.is_sorted_by_key(|e| e.ts_ms));
        events.shrink_to_fit();

        let n_names = names.names.len();
        let mut counts = vec![0u32; n_names];
        let mut is_param = vec![false; n_names];
        let mut n_params = 0usize;
        for e in &events {
            if e.name != NO_NAME {
                counts[e.name as usize] += 1;
                if e.topic == Topic::Params as u8 {
                    is_param[e.name as usize] = true;
                    n_params += 1;
                }
            }
        }
        // a path a snapshot holds is a parameter even when no event sets it
        for &(name, _) in &snapshot_entries {
            is_param[name as usize] = true;
        }
        let mut lanes: Vec<Vec<u32>> = counts
            .iter()
            .map(|&n| Vec::with_capacity(n as usize))
            .collect();
        let mut params = Vec::with_capacity(n_params);
        for (i, e) in events.iter().enumerate() {
            if e.name != NO_NAME {
                lanes[e.name as usize].push(i as u32);
                if e.topic == Topic::Params as u8 {
                    params.push(i as u32);
                }
            }
        }

        let mut param_names: Vec<NameId> = (0..n_names as u32)
            .filter(|&id| is_param[id as usize])
            .collect();
        param_names
            .sort_unstable_by(|&a, &b| names.names[a as usize].cmp(&names.names[b as usize]));
        let mut param_slot = vec![u32::MAX; n_names];
        for (slot, &id) in param_names.iter().enumerate() {
            param_slot[id as usize] = slot as u32;
        }

        // A checkpoint costs one value per parameter; spacing them at least
        // that many events apart keeps them under 16 bytes per parameter event.
        let checkpoint_every = MIN_CHECKPOINT_EVERY.max(param_names.len());
        let mut checkpoints = Vec::with_capacity(params.len() / checkpoint_every + 1);
        let mut current: Vec<Option<f64>> = vec![None; param_names.len()];
        for (k, &i) in params.iter().enumerate() {
            if k % checkpoint_every == 0 {
                checkpoints.push(Checkpoint {
                    values: current.clone().into_boxed_slice(),
                });
            }
            let e = &events[i as usize];
            current[param_slot[e.name as usize] as usize] = Some(e.value);
        }
        if params.len() % checkpoint_every == 0 {
            checkpoints.push(Checkpoint {
                values: current.into_boxed_slice(),
            });
        }
        let overlay = snapshot_overlay(
            &snapshots,
            &snapshot_starts,
            &snapshot_entries,
            &events,
            &params,
            &param_slot,
            param_names.len(),
        );

        Session {
            path,
            file,
            events,
            names,
            topics: topic_ids.names,
            producers,
            session_ids,
            lanes,
            param_names,
            param_slot,
            params,
            checkpoints,
            checkpoint_every,
            snapshots,
            overlay,
            by_topic,
            report,
            file_bytes,
        }
    }
}

/// Keeps, per snapshot in `ts_ms` order, the entries of paths that no event
/// has set by the snapshot's instant (the only ones [`Session::state_at`]
/// can need), by slot; a path listed twice keeps its last value.
fn snapshot_overlay(
    marks: &[SnapshotMark],
    starts: &[u32],
    entries: &[(NameId, f64)],
    events: &[EventEntry],
    params: &[u32],
    param_slot: &[u32],
    slots: usize,
) -> SnapshotOverlay {
    let mut first_set = vec![i64::MAX; slots];
    for &i in params.iter().rev() {
        let e = &events[i as usize];
        first_set[param_slot[e.name as usize] as usize] = e.ts_ms;
    }
    let mut order: Vec<usize> = (0..marks.len()).collect();
    order.sort_by_key(|&k| marks[k].ts_ms); // stable: ties keep file order
    let mut overlay = SnapshotOverlay::default();
    for k in order {
        let ts = marks[k].ts_ms;
        let end = starts.get(k + 1).map_or(entries.len(), |&e| e as usize);
        let from = overlay.entries.len();
        overlay.marks.push((ts, from as u32));
        for &(name, v) in &entries[starts[k] as usize..end] {
            let slot = param_slot[name as usize];
            if first_set[slot as usize] > ts {
                overlay.entries.push((slot, v));
            }
        }
        let own = &mut overlay.entries[from..];
        own.sort_by_key(|x| x.0); // stable: of a doubled path, the last stays last
        let mut kept: Vec<(u32, f64)> = Vec::with_capacity(own.len());
        for &x in own.iter() {
            match kept.last_mut() {
                Some(last) if last.0 == x.0 => *last = x,
                _ => kept.push(x),
            }
        }
        overlay.entries.truncate(from);
        overlay.entries.extend(kept);
    }
    overlay.entries.shrink_to_fit();
    overlay
}
