//! A length field that claims gigabytes never allocates more than the input
//! holds (RELIABILITY.md, "Bad files").
//!
//! Small files whose str, bin, ext, array and map headers claim 4 GB (in a
//! record's header, its key, its envelope, an extra field, a snapshot's
//! state) are read strictly and recovering, checked, loaded in one part and
//! in several, and every event they hold is decoded. This test binary counts
//! every heap allocation with its own global allocator; the peak of live
//! bytes over each of those operations must stay within a small multiple of
//! the file's size (plus the reader's fixed read buffer), where honouring a
//! claimed length would take gigabytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use integr8tor::envelope::{Envelope, EnvelopeView, Topic};
use integr8tor::msgpack::write as w;
use integr8tor::session::{ReadOptions, Reader, Session};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated beyond what was live before `f`, at the peak of `f`.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(before))
}

/// The reader's read buffer (256 KiB) and the loader's fixed tables.
const FIXED_BYTES: usize = 1 << 20;
/// What a file may cost per byte it holds.
const PER_FILE_BYTE: usize = 32;

const FOUR_GB: u32 = u32::MAX;

/// The headers that claim 4 GB: `str 32`, `bin 32`, `ext 32`, `array 32`, `map 32`.
fn claims() -> Vec<(&'static str, Vec<u8>)> {
    let be = FOUR_GB.to_be_bytes();
    let with = |marker: u8, extra: &[u8]| {
        let mut v = vec![marker];
        v.extend_from_slice(&be);
        v.extend_from_slice(extra);
        // a few bytes of what the claim says follows
        v.extend_from_slice(b"abcdefgh");
        v
    };
    vec![
        ("str 32", with(0xdb, &[])),
        ("bin 32", with(0xc6, &[])),
        ("ext 32", with(0xc9, &[7])),
        ("array 32", with(0xdd, &[])),
        ("map 32", with(0xdf, &[])),
    ]
}

/// A valid `noise.params` envelope; `extra` is appended as the value of a
/// field `x` when given, raw.
fn envelope(seq: u64, extra: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    w::map_len(&mut out, 8 + usize::from(extra.is_some()));
    for (k, v) in [
        ("session_id", "s-1"),
        ("producer_id", "huge"),
        ("actor", "user"),
        ("path", "gen.1.cutoff"),
    ] {
        w::str(&mut out, k);
        w::str(&mut out, v);
    }
    w::str(&mut out, "v");
    w::int(&mut out, 1);
    w::str(&mut out, "seq");
    w::uint(&mut out, seq);
    w::str(&mut out, "ts_ms");
    w::int(&mut out, 1_790_000_000_000 + seq as i64);
    w::str(&mut out, "value");
    w::f64(&mut out, 0.5);
    if let Some(x) = extra {
        w::str(&mut out, "x");
        out.extend_from_slice(x);
    }
    out
}

/// An event record on `noise.params` whose key and data are given raw.
fn event_record(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    w::map_len(&mut out, 4);
    w::str(&mut out, "type");
    w::str(&mut out, "event");
    w::str(&mut out, "topic");
    w::str(&mut out, "noise.params");
    w::str(&mut out, "key");
    out.extend_from_slice(key);
    w::str(&mut out, "data");
    out.extend_from_slice(data);
    out
}

/// A snapshot record whose state is given raw.
fn snapshot_record(state: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    w::map_len(&mut out, 3);
    w::str(&mut out, "type");
    w::str(&mut out, "snapshot");
    w::str(&mut out, "ts_ms");
    w::int(&mut out, 1_790_000_000_000);
    w::str(&mut out, "state");
    out.extend_from_slice(state);
    out
}

fn key(path: &str) -> Vec<u8> {
    let mut k = Vec::new();
    w::str(&mut k, path);
    k
}

/// Small files, each with one record whose header somewhere claims 4 GB,
/// between valid records (and with the claim as the last bytes of the file,
/// so the file ends long before what it claims).
fn files() -> Vec<(String, Vec<u8>)> {
    let valid = |seq| event_record(&key("gen.1.cutoff"), &envelope(seq, None));
    let mut out = Vec::new();
    for (name, claim) in claims() {
        let mut bad: Vec<(String, Vec<u8>)> = vec![
            (format!("a record that is a {name}"), claim.clone()),
            (
                format!("a record's key as a {name}"),
                event_record(&claim, &envelope(3, None)),
            ),
            (
                format!("a record's data as a {name}"),
                event_record(&key("gen.1.cutoff"), &claim),
            ),
            (
                format!("an envelope's extra field as a {name}"),
                event_record(&key("gen.1.cutoff"), &envelope(3, Some(&claim))),
            ),
            (
                format!("a snapshot's state as a {name}"),
                snapshot_record(&claim),
            ),
        ];
        // a snapshot's state map with a path, then a value, that claims 4 GB
        let mut state = vec![0x82];
        w::str(&mut state, "gen.2.cutoff");
        w::f64(&mut state, 0.25);
        state.extend_from_slice(&claim);
        bad.push((
            format!("a snapshot's path as a {name}"),
            snapshot_record(&state),
        ));
        let mut state = vec![0x81];
        w::str(&mut state, "gen.2.cutoff");
        state.extend_from_slice(&claim);
        bad.push((
            format!("a snapshot's value as a {name}"),
            snapshot_record(&state),
        ));
        for (what, record) in bad {
            let mut mid = Vec::new();
            for seq in 1..=2 {
                mid.extend_from_slice(&valid(seq));
            }
            let mut end = mid.clone();
            mid.extend_from_slice(&record);
            for seq in 4..=5 {
                mid.extend_from_slice(&valid(seq));
            }
            end.extend_from_slice(&record);
            out.push((format!("{what}, among valid records"), mid));
            out.push((format!("{what}, at the end of the file"), end));
        }
    }
    out
}

fn read_all(data: &[u8], recover: bool) -> u64 {
    let mut r = Reader::new(data, Path::new("huge"), ReadOptions { recover });
    let mut n = 0;
    loop {
        match r.next() {
            Ok(Some(_)) => n += 1,
            Ok(None) | Err(_) => break n,
        }
    }
}

fn check_file(path: &Path) -> u64 {
    let mut r = Reader::open(path, ReadOptions { recover: true }).expect("opening");
    let mut n = 0;
    while let Ok(Some(_)) = r.next() {
        n += 1;
    }
    n
}

/// Loads and decodes every event and snapshot; returns how many events.
fn load(path: &Path, recover: bool, parts: Option<usize>) -> usize {
    let opts = ReadOptions { recover };
    let go = |_| ControlFlow::Continue(());
    let loaded = match parts {
        None => Session::open_with(path, opts, go),
        Some(n) => Session::open_in_parts(path, opts, n, go),
    };
    let Ok(s) = loaded else { return 0 };
    for e in s.events() {
        if let Ok(env) = s.envelope(e) {
            for (_, v) in &env.extra {
                let _ = v.decode();
            }
        }
    }
    for m in s.snapshots() {
        let _ = s.snapshot_state(m);
    }
    let _ = s.state_at(i64::MAX);
    s.events().len()
}

#[test]
fn length_fields_that_claim_gigabytes_allocate_no_more_than_the_input_holds() {
    let dir = tempfile::tempdir().unwrap();
    let files = files();
    let mut worst = (0usize, 0usize, String::new());
    let mut measured = 0;
    for (i, (what, data)) in files.iter().enumerate() {
        let path = dir.path().join(format!("huge-{i}.msgpack"));
        std::fs::write(&path, data).unwrap();
        let limit = FIXED_BYTES + PER_FILE_BYTE * data.len();
        let ops: [(&str, &dyn Fn() -> usize); 7] = [
            ("a strict read", &|| read_all(data, false) as usize),
            ("a recovering read", &|| read_all(data, true) as usize),
            ("check", &|| check_file(&path) as usize),
            ("a strict load", &|| load(&path, false, None)),
            ("a recovering load", &|| load(&path, true, None)),
            ("a load in 3 parts", &|| load(&path, false, Some(3))),
            ("a recovering load in 3 parts", &|| {
                load(&path, true, Some(3))
            }),
        ];
        for (op, f) in ops {
            let (_, peak) = peak_of(f);
            measured += 1;
            assert!(
                peak <= limit,
                "{op} of a {} byte file with {what} allocated {peak} bytes at its peak \
                 (the limit is {limit})",
                data.len()
            );
            if peak > worst.0 {
                worst = (peak, data.len(), format!("{op}, {what}"));
            }
        }
    }
    // payloads alone, as they come off the bus
    for (name, claim) in claims() {
        let payloads = [claim.clone(), envelope(1, Some(&claim)), {
            // the session id as the claim
            let mut p = vec![0x88];
            w::str(&mut p, "session_id");
            p.extend_from_slice(&claim);
            p
        }];
        for payload in payloads {
            let limit = FIXED_BYTES + PER_FILE_BYTE * payload.len();
            for topic in Topic::ALL {
                let (_, peak) = peak_of(|| {
                    let _ = EnvelopeView::decode(topic, &payload);
                    if let Ok(env) = Envelope::decode(topic, &payload) {
                        for (_, v) in &env.extra {
                            let _ = v.decode();
                        }
                    }
                });
                measured += 1;
                assert!(
                    peak <= limit,
                    "decoding a {} byte payload on {topic} with a {name} claiming 4 GB \
                     allocated {peak} bytes",
                    payload.len()
                );
            }
        }
    }
    println!(
        "huge length fields: {} files and {} payloads claiming 4 GB, {measured} reads, checks, \
         loads and decodes; the largest peak was {} bytes ({}, a {} byte file)",
        files.len(),
        claims().len() * 3,
        worst.0,
        worst.2,
        worst.1
    );
}
