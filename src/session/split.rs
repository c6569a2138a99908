//! Loading a session file in parallel parts: finding record boundaries near
//! the split points, reading a part with positioned reads, and merging the
//! parts' `ts_ms`-sorted event tables back into one, stably.
//!
//! A part's start is only a guess until the part before it ends exactly
//! there; the loader checks that and re-reads on its own when it does not
//! (see `Session::open_in_parts`), so a wrong guess costs time, never results.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use crate::msgpack::{kind_of, Kind, MAX_NESTING};
use crate::session::loaded::EventEntry;
use crate::session::reader::{parse_record_len, RecordRef};

/// Records that must parse one after another from an offset before the
/// offset is taken for a record boundary.
const CHAIN: usize = 4;

/// How far past a split point a boundary is looked for.
const WINDOW: u64 = 1 << 20;

/// A file read from an offset on with positioned reads, so that one open
/// `File` serves every part at once.
pub(crate) struct FileAt<'a> {
    file: &'a File,
    pos: u64,
}

impl<'a> FileAt<'a> {
    pub(crate) fn new(file: &'a File, pos: u64) -> Self {
        FileAt { file, pos }
    }
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The first offset in `from..file_bytes`, within [`WINDOW`] of `from`, from
/// which [`CHAIN`] event or snapshot records parse one after another (or
/// fewer that end exactly at the end of the file). `None` when there is none.
pub(crate) fn find_boundary(file: &File, from: u64, file_bytes: u64) -> io::Result<Option<u64>> {
    if from >= file_bytes {
        return Ok(None);
    }
    let len = WINDOW.min(file_bytes - from) as usize;
    let reaches_end = from + len as u64 == file_bytes;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, from)?;
    // Trying a parse at every map marker of hostile bytes (a payload nested
    // thousands of levels deep, strings full of markers) could cost the
    // window's size at each offset: values nested deeper than any record
    // the project writes stop an attempt early, and the attempts together
    // may look at no more than `BUDGET` times the window before the search
    // gives up (the part is then read by the part before it).
    let mut budget = BUDGET * len as u64 + 4096;
    for i in 0..len {
        if kind_of(buf[i]) != Kind::Map {
            continue;
        }
        let (found, looked) = chain_at(&buf[i..], from + i as u64, reaches_end);
        if found {
            return Ok(Some(from + i as u64));
        }
        budget = budget.saturating_sub(looked as u64 + 1);
        if budget == 0 {
            return Ok(None);
        }
    }
    Ok(None)
}

/// How many times the window's size the boundary search may parse in all.
const BUDGET: u64 = 16;

/// Nesting a record may have, relative to where a value is skipped: the
/// record map and the envelope's [`MAX_NESTING`] levels.
const RECORD_NESTING: u32 = MAX_NESTING + 1;

/// Whether [`CHAIN`] records parse from the start of `buf`, and how many
/// bytes the attempt looked at.
fn chain_at(buf: &[u8], offset: u64, reaches_end: bool) -> (bool, usize) {
    let mut pos = 0usize;
    for _ in 0..CHAIN {
        if pos == buf.len() {
            return (reaches_end && pos > 0, pos);
        }
        match parse_record_len(&buf[pos..], offset + pos as u64, RECORD_NESTING) {
            (Some((RecordRef::Event { .. } | RecordRef::Snapshot { .. }, len)), _) => pos += len,
            (_, looked) => return (false, pos + looked),
        }
    }
    (true, pos)
}

/// The number of leading elements of `s` for which `pred` holds, when it
/// holds for a prefix of `s` and for nothing after (an exponential search
/// from the front: fast when the answer is small).
fn gallop(s: &[EventEntry], pred: impl Fn(&EventEntry) -> bool) -> usize {
    let mut hi = 1;
    while hi <= s.len() && pred(&s[hi - 1]) {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(s.len());
    lo + s[lo..hi].partition_point(pred)
}

/// Merges two `ts_ms`-sorted tables; on equal `ts_ms` the entries of `a` come first.
fn merge_two(a: &[EventEntry], b: &[EventEntry]) -> Vec<EventEntry> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let bt = b[j].ts_ms;
        let n = gallop(&a[i..], |e| e.ts_ms <= bt);
        out.extend_from_slice(&a[i..i + n]);
        i += n;
        if i == a.len() {
            break;
        }
        let at = a[i].ts_ms;
        let m = gallop(&b[j..], |e| e.ts_ms < at);
        out.extend_from_slice(&b[j..j + m]);
        j += m;
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Appends `b` to `a`, both sorted by `ts_ms`, keeping the whole sorted;
/// on equal `ts_ms` the entries of `a` come first. Only the stretch where the
/// two overlap is merged through a copy; the rest stays or is appended.
fn merge_into(a: &mut Vec<EventEntry>, b: Vec<EventEntry>) {
    let (Some(first_b), Some(last_a)) = (b.first().map(|e| e.ts_ms), a.last().map(|e| e.ts_ms))
    else {
        if a.is_empty() {
            *a = b;
        }
        return;
    };
    // a[..i] is at or before every entry of b; b[j..] is at or after every entry of a
    let i = a.partition_point(|e| e.ts_ms <= first_b);
    let j = b.partition_point(|e| e.ts_ms < last_a);
    let middle = merge_two(&a[i..], &b[..j]);
    a.truncate(i);
    a.reserve_exact(middle.len() + b.len() - j);
    a.extend_from_slice(&middle);
    a.extend_from_slice(&b[j..]);
}

/// Merges tables that are each sorted by `ts_ms` into one, stably: entries
/// with equal `ts_ms` keep the order of their tables, so the result is what a
/// stable sort of the tables' concatenation gives.
pub(crate) fn merge_runs(runs: Vec<Vec<EventEntry>>) -> Vec<EventEntry> {
    let mut runs: Vec<Vec<EventEntry>> = runs.into_iter().filter(|r| !r.is_empty()).collect();
    while runs.len() > 1 {
        let mut next = Vec::with_capacity(runs.len().div_ceil(2));
        let mut it = runs.into_iter();
        while let Some(mut a) = it.next() {
            // neighbours only, so that earlier tables stay first on ties
            if let Some(b) = it.next() {
                merge_into(&mut a, b);
            }
            next.push(a);
        }
        runs = next;
    }
    runs.pop().unwrap_or_default()
}

/// Sorts by `ts_ms`, stably, in about linear time when entries are only a
/// little out of order (as arrival order is: clock skew between producers):
/// an insertion sort, handing over to the library's stable sort once it has
/// moved more than a few entries per entry.
pub(crate) fn sort_nearly_sorted(events: &mut [EventEntry]) {
    let mut budget = events.len().saturating_mul(4).saturating_add(4096);
    for i in 1..events.len() {
        let t = events[i].ts_ms;
        if events[i - 1].ts_ms <= t {
            continue;
        }
        let mut j = i - 1;
        while j > 0 && events[j - 1].ts_ms > t {
            j -= 1;
        }
        if i - j > budget {
            // Insertion keeps equal entries in order, so this is still a
            // stable sort of the original order.
            events.sort_by_key(|e| e.ts_ms);
            return;
        }
        budget -= i - j;
        events[j..=i].rotate_right(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::ActorKind;

    fn entry(ts_ms: i64, tag: u64) -> EventEntry {
        EventEntry {
            ts_ms,
            value: 0.0,
            offset: tag,
            name: 0,
            producer: 0,
            topic: 0,
            actor: ActorKind::User,
        }
    }

    #[test]
    fn merging_equals_a_stable_sort_of_the_concatenation() {
        // a small deterministic generator: runs with many ties and overlaps
        let mut x = 0x2545f4914f6cdd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300 {
            let k = 1 + (next() % 5) as usize;
            let mut tag = 0;
            let runs: Vec<Vec<EventEntry>> = (0..k)
                .map(|_| {
                    let n = (next() % 40) as usize;
                    let mut ts: Vec<i64> = (0..n).map(|_| (next() % 12) as i64).collect();
                    if round % 3 == 0 {
                        ts.iter_mut().for_each(|t| *t += 100 * tag as i64);
                    }
                    ts.sort();
                    ts.into_iter()
                        .map(|t| {
                            tag += 1;
                            entry(t, tag)
                        })
                        .collect()
                })
                .collect();
            let mut expected: Vec<EventEntry> = runs.concat();
            expected.sort_by_key(|e| e.ts_ms);
            assert_eq!(merge_runs(runs), expected, "round {round}");
        }
    }

    #[test]
    fn nearly_sorted_sort_is_a_stable_sort() {
        let mut x = 0x9e3779b97f4a7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..200u64 {
            let n = (next() % 3000) as usize;
            // mostly increasing with local jitter; every 10th round fully shuffled
            let mut v: Vec<EventEntry> = (0..n)
                .map(|i| {
                    let ts = if round % 10 == 9 {
                        (next() % 50) as i64
                    } else {
                        (i as i64) / 3 + (next() % 7) as i64 - 3
                    };
                    entry(ts, i as u64)
                })
                .collect();
            let mut expected = v.clone();
            expected.sort_by_key(|e| e.ts_ms);
            sort_nearly_sorted(&mut v);
            assert_eq!(v, expected, "round {round}");
        }
        // descending input exhausts the budget and still comes out right
        let mut v: Vec<EventEntry> = (0..5000).map(|i| entry(-(i / 2), i as u64)).collect();
        let mut expected = v.clone();
        expected.sort_by_key(|e| e.ts_ms);
        sort_nearly_sorted(&mut v);
        assert_eq!(v, expected);
    }

    #[test]
    fn gallop_counts_the_prefix() {
        let s: Vec<EventEntry> = (0..37).map(|t| entry(t, 0)).collect();
        for cut in 0..=40 {
            assert_eq!(gallop(&s, |e| e.ts_ms < cut), (cut as usize).min(37));
        }
        assert_eq!(gallop(&[], |_| true), 0);
    }
}
