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

use hashbrown::HashMap;

use crate::envelope::{ActorKind, Envelope, EnvelopeError, Topic};
use crate::session::reader::{
    snapshot_entries, ReadError, ReadOptions, ReadReport, Reader, RecordRef,
};

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
    by_topic: Vec<u64>,
    report: ReadReport,
    file_bytes: u64,
}

const MIN_CHECKPOINT_EVERY: usize = 256;

impl Session {
    /// Loads a session file (strict: corruption is an error naming its offset).
    pub fn open(path: &Path) -> Result<Session, LoadError> {
        Self::open_with(path, ReadOptions::default(), |_| ControlFlow::Continue(()))
    }

    /// Loads with options, reporting progress; the callback may cancel the load.
    pub fn open_with(
        path: &Path,
        opts: ReadOptions,
        mut progress: impl FnMut(LoadProgress) -> ControlFlow<()>,
    ) -> Result<Session, LoadError> {
        let mut reader = Reader::open(path, opts)?;
        let file = File::open(path).map_err(|source| ReadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let total_bytes = file
            .metadata()
            .map_err(|source| ReadError::Io {
                path: path.to_owned(),
                source,
            })?
            .len();
        if total_bytes == 0 {
            return Err(LoadError::Empty(path.to_owned()));
        }
        let mut b = Builder::new(path, total_bytes);
        let mut next_progress = 0u64;
        while let Some(rec) = reader.next()? {
            match rec.record {
                RecordRef::Event {
                    topic,
                    known_topic,
                    fields,
                    ..
                } => b.event(rec.offset, topic, known_topic, &fields)?,
                RecordRef::Snapshot { ts_ms, .. } => b.snapshots.push(SnapshotMark {
                    ts_ms,
                    offset: rec.offset,
                }),
                RecordRef::Unknown => {}
            }
            if rec.offset >= next_progress {
                next_progress = rec.offset + (4 << 20);
                let p = LoadProgress {
                    bytes_read: rec.offset,
                    total_bytes,
                };
                if progress(p).is_break() {
                    return Err(LoadError::Cancelled);
                }
            }
        }
        let report = reader.report().clone();
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
            + names
            + lanes
            + cps
    }

    /// The exact parameter state at `t`: every `noise.params` event with
    /// `ts_ms <= t`, applied in `ts_ms` order (stable), starting from the
    /// nearest checkpoint at or before `t`. Returns (path id, value) pairs
    /// in sorted path order.
    ///
    /// This equals FORMATS.md's snapshot rule whenever producers' clocks
    /// agree, and stays exact when they are skewed: a file snapshot is taken
    /// in arrival order and may hold a value whose `ts_ms` lies after it.
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
        values
    }

    /// The value of one parameter at `t`, if it has been set by then.
    pub fn value_at(&self, name: NameId, t: i64) -> Option<f64> {
        let lane = self.lane(name);
        let n = lane.partition_point(|&i| self.events[i as usize].ts_ms <= t);
        let e = &self.events[*lane.get(n.checked_sub(1)?)? as usize];
        (self.topic_of(e) == Some(Topic::Params)).then_some(e.value)
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
    by_topic: Vec<u64>,
}

impl Builder {
    fn new(path: &Path, file_bytes: u64) -> Self {
        let mut topic_ids = Interner::default();
        for t in Topic::ALL {
            topic_ids.intern(t.name().as_bytes());
        }
        Builder {
            path: path.to_owned(),
            file_bytes,
            // records average ~200 bytes; start near the final size
            events: Vec::with_capacity((file_bytes / 256) as usize),
            names: Interner::default(),
            topic_ids,
            producers: Interner::default(),
            session_ids: Vec::new(),
            last_session: Vec::new(),
            snapshots: Vec::new(),
            by_topic: vec![0; Topic::ALL.len()],
        }
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
            by_topic,
            ..
        } = self;
        // Arrival order is nearly ts order; the stable sort is close to linear on it.
        if !events.is_sorted_by_key(|e| e.ts_ms) {
            events.sort_by_key(|e| e.ts_ms);
        }
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
            by_topic,
            report,
            file_bytes,
        }
    }
}
