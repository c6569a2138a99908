//! The live history: every parameter and mod-bus value and every event seen
//! on the bus since the window opened, kept within a memory budget, oldest
//! dropped first, so the performer can zoom back over earlier minutes while
//! data keeps arriving and the window's memory stays flat for hours.
//!
//! Each lane (a path, or `bus.N`) keeps its times, values and who set them
//! in ring buffers with a [`Summary`] for drawing at any zoom; one queue
//! records the order events came in, so eviction takes the oldest event of
//! all lanes. Markers (`noise.events`) share the budget.

use std::collections::{HashMap, VecDeque};

use super::timeline::lod::{Series, Summary};
use super::timeline::markers::Marker;

/// Bytes an event costs in the history (time, value, mapped value, who, order, pyramid share).
pub const EVENT_BYTES: usize = 8 + 4 + 4 + 4 + 2 + 2;
/// Bytes a marker costs, besides its text.
pub const MARKER_BYTES: usize = 64;
/// The default budget.
pub const DEFAULT_BUDGET_MB: u32 = 64;

/// One lane of the live history.
#[derive(Debug, Clone)]
pub struct LiveLane {
    /// The path (`gen.1.cutoff`, `bus.3`).
    pub path: String,
    ts: VecDeque<i64>,
    values: VecDeque<f32>,
    mapped: VecDeque<f32>,
    /// Actor index << 16 | producer index.
    who: VecDeque<u32>,
    /// Logical index of the front.
    first: usize,
    summary: Summary,
}

impl LiveLane {
    fn new(path: String) -> LiveLane {
        LiveLane {
            path,
            ts: VecDeque::new(),
            values: VecDeque::new(),
            mapped: VecDeque::new(),
            who: VecDeque::new(),
            first: 0,
            summary: Summary::new(),
        }
    }

    fn pop_front(&mut self) {
        if self.ts.pop_front().is_some() {
            self.values.pop_front();
            self.mapped.pop_front();
            self.who.pop_front();
            self.first += 1;
            self.summary.evict_to(self.first);
        }
    }

    /// Events kept.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether the lane holds no event.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Time of the newest event.
    pub fn newest_ts(&self) -> Option<i64> {
        self.ts.back().copied()
    }

    /// The value mapped to real units of event `i`, if the producer sent one.
    pub fn mapped(&self, i: usize) -> Option<f64> {
        let v = *self.mapped.get(i.checked_sub(self.first)?)?;
        v.is_finite().then_some(f64::from(v))
    }

    fn who(&self, i: usize) -> Option<u32> {
        self.who.get(i.checked_sub(self.first)?).copied()
    }
}

impl Series for LiveLane {
    fn first(&self) -> usize {
        self.first
    }
    fn end(&self) -> usize {
        self.first + self.ts.len()
    }
    fn ts(&self, i: usize) -> i64 {
        self.ts[i - self.first]
    }
    fn value(&self, i: usize) -> f64 {
        f64::from(self.values[i - self.first])
    }
    fn summary(&self) -> &Summary {
        &self.summary
    }
}

/// The live history within its budget.
#[derive(Debug, Clone)]
pub struct LiveHistory {
    lanes: Vec<LiveLane>,
    by_path: HashMap<String, u16>,
    /// Lane of each event, oldest first.
    order: VecDeque<u16>,
    names: Vec<String>,
    name_ids: HashMap<String, u16>,
    markers: VecDeque<Marker>,
    marker_bytes: usize,
    budget: usize,
    evicted: u64,
}

impl Default for LiveHistory {
    fn default() -> Self {
        LiveHistory::new(DEFAULT_BUDGET_MB as usize * 1_000_000)
    }
}

/// What an event of the history is, for the hover readout.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    /// Time.
    pub ts_ms: i64,
    /// Normalized value.
    pub value: f64,
    /// In real units, if sent.
    pub value_mapped: Option<f64>,
    /// Actor.
    pub actor: String,
    /// Producer.
    pub producer: String,
}

impl LiveHistory {
    /// An empty history keeping at most about `budget` bytes.
    pub fn new(budget: usize) -> LiveHistory {
        LiveHistory {
            lanes: Vec::new(),
            by_path: HashMap::new(),
            order: VecDeque::new(),
            names: Vec::new(),
            name_ids: HashMap::new(),
            markers: VecDeque::new(),
            marker_bytes: 0,
            budget,
            evicted: 0,
        }
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Changes the budget (evicting at once if over it).
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.evict();
    }

    /// Bytes counted against the budget.
    pub fn bytes(&self) -> usize {
        self.order.len() * EVENT_BYTES + self.marker_bytes
    }

    /// Events and markers dropped to stay within the budget.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Events kept (all lanes).
    pub fn events(&self) -> usize {
        self.order.len()
    }

    /// The lanes, in order of first appearance.
    pub fn lanes(&self) -> &[LiveLane] {
        &self.lanes
    }

    /// The lane of a path.
    pub fn lane(&self, path: &str) -> Option<&LiveLane> {
        self.by_path.get(path).map(|&i| &self.lanes[i as usize])
    }

    /// Markers kept, oldest first.
    pub fn markers(&self) -> &VecDeque<Marker> {
        &self.markers
    }

    /// Oldest and newest time held, if anything is.
    pub fn range(&self) -> Option<(i64, i64)> {
        let oldest = self
            .lanes
            .iter()
            .filter_map(|l| l.ts.front().copied())
            .chain(self.markers.front().map(|m| m.ts_ms))
            .min()?;
        let newest = self
            .lanes
            .iter()
            .filter_map(LiveLane::newest_ts)
            .chain(self.markers.back().map(|m| m.ts_ms))
            .max()?;
        Some((oldest, newest.max(oldest)))
    }

    fn name_id(&mut self, name: &str) -> u16 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len().min(u16::MAX as usize) as u16;
        if (id as usize) == self.names.len() {
            self.names.push(name.to_owned());
            self.name_ids.insert(name.to_owned(), id);
        }
        id
    }

    /// Records a value (times within a lane are kept non-decreasing).
    pub fn push_value(
        &mut self,
        path: &str,
        ts_ms: i64,
        value: f64,
        value_mapped: Option<f64>,
        actor: &str,
        producer: &str,
    ) {
        let lane_id = match self.by_path.get(path) {
            Some(&i) => i,
            None => {
                if self.lanes.len() >= u16::MAX as usize {
                    return;
                }
                let i = self.lanes.len() as u16;
                self.lanes.push(LiveLane::new(path.to_owned()));
                self.by_path.insert(path.to_owned(), i);
                i
            }
        };
        let who = (u32::from(self.name_id(actor)) << 16) | u32::from(self.name_id(producer));
        let lane = &mut self.lanes[lane_id as usize];
        let ts = lane.ts.back().map_or(ts_ms, |&last| ts_ms.max(last));
        lane.ts.push_back(ts);
        lane.values.push_back(value as f32);
        lane.mapped
            .push_back(value_mapped.map_or(f32::NAN, |v| v as f32));
        lane.who.push_back(who);
        lane.summary.push(value as f32);
        self.order.push_back(lane_id);
        self.evict();
    }

    /// Records a marker (kept in arrival order).
    pub fn push_marker(&mut self, marker: Marker) {
        self.marker_bytes += MARKER_BYTES + marker.text_bytes();
        self.markers.push_back(marker);
        self.evict();
    }

    /// Drops the oldest events and markers until within the budget.
    fn evict(&mut self) {
        while self.bytes() > self.budget {
            let oldest_event = self
                .order
                .front()
                .and_then(|&l| self.lanes[l as usize].ts.front().copied());
            let oldest_marker = self.markers.front().map(|m| m.ts_ms);
            let take_marker = match (oldest_event, oldest_marker) {
                (Some(e), Some(m)) => m <= e,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => break,
            };
            if take_marker {
                if let Some(m) = self.markers.pop_front() {
                    self.marker_bytes -= MARKER_BYTES + m.text_bytes();
                }
            } else if let Some(l) = self.order.pop_front() {
                self.lanes[l as usize].pop_front();
            }
            self.evicted += 1;
        }
    }

    /// Event `i` of a lane, for the hover readout.
    pub fn event(&self, lane: &LiveLane, i: usize) -> Option<LiveEvent> {
        if i < lane.first() || i >= lane.end() {
            return None;
        }
        let who = lane.who(i)?;
        let name = |id: u32| self.names.get(id as usize).cloned().unwrap_or_default();
        Some(LiveEvent {
            ts_ms: lane.ts(i),
            value: lane.value(i),
            value_mapped: lane.mapped(i),
            actor: name(who >> 16),
            producer: name(who & 0xffff),
        })
    }

    /// Heap bytes actually held (capacities), for the benches.
    pub fn heap_bytes(&self) -> usize {
        let lanes: usize = self
            .lanes
            .iter()
            .map(|l| {
                l.ts.capacity() * 8
                    + (l.values.capacity() + l.mapped.capacity() + l.who.capacity()) * 4
                    + l.summary.heap_bytes()
            })
            .sum();
        lanes + self.order.capacity() * 2 + self.marker_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::timeline::markers::MarkerKind;

    #[test]
    fn the_budget_evicts_oldest_first_across_lanes_and_markers() {
        let budget = 100 * EVENT_BYTES;
        let mut h = LiveHistory::new(budget);
        for i in 0..300i64 {
            let path = if i % 3 == 0 { "gen.1.cutoff" } else { "bus.2" };
            h.push_value(path, 1000 + i, (i % 10) as f64 / 10.0, None, "user", "gui");
            assert!(h.bytes() <= budget);
        }
        assert_eq!(h.events(), 100);
        assert_eq!(h.evicted(), 200);
        // what is left is the newest 100, whatever their lane
        let (oldest, newest) = h.range().unwrap();
        assert_eq!((oldest, newest), (1200, 1299));
        let a = h.lane("gen.1.cutoff").unwrap();
        let b = h.lane("bus.2").unwrap();
        assert_eq!(a.len() + b.len(), 100);
        // events 200..300 are left (ts 1200..1300): 201 is the first of a's, 200 of b's
        assert_eq!(a.ts(a.first()), 1201);
        assert_eq!(b.ts(b.first()), 1200);
        // the summary follows the eviction
        assert!(a.summary().min_max(0, a.end(), |i| a.value(i)).is_some());
        assert_eq!(a.summary().first(), a.first());

        // a marker older than every event goes first
        let m = Marker {
            ts_ms: 1100,
            kind: MarkerKind::Preset("pad".into()),
            detail: String::new(),
        };
        h.push_marker(m);
        assert!(h.markers().is_empty(), "the oldest thing held is dropped");
        let m = Marker {
            ts_ms: 1300,
            kind: MarkerKind::Note,
            detail: "note=60".into(),
        };
        h.push_marker(m);
        assert_eq!(h.markers().len(), 1);
        assert!(h.bytes() <= budget);

        // a smaller budget evicts at once
        h.set_budget(10 * EVENT_BYTES);
        assert!(h.bytes() <= 10 * EVENT_BYTES);
        assert_eq!(h.range().unwrap().1, 1300);
    }

    #[test]
    fn events_read_back_with_who_set_them_and_times_stay_ordered() {
        let mut h = LiveHistory::new(1 << 20);
        h.push_value("gen.1.cutoff", 50, 0.2, Some(440.0), "user", "python.gui");
        // a skewed clock: kept in order within the lane
        h.push_value("gen.1.cutoff", 40, 0.4, None, "midi", "sc.bridge");
        let lane = h.lane("gen.1.cutoff").unwrap();
        assert_eq!(lane.ts(1), 50);
        let e = h.event(lane, 0).unwrap();
        assert_eq!(e.actor, "user");
        assert_eq!(e.producer, "python.gui");
        assert_eq!(e.value_mapped, Some(440.0));
        let e = h.event(lane, 1).unwrap();
        assert_eq!((e.actor.as_str(), e.value_mapped), ("midi", None));
        assert!(h.event(lane, 2).is_none());
    }
}
