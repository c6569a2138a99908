//! Level of detail: a min/max pyramid over a lane's values, and the
//! per-pixel buckets drawn from it.
//!
//! A lane is a time-ordered series of events. For each pixel column the
//! timeline needs the count, the smallest and largest value, and the last
//! value of the events under it. Counts come from two binary searches on the
//! times; min and max come from a [`Summary`], a pyramid of blocks of
//! [`FANOUT`] events, [`FANOUT`] blocks, and so on, so a column covering a
//! million events costs a few dozen reads. A frame therefore costs what the
//! pixels on screen cost, not what the session holds.
//!
//! The pyramid grows at the back ([`Summary::push`]) and can drop its front
//! ([`Summary::evict_to`]), so the same structure serves a loaded session
//! (built once) and the bounded live history (appended and evicted as data
//! arrives).

use std::collections::VecDeque;

/// Events per block, and blocks per block of the next level.
pub const FANOUT: usize = 16;
/// Levels of blocks above the raw values (FANOUT^LEVELS events per top block).
const LEVELS: usize = 6;

/// Min and max of a block (NaN when it holds no finite value).
type MinMax = (f32, f32);

fn merge(a: MinMax, v: MinMax) -> MinMax {
    if v.0.is_nan() {
        return a;
    }
    if a.0.is_nan() {
        return v;
    }
    (a.0.min(v.0), a.1.max(v.1))
}

const NONE: MinMax = (f32::NAN, f32::NAN);

/// A min/max pyramid over a series of values, addressed by logical index
/// (the index an event had when it was pushed; evicting the front does not
/// renumber the rest).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Logical index of the first value still covered.
    first: usize,
    /// Values pushed so far (logical end).
    end: usize,
    /// Per level: the blocks still kept, and the logical block number of the first.
    levels: Vec<(usize, VecDeque<MinMax>)>,
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Summary {
        Summary {
            first: 0,
            end: 0,
            levels: (0..LEVELS).map(|_| (0, VecDeque::new())).collect(),
        }
    }

    /// A summary of `n` values read through `value`.
    pub fn build(n: usize, value: impl Fn(usize) -> f64) -> Summary {
        let mut s = Summary::new();
        for i in 0..n {
            s.push(value(i) as f32);
        }
        s
    }

    /// Logical index of the first value covered.
    pub fn first(&self) -> usize {
        self.first
    }

    /// Logical end (one past the last value pushed).
    pub fn end(&self) -> usize {
        self.end
    }

    /// Appends a value (non-finite values count as events without a value).
    pub fn push(&mut self, v: f32) {
        let i = self.end;
        self.end += 1;
        let mm = if v.is_finite() { (v, v) } else { NONE };
        let mut span = FANOUT;
        for (start, blocks) in &mut self.levels {
            let block = i / span;
            if block == *start + blocks.len() {
                blocks.push_back(mm);
            } else if let Some(last) = blocks.back_mut() {
                *last = merge(*last, mm);
            }
            span *= FANOUT;
        }
    }

    /// Forgets values before logical index `first` (blocks that straddle it
    /// are kept whole and only used for ranges they fully cover, so they stay exact).
    pub fn evict_to(&mut self, first: usize) {
        self.first = first.clamp(self.first, self.end);
        let mut span = FANOUT;
        for (start, blocks) in &mut self.levels {
            // a block is dropped once it lies wholly before `first`
            while !blocks.is_empty() && (*start + 1) * span <= self.first {
                blocks.pop_front();
                *start += 1;
            }
            span *= FANOUT;
        }
    }

    /// Heap bytes held by the blocks.
    pub fn heap_bytes(&self) -> usize {
        self.levels
            .iter()
            .map(|(_, b)| b.capacity() * std::mem::size_of::<MinMax>())
            .sum()
    }

    /// Min and max of the finite values at logical indices `lo..hi`
    /// (`value(i)` reads the raw value of logical index `i`); `None` when
    /// there is none.
    pub fn min_max(&self, lo: usize, hi: usize, value: impl Fn(usize) -> f64) -> Option<MinMax> {
        let lo = lo.max(self.first);
        let hi = hi.min(self.end);
        if lo >= hi {
            return None;
        }
        let raw = |acc: MinMax, range: std::ops::Range<usize>| {
            range.fold(acc, |a, i| {
                let v = value(i) as f32;
                if v.is_finite() {
                    merge(a, (v, v))
                } else {
                    a
                }
            })
        };
        let mut acc = NONE;
        // raw values up to the first whole block and after the last
        let (a, b) = (lo.div_ceil(FANOUT), hi / FANOUT);
        if a >= b {
            acc = raw(acc, lo..hi);
            return finite(acc);
        }
        acc = raw(acc, lo..a * FANOUT);
        acc = raw(acc, b * FANOUT..hi);
        // whole blocks, level by level
        let (mut lo, mut hi) = (a, b);
        for (level, (start, blocks)) in self.levels.iter().enumerate() {
            let block = |acc: MinMax, range: std::ops::Range<usize>| {
                range.fold(acc, |a, j| merge(a, blocks[j - start]))
            };
            let (a, b) = (lo.div_ceil(FANOUT), hi / FANOUT);
            if a >= b || level + 1 == self.levels.len() {
                acc = block(acc, lo..hi);
                break;
            }
            acc = block(acc, lo..a * FANOUT);
            acc = block(acc, b * FANOUT..hi);
            lo = a;
            hi = b;
        }
        finite(acc)
    }
}

fn finite(mm: MinMax) -> Option<MinMax> {
    (!mm.0.is_nan()).then_some(mm)
}

/// One pixel column of a lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Events in the column.
    pub count: u32,
    /// Smallest value (NaN when none).
    pub min: f32,
    /// Largest value (NaN when none).
    pub max: f32,
    /// Value of the column's last event (NaN when none).
    pub last: f32,
}

impl Bucket {
    /// A column with no event.
    pub const EMPTY: Bucket = Bucket {
        count: 0,
        min: f32::NAN,
        max: f32::NAN,
        last: f32::NAN,
    };
}

/// A time-ordered series of events, addressed by logical index
/// `first()..end()`, with a [`Summary`] of its values.
pub trait Series {
    /// Logical index of the first event.
    fn first(&self) -> usize;
    /// One past the last event.
    fn end(&self) -> usize;
    /// Time of event `i` (non-decreasing in `i`).
    fn ts(&self, i: usize) -> i64;
    /// Value of event `i`.
    fn value(&self, i: usize) -> f64;
    /// The pyramid over the values.
    fn summary(&self) -> &Summary;

    /// The first event at or after `t`.
    fn lower_bound(&self, t: i64) -> usize {
        let (mut lo, mut hi) = (self.first(), self.end());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ts(mid) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The first event at or after `t`, searching from `from` onwards (all
    /// events before `from` are before `t`): a galloping search, so a walk
    /// across pixel columns costs the log of each column's events, not of
    /// the whole series.
    fn lower_bound_from(&self, from: usize, t: i64) -> usize {
        let end = self.end();
        let mut lo = from.max(self.first());
        if lo >= end || self.ts(lo) >= t {
            return lo;
        }
        // ts(lo) < t: widen the step until an event at or after t is passed
        let mut step = 1;
        let mut hi = lo + 1;
        while hi < end && self.ts(hi) < t {
            lo = hi;
            step *= 2;
            hi = (lo + step).min(end);
        }
        // ts(lo) < t, and hi == end or ts(hi) >= t
        let (mut a, mut b) = (lo + 1, hi);
        while a < b {
            let mid = a + (b - a) / 2;
            if self.ts(mid) < t {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        a
    }

    /// The value of the last event before `t` (NaN if none).
    fn value_before(&self, t: i64) -> f32 {
        let i = self.lower_bound(t);
        if i > self.first() {
            self.value(i - 1) as f32
        } else {
            f32::NAN
        }
    }

    /// The event nearest to `t`, if any.
    fn nearest(&self, t: i64) -> Option<usize> {
        let i = self.lower_bound(t);
        let before = (i > self.first()).then(|| i - 1);
        let after = (i < self.end()).then_some(i);
        match (before, after) {
            (Some(b), Some(a)) => Some(if t - self.ts(b) <= self.ts(a) - t {
                b
            } else {
                a
            }),
            (b, a) => b.or(a),
        }
    }
}

/// Where pixel column `c` of `width` starts over `[t0, t1)`.
pub fn column_start(t0: i64, t1: i64, width: usize, c: usize) -> i64 {
    let span = (t1 - t0) as f64;
    t0 + (span * c as f64 / width as f64).floor() as i64
}

/// Where pixel column `c` of `width` ends over `[t0, t1)` (the next one's
/// start; `t1` for the last).
pub fn column_end(t0: i64, t1: i64, width: usize, c: usize) -> i64 {
    if c + 1 >= width {
        t1
    } else {
        column_start(t0, t1, width, c + 1)
    }
}

/// Buckets `width` columns over `[t0, t1)` of a series, from its summary:
/// a galloping search from the previous column's end and a pyramid walk per
/// column.
pub fn buckets<S: Series + ?Sized>(s: &S, t0: i64, t1: i64, width: usize) -> Vec<Bucket> {
    let mut out = vec![Bucket::EMPTY; width];
    if width == 0 || t1 <= t0 || s.end() <= s.first() {
        return out;
    }
    let mut lo = s.lower_bound(t0);
    for (c, b) in out.iter_mut().enumerate() {
        let edge = column_end(t0, t1, width, c);
        let hi = s.lower_bound_from(lo, edge);
        if hi > lo {
            b.count = (hi - lo) as u32;
            if let Some((min, max)) = s.summary().min_max(lo, hi, |i| s.value(i)) {
                b.min = min;
                b.max = max;
            }
            let last = s.value(hi - 1) as f32;
            b.last = if last.is_finite() { last } else { f32::NAN };
        }
        lo = hi;
    }
    out
}

/// Counts per column only (the scrub bar's density), no values.
pub fn counts<S: Series + ?Sized>(s: &S, t0: i64, t1: i64, width: usize) -> Vec<u32> {
    counts_by(|from, t| s.lower_bound_from(from, t), t0, t1, width)
}

/// Counts per column of any sorted times, given `lower(from, t)`: the
/// number of events before `t`, knowing that the first `from` are.
pub fn counts_by(lower: impl Fn(usize, i64) -> usize, t0: i64, t1: i64, width: usize) -> Vec<u32> {
    let mut out = vec![0; width];
    if width == 0 || t1 <= t0 {
        return out;
    }
    let mut lo = lower(0, t0);
    for (c, n) in out.iter_mut().enumerate() {
        let edge = column_end(t0, t1, width, c);
        let hi = lower(lo, edge).max(lo);
        *n = (hi - lo) as u32;
        lo = hi;
    }
    out
}

/// A series over plain slices (times, values), for tests, benches and
/// short series.
#[derive(Debug, Clone)]
pub struct SliceSeries<'a> {
    ts: &'a [i64],
    values: &'a [f64],
    summary: Summary,
}

impl<'a> SliceSeries<'a> {
    /// A series over `ts` (non-decreasing) and `values` of the same length.
    pub fn new(ts: &'a [i64], values: &'a [f64]) -> SliceSeries<'a> {
        let n = ts.len().min(values.len());
        SliceSeries {
            ts,
            values,
            summary: Summary::build(n, |i| values[i]),
        }
    }
}

impl Series for SliceSeries<'_> {
    fn first(&self) -> usize {
        0
    }
    fn end(&self) -> usize {
        self.summary.end()
    }
    fn ts(&self, i: usize) -> i64 {
        self.ts[i]
    }
    fn value(&self, i: usize) -> f64 {
        self.values[i]
    }
    fn summary(&self) -> &Summary {
        &self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every event visited once, assigned to the column whose start it has
    /// passed: what the pyramid must reproduce.
    fn brute_force(ts: &[i64], vs: &[f64], t0: i64, t1: i64, width: usize) -> Vec<Bucket> {
        let mut out = vec![Bucket::EMPTY; width];
        for (&t, &v) in ts.iter().zip(vs) {
            if t < t0 || t >= t1 {
                continue;
            }
            let mut c = 0;
            while c + 1 < width && column_start(t0, t1, width, c + 1) <= t {
                c += 1;
            }
            let b = &mut out[c];
            b.count += 1;
            let v = v as f32;
            if v.is_finite() {
                b.min = if b.min.is_nan() { v } else { b.min.min(v) };
                b.max = if b.max.is_nan() { v } else { b.max.max(v) };
            }
            b.last = if v.is_finite() { v } else { f32::NAN };
        }
        out
    }

    fn same(a: &[Bucket], b: &[Bucket]) -> bool {
        let eq = |x: f32, y: f32| (x.is_nan() && y.is_nan()) || x == y;
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.count == y.count && eq(x.min, y.min) && eq(x.max, y.max) && eq(x.last, y.last)
            })
    }

    #[test]
    fn the_pyramid_equals_brute_force_on_random_lanes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for round in 0..60 {
            let n = match round % 4 {
                0 => rng.gen_range(0..40),
                1 => rng.gen_range(40..2_000),
                2 => rng.gen_range(2_000..20_000),
                _ => rng.gen_range(20_000..120_000),
            };
            let mut t = rng.gen_range(-1000..1000);
            let ts: Vec<i64> = (0..n)
                .map(|_| {
                    // bursts (many events at one instant) and gaps
                    t += match rng.gen_range(0..10) {
                        0 => 0,
                        1 => rng.gen_range(100..5_000),
                        _ => rng.gen_range(1..20),
                    };
                    t
                })
                .collect();
            let vs: Vec<f64> = (0..n)
                .map(|_| {
                    if rng.gen_range(0..50) == 0 {
                        f64::NAN
                    } else {
                        rng.gen_range(-1.0..2.0)
                    }
                })
                .collect();
            let series = SliceSeries::new(&ts, &vs);
            let lo = ts.first().copied().unwrap_or(0) - 50;
            let hi = ts.last().copied().unwrap_or(0) + 50;
            for _ in 0..4 {
                let t0 = rng.gen_range(lo..=hi);
                let t1 = rng.gen_range(t0..=hi + 1);
                let width = rng.gen_range(1..900);
                let fast = buckets(&series, t0, t1, width);
                let slow = brute_force(&ts, &vs, t0, t1, width);
                assert!(
                    same(&fast, &slow),
                    "round {round}: n {n}, view {t0}..{t1}, width {width}"
                );
                let c = counts(&series, t0, t1, width);
                assert!(c.iter().zip(&slow).all(|(a, b)| *a == b.count));
            }
        }
    }

    #[test]
    fn the_galloping_search_finds_what_the_binary_search_finds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut t = 0;
        let ts: Vec<i64> = (0..5_000)
            .map(|_| {
                t += [0, 1, 1, 3, 40, 900][rng.gen_range(0..6)];
                t
            })
            .collect();
        let vs = vec![0.5; ts.len()];
        let series = SliceSeries::new(&ts, &vs);
        for _ in 0..5_000 {
            let at = rng.gen_range(-10..t + 10);
            let want = series.lower_bound(at);
            let from = rng.gen_range(0..=want);
            assert_eq!(
                series.lower_bound_from(from, at),
                want,
                "from {from} to {at}"
            );
        }
    }

    #[test]
    fn evicting_the_front_keeps_ranges_after_it_exact() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let vs: Vec<f64> = (0..50_000).map(|_| rng.gen_range(0.0..1.0)).collect();
        let mut s = Summary::new();
        for &v in &vs {
            s.push(v as f32);
        }
        let before = s.heap_bytes();
        s.evict_to(30_001);
        assert_eq!(s.first(), 30_001);
        assert!(s.heap_bytes() <= before);
        for _ in 0..200 {
            let lo = rng.gen_range(30_001..50_000);
            let hi = rng.gen_range(lo..=50_000);
            let got = s.min_max(lo, hi, |i| vs[i]);
            let want = vs[lo..hi].iter().fold(None::<(f32, f32)>, |a, &v| {
                let v = v as f32;
                Some(a.map_or((v, v), |(x, y)| (x.min(v), y.max(v))))
            });
            assert_eq!(got, want, "{lo}..{hi}");
        }
        // ranges reaching before the front are cut to it
        assert_eq!(s.min_max(0, 30_001, |i| vs[i]), None);
    }

    #[test]
    fn nearest_and_value_before() {
        let ts = [10, 20, 30];
        let vs = [0.1, 0.2, 0.3];
        let s = SliceSeries::new(&ts, &vs);
        assert_eq!(s.nearest(0), Some(0));
        assert_eq!(s.nearest(24), Some(1));
        assert_eq!(s.nearest(26), Some(2));
        assert_eq!(s.nearest(99), Some(2));
        assert!(s.value_before(10).is_nan());
        assert_eq!(s.value_before(11), 0.1);
        let empty = SliceSeries::new(&[], &[]);
        assert_eq!(empty.nearest(5), None);
    }
}
