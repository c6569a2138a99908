//! The hand-written MessagePack cursor (`src/msgpack.rs`) against `rmp`'s
//! decode functions, on the same walk of the 1-hour session file.
//!
//!     cargo bench --bench msgpack_cursor
//!
//! Both walks read every record of the file from memory the way the session
//! reader does: each record map, its `type`, `topic`, `key` and `ts_ms`, and
//! inside `data` every envelope field (integers, floats, nil, strings as str
//! or bin) with anything else skipped whole; snapshots' states entry by
//! entry. Each produces the same tally (records, integers summed, float bits
//! summed, string bytes), which is checked, so both do the same work. The
//! rmp walk uses `rmp::decode` on `rmp::decode::Bytes` (its in-memory
//! reader) and `rmp::decode::MessageLen` to skip a value.
//!
//! The file is the benches' shared one (benches/support); `BENCH_MSGPACK_RUNS=N`
//! sets the timed walks per decoder (default 5, alternating).

use std::time::Instant;

use integr8tor::engine::latency::percentile;
use integr8tor::msgpack::Cursor;
use rmp::decode::{self as rd, Bytes, MessageLen};

mod support;

/// What a walk saw; equal for both decoders.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    records: u64,
    ints: u64,
    float_bits: u64,
    text_bytes: u64,
    skipped: u64,
}

impl Tally {
    fn int(&mut self, v: i64) {
        self.ints = self.ints.wrapping_add(v as u64);
    }
    fn float(&mut self, v: f64) {
        self.float_bits = self.float_bits.wrapping_add(v.to_bits());
    }
    fn text(&mut self, s: &[u8]) {
        self.text_bytes += s.len() as u64;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Field {
    Int,
    Float,
    OptFloat,
    Text,
    Other,
}

fn envelope_field(key: &[u8]) -> Field {
    match key {
        b"v" | b"seq" | b"ts_ms" | b"bus" | b"note" | b"velocity" => Field::Int,
        b"value" | b"peak" => Field::Float,
        b"value_mapped" | b"rms" => Field::OptFloat,
        b"session_id" | b"producer_id" | b"actor" | b"source" | b"path" | b"type"
        | b"source_type" | b"preset" | b"key" => Field::Text,
        _ => Field::Other,
    }
}

// ---- the project's cursor ----

fn walk_cursor(buf: &[u8]) -> Tally {
    let mut c = Cursor::new(buf);
    let mut t = Tally::default();
    while !c.is_empty() {
        let n = c.read_map_len().unwrap();
        t.records += 1;
        for _ in 0..n {
            match c.read_bytes_str().unwrap() {
                b"type" | b"topic" => t.text(c.read_bytes_str().unwrap()),
                b"key" => {
                    if !c.read_nil().unwrap() {
                        t.text(c.read_bytes_str().unwrap())
                    }
                }
                b"ts_ms" => t.int(c.read_i64().unwrap()),
                b"data" => envelope_cursor(&mut c, &mut t),
                b"state" => {
                    for _ in 0..c.read_map_len().unwrap() {
                        t.text(c.read_bytes_str().unwrap());
                        t.float(c.read_f64().unwrap());
                    }
                }
                _ => {
                    c.skip_value().unwrap();
                    t.skipped += 1;
                }
            }
        }
    }
    t
}

fn envelope_cursor(c: &mut Cursor<'_>, t: &mut Tally) {
    for _ in 0..c.read_map_len().unwrap() {
        match envelope_field(c.read_bytes_str().unwrap()) {
            Field::Int => t.int(c.read_i64().unwrap()),
            Field::Float => t.float(c.read_f64().unwrap()),
            Field::OptFloat => {
                if let Some(v) = c.read_opt_f64().unwrap() {
                    t.float(v)
                }
            }
            Field::Text => t.text(c.read_bytes_str().unwrap()),
            Field::Other => {
                c.skip_value().unwrap();
                t.skipped += 1;
            }
        }
    }
}

// ---- rmp ----

fn peek(r: &Bytes<'_>) -> u8 {
    r.remaining_slice()[0]
}

fn advance<'a>(r: &mut Bytes<'a>, n: usize) -> &'a [u8] {
    let rest = r.remaining_slice();
    *r = Bytes::new(&rest[n..]);
    &rest[..n]
}

/// A str or a bin, as the string fields allow.
fn rmp_text<'a>(r: &mut Bytes<'a>) -> &'a [u8] {
    let len = if matches!(peek(r), 0xc4..=0xc6) {
        rd::read_bin_len(r).unwrap()
    } else {
        rd::read_str_len(r).unwrap()
    };
    advance(r, len as usize)
}

fn rmp_f64(r: &mut Bytes<'_>) -> f64 {
    match peek(r) {
        0xcb => rd::read_f64(r).unwrap(),
        0xca => f64::from(rd::read_f32(r).unwrap()),
        _ => rd::read_int::<i64, _>(r).unwrap() as f64,
    }
}

fn rmp_skip(r: &mut Bytes<'_>) {
    let n = MessageLen::len_of(r.remaining_slice()).unwrap();
    advance(r, n);
}

fn walk_rmp(buf: &[u8]) -> Tally {
    let mut r = Bytes::new(buf);
    let mut t = Tally::default();
    while !r.remaining_slice().is_empty() {
        let n = rd::read_map_len(&mut r).unwrap();
        t.records += 1;
        for _ in 0..n {
            match rmp_text(&mut r) {
                b"type" | b"topic" => t.text(rmp_text(&mut r)),
                b"key" => {
                    if peek(&r) == 0xc0 {
                        rd::read_nil(&mut r).unwrap();
                    } else {
                        t.text(rmp_text(&mut r))
                    }
                }
                b"ts_ms" => t.int(rd::read_int(&mut r).unwrap()),
                b"data" => envelope_rmp(&mut r, &mut t),
                b"state" => {
                    for _ in 0..rd::read_map_len(&mut r).unwrap() {
                        t.text(rmp_text(&mut r));
                        t.float(rmp_f64(&mut r));
                    }
                }
                _ => {
                    rmp_skip(&mut r);
                    t.skipped += 1;
                }
            }
        }
    }
    t
}

fn envelope_rmp(r: &mut Bytes<'_>, t: &mut Tally) {
    for _ in 0..rd::read_map_len(r).unwrap() {
        match envelope_field(rmp_text(r)) {
            Field::Int => t.int(rd::read_int(r).unwrap()),
            Field::Float => t.float(rmp_f64(r)),
            Field::OptFloat => {
                if peek(r) == 0xc0 {
                    rd::read_nil(r).unwrap();
                } else {
                    t.float(rmp_f64(r))
                }
            }
            Field::Text => t.text(rmp_text(r)),
            Field::Other => {
                rmp_skip(r);
                t.skipped += 1;
            }
        }
    }
}

fn main() {
    let path = support::bench_file();
    let buf = std::fs::read(&path).expect("reading the bench file");
    let runs = std::env::var("BENCH_MSGPACK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize)
        .max(1);
    // one untimed walk each: the same tally, and warm caches
    let expected = walk_cursor(&buf);
    assert_eq!(walk_rmp(&buf), expected, "both walks see the same values");
    let mut cursor = Vec::new();
    let mut rmp = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        assert_eq!(walk_cursor(std::hint::black_box(&buf)), expected);
        cursor.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        assert_eq!(walk_rmp(std::hint::black_box(&buf)), expected);
        rmp.push(t.elapsed().as_secs_f64());
    }
    cursor.sort_by(f64::total_cmp);
    rmp.sort_by(f64::total_cmp);
    let mb = buf.len() as f64 / 1e6;
    let records = expected.records as f64;
    println!(
        "walk of {} ({:.0} MB, {} records, {} values skipped whole), median of {runs} runs:",
        path.display(),
        mb,
        expected.records,
        expected.skipped
    );
    for (name, times) in [("src/msgpack.rs Cursor", &cursor), ("rmp::decode", &rmp)] {
        let s = percentile(times, 0.5).unwrap();
        println!(
            "  {name:<22} {:>7.3} s  {:>6.0} MB/s  {:>5.1} M records/s  {:>5.0} ns/record  (range {:.3} to {:.3} s)",
            s,
            mb / s,
            records / s / 1e6,
            s * 1e9 / records,
            times[0],
            times[times.len() - 1]
        );
    }
    let ratio = percentile(&rmp, 0.5).unwrap() / percentile(&cursor, 0.5).unwrap();
    println!("  rmp takes {ratio:.2}x the cursor's time");
}
