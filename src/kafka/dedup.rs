//! The duplicate filter of docs/formats.md section 2: remembers the last N
//! (session_id, producer_id, seq) triples, N = 50,000 by default.
//!
//! It sits on the subscriber's hot path (hundreds of thousands of messages a
//! second), so the strings are interned: each (session_id, producer_id) pair
//! becomes a small stream number once, and the window itself holds
//! `(stream, seq)` pairs of 12 bytes in a hash set plus a ring of insertion
//! order. A stream is forgotten when its last triple leaves the window, so
//! memory stays bounded by the window whatever producers come and go. The
//! common case of consecutive messages from one producer skips the intern
//! lookup entirely.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap, HashSet};

/// Default window size (docs/formats.md asks for at least 50,000).
pub const DEFAULT_WINDOW: usize = 50_000;

/// An owned (session_id, producer_id) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamKey {
    session_id: Box<str>,
    producer_id: Box<str>,
}

impl Hash for StreamKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        StreamRef(&self.session_id, &self.producer_id).hash(state)
    }
}

/// A borrowed pair, looked up without allocating.
#[derive(Clone, Copy)]
struct StreamRef<'a>(&'a str, &'a str);

impl Hash for StreamRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl Equivalent<StreamKey> for StreamRef<'_> {
    fn equivalent(&self, key: &StreamKey) -> bool {
        *key.session_id == *self.0 && *key.producer_id == *self.1
    }
}

struct StreamSlot {
    key: StreamKey,
    /// Triples of this stream currently in the window.
    refs: u32,
}

/// Seqs below this are packed with their stream number into one `u64`
/// (stream numbers stay far below 2^24: at most capacity + 1 exist at once),
/// which halves the hash set's memory and its cache misses. Larger seqs,
/// which real producers never reach, go to a separate set.
const PACKED_SEQ_LIMIT: u64 = 1 << 40;
const PACKED_STREAM_LIMIT: u32 = 1 << 24;

/// A bounded memory of seen (session_id, producer_id, seq) triples.
pub struct DedupWindow {
    capacity: usize,
    /// `stream << 40 | seq` for the common case.
    seen: HashSet<u64>,
    /// Triples whose seq or stream does not pack.
    seen_wide: HashSet<(u32, u64)>,
    order: VecDeque<(u32, u64)>,
    streams: HashMap<StreamKey, u32>,
    slots: Vec<Option<StreamSlot>>,
    free: Vec<u32>,
    /// The stream of the previous insert: consecutive messages usually share it.
    last: Option<u32>,
}

impl Default for DedupWindow {
    fn default() -> Self {
        DedupWindow::new(DEFAULT_WINDOW)
    }
}

impl std::fmt::Debug for DedupWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupWindow")
            .field("capacity", &self.capacity)
            .field("len", &self.order.len())
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl DedupWindow {
    /// A window remembering the last `capacity` triples (at least 1).
    pub fn new(capacity: usize) -> DedupWindow {
        let capacity = capacity.max(1);
        DedupWindow {
            capacity,
            seen: HashSet::with_capacity(capacity + 1),
            seen_wide: HashSet::new(),
            order: VecDeque::with_capacity(capacity + 1),
            streams: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            last: None,
        }
    }

    /// How many triples the window remembers at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many triples it remembers now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True before the first insert.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Records a triple. Returns `true` when it was not in the window (the
    /// message is new and should be delivered), `false` for a duplicate.
    pub fn insert(&mut self, session_id: &str, producer_id: &str, seq: u64) -> bool {
        let stream = self.stream_id(session_id, producer_id);
        if !self.seen_insert(stream, seq) {
            self.release_if_unused(stream);
            return false;
        }
        self.order.push_back((stream, seq));
        if let Some(Some(slot)) = self.slots.get_mut(stream as usize) {
            slot.refs += 1;
        }
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen_remove(old);
                if let Some(Some(slot)) = self.slots.get_mut(old.0 as usize) {
                    slot.refs -= 1;
                }
                self.release_if_unused(old.0);
            }
        }
        true
    }

    /// Whether a triple is in the window, without recording it.
    pub fn contains(&self, session_id: &str, producer_id: &str, seq: u64) -> bool {
        match self.streams.get(&StreamRef(session_id, producer_id)) {
            Some(&id) => match packed(id, seq) {
                Some(key) => self.seen.contains(&key),
                None => self.seen_wide.contains(&(id, seq)),
            },
            None => false,
        }
    }

    fn seen_insert(&mut self, stream: u32, seq: u64) -> bool {
        match packed(stream, seq) {
            Some(key) => self.seen.insert(key),
            None => self.seen_wide.insert((stream, seq)),
        }
    }

    fn seen_remove(&mut self, (stream, seq): (u32, u64)) {
        match packed(stream, seq) {
            Some(key) => self.seen.remove(&key),
            None => self.seen_wide.remove(&(stream, seq)),
        };
    }

    /// How many distinct (session_id, producer_id) pairs the window holds.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    fn stream_id(&mut self, session_id: &str, producer_id: &str) -> u32 {
        if let Some(id) = self.last {
            if let Some(Some(slot)) = self.slots.get(id as usize) {
                if StreamRef(session_id, producer_id).equivalent(&slot.key) {
                    return id;
                }
            }
        }
        let id = match self.streams.get(&StreamRef(session_id, producer_id)) {
            Some(&id) => id,
            None => {
                let key = StreamKey {
                    session_id: session_id.into(),
                    producer_id: producer_id.into(),
                };
                let slot = Some(StreamSlot {
                    key: key.clone(),
                    refs: 0,
                });
                let id = match self.free.pop() {
                    Some(id) => {
                        self.slots[id as usize] = slot;
                        id
                    }
                    None => {
                        // at most capacity + 1 streams exist at once, far below u32::MAX
                        self.slots.push(slot);
                        (self.slots.len() - 1) as u32
                    }
                };
                self.streams.insert(key, id);
                id
            }
        };
        self.last = Some(id);
        id
    }

    /// Forgets a stream that no triple in the window refers to any more.
    fn release_if_unused(&mut self, id: u32) {
        let unused = matches!(self.slots.get(id as usize), Some(Some(s)) if s.refs == 0);
        if unused {
            if let Some(slot) = self.slots[id as usize].take() {
                self.streams.remove(&slot.key);
            }
            self.free.push(id);
            if self.last == Some(id) {
                self.last = None;
            }
        }
    }
}

/// The one-`u64` form of (stream, seq), when both fit.
fn packed(stream: u32, seq: u64) -> Option<u64> {
    (seq < PACKED_SEQ_LIMIT && stream < PACKED_STREAM_LIMIT)
        .then(|| (u64::from(stream) << 40) | seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_caught_per_triple() {
        let mut w = DedupWindow::new(10);
        assert!(w.insert("s1", "p1", 1));
        assert!(!w.insert("s1", "p1", 1));
        assert!(w.insert("s1", "p1", 2));
        assert!(w.insert("s1", "p2", 1));
        assert!(w.insert("s2", "p1", 1));
        // the pair boundary matters: ("ab","c") is not ("a","bc")
        assert!(w.insert("ab", "c", 1));
        assert!(w.insert("a", "bc", 1));
        assert!(!w.insert("a", "bc", 1));
        assert!(!w.insert("s1", "p2", 1));
        assert_eq!(w.len(), 6);
        assert!(w.contains("s2", "p1", 1));
        assert!(!w.contains("s2", "p1", 2));
    }

    #[test]
    fn the_window_forgets_the_oldest_and_its_streams() {
        let mut w = DedupWindow::new(3);
        assert!(w.insert("old", "p", 1));
        for seq in 1..=3 {
            assert!(w.insert("new", "p", seq));
        }
        // ("old","p",1) has left the window: accepted again, and its stream was dropped
        assert_eq!(w.len(), 3);
        assert!(!w.contains("old", "p", 1));
        assert_eq!(w.stream_count(), 1);
        assert!(w.insert("old", "p", 1));
        // ("new","p",1) was evicted by that insert
        assert!(w.insert("new", "p", 1));
        assert!(!w.insert("new", "p", 3));
        assert!(w.stream_count() <= 2);
    }

    #[test]
    fn memory_stays_bounded_with_endless_producers() {
        let mut w = DedupWindow::new(100);
        for i in 0..10_000u64 {
            assert!(w.insert("s", &format!("p{i}"), i));
        }
        assert_eq!(w.len(), 100);
        assert_eq!(w.stream_count(), 100);
        assert!(w.slots.len() <= 101);
    }

    #[test]
    fn matches_a_naive_model() {
        use std::collections::{HashSet as StdSet, VecDeque as Q};
        let mut w = DedupWindow::new(50);
        let mut model_set: StdSet<(String, String, u64)> = StdSet::new();
        let mut model_q: Q<(String, String, u64)> = Q::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let s = format!("s{}", x % 3);
            let p = format!("p{}", (x >> 8) % 4);
            // a few seqs too large to pack take the other path
            let seq = match (x >> 16) % 40 {
                39 => u64::MAX,
                38 => PACKED_SEQ_LIMIT,
                n => n,
            };
            let t = (s.clone(), p.clone(), seq);
            let expect_new = !model_set.contains(&t);
            if expect_new {
                model_set.insert(t.clone());
                model_q.push_back(t);
                if model_q.len() > 50 {
                    let old = model_q.pop_front().unwrap();
                    model_set.remove(&old);
                }
            }
            assert_eq!(w.insert(&s, &p, seq), expect_new);
        }
    }
}
