//! The timeline's bucketing of a lane into pixel columns (`lod::buckets`):
//! the galloping search it uses from one column's end to the next, against
//! a plain binary search over the whole lane per column edge, on a lane of
//! 1.8 M events over an hour (the 1-hour session in one lane) and one of
//! 20,000 (one path of it).
//!
//!     cargo bench --bench lod

use std::hint::black_box;
use std::time::Instant;

use integr8tor::app::timeline::lod::{buckets, column_end, Series, SliceSeries};

/// The column edges found by a binary search each (what `buckets` did before).
fn edges_binary(s: &SliceSeries<'_>, t0: i64, t1: i64, width: usize) -> usize {
    let mut sum = 0;
    for c in 0..width {
        let edge = column_end(t0, t1, width, c);
        sum += s.lower_bound(edge);
    }
    sum
}

/// The same edges by galloping from the previous one.
fn edges_galloping(s: &SliceSeries<'_>, t0: i64, t1: i64, width: usize) -> usize {
    let mut sum = 0;
    let mut lo = s.lower_bound(t0);
    for c in 0..width {
        let edge = column_end(t0, t1, width, c);
        lo = s.lower_bound_from(lo, edge);
        sum += lo;
    }
    sum
}

fn per_call_us(rounds: u32, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(f());
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
}

fn main() {
    let width = 1200;
    for (name, n) in [("1.8 M events", 1_800_000usize), ("20,000 events", 20_000)] {
        let hour = 3_600_000i64;
        let ts: Vec<i64> = (0..n).map(|i| i as i64 * hour / n as i64).collect();
        let vs: Vec<f64> = (0..n).map(|i| (i % 97) as f64 / 97.0).collect();
        let s = SliceSeries::new(&ts, &vs);
        for (view, t0, t1) in [
            ("the hour", 0, hour),
            ("5 minutes", hour / 2, hour / 2 + 300_000),
            ("10 seconds", hour / 2, hour / 2 + 10_000),
        ] {
            assert_eq!(
                edges_binary(&s, t0, t1, width),
                edges_galloping(&s, t0, t1, width)
            );
            let rounds = 400;
            let binary = per_call_us(rounds, || edges_binary(&s, t0, t1, width));
            let gallop = per_call_us(rounds, || edges_galloping(&s, t0, t1, width));
            let full = per_call_us(rounds / 4, || buckets(&s, t0, t1, width).len());
            println!(
                "{name:>13}, {view:>10}, {width} columns: edges by binary search {binary:7.1} us, \
                 galloping {gallop:7.1} us ({:.1}x); whole buckets() {full:7.1} us",
                binary / gallop
            );
        }
    }
}
