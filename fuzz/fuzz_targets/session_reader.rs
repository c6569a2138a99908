//! Arbitrary bytes as a session file.
//!
//! The streaming reader, strict and recovering, must never panic, must hand
//! out records that are exactly the input bytes at their offsets, must report
//! offsets within the input, and must agree with itself: a strict read is a
//! prefix of a recovering one, corruption is reported where the good bytes
//! end, and a recovering read stops only where no well-formed map starts.
//! Then the same bytes are loaded as a [`Session`] from a file, in one part
//! and in several parallel parts: the loads must agree with the reader and
//! with each other, and the loaded tables must hold up (events sorted stably,
//! lanes, exact state at any instant checked against a brute-force replay).

#![no_main]

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use integr8tor::envelope::Topic;
use integr8tor::msgpack::{kind_of, Kind};
use integr8tor::session::reader::{parse_one, record_len, snapshot_entries};
use integr8tor::session::{
    LoadError, ReadError, ReadOptions, ReadReport, Reader, RecordRef, Session, NO_NAME,
};
use libfuzzer_sys::fuzz_target;

/// What a record was, in a comparable form (floats as bits).
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Event {
        topic: Vec<u8>,
        key: Option<Vec<u8>>,
        ts_ms: i64,
        name: Option<Vec<u8>>,
        producer: Vec<u8>,
        session: Vec<u8>,
        value: u64,
        actor: integr8tor::ActorKind,
    },
    Snapshot {
        ts_ms: i64,
        /// Its (path, value bits) entries up to the first that is not a
        /// (string, number) pair: the ones a load counts.
        entries: Vec<(Vec<u8>, u64)>,
    },
    Unknown,
}

fn seen(r: &RecordRef<'_>) -> Seen {
    match r {
        RecordRef::Event {
            topic, key, fields, ..
        } => Seen::Event {
            topic: topic.to_vec(),
            key: key.map(<[u8]>::to_vec),
            ts_ms: fields.ts_ms,
            name: fields.name.map(<[u8]>::to_vec),
            producer: fields.producer_id.to_vec(),
            session: fields.session_id.to_vec(),
            value: fields.value.to_bits(),
            actor: fields.actor,
        },
        RecordRef::Snapshot { ts_ms, state } => {
            let mut entries = Vec::new();
            let _ = snapshot_entries(state, |p, v| entries.push((p.to_vec(), v.to_bits())));
            Seen::Snapshot {
                ts_ms: *ts_ms,
                entries,
            }
        }
        RecordRef::Unknown => Seen::Unknown,
    }
}

struct Read {
    records: Vec<(u64, usize, Seen)>,
    report: ReadReport,
    /// Offset and reason of a strict read's failure.
    error: Option<(u64, String)>,
}

fn read(data: &[u8], recover: bool) -> Read {
    let mut r = Reader::new(data, Path::new("fuzz"), ReadOptions { recover });
    let mut records: Vec<(u64, usize, Seen)> = Vec::new();
    let mut end = 0u64;
    let error = loop {
        match r.next() {
            Ok(Some(rec)) => {
                let (off, len) = (rec.offset, rec.raw.len());
                assert!(len > 0, "an empty record at {off}");
                if recover {
                    assert!(
                        off >= end,
                        "record at {off} overlaps the one ending at {end}"
                    );
                } else {
                    assert_eq!(off, end, "strict records follow each other");
                }
                let stop = off as usize + len;
                assert!(stop <= data.len(), "record {off}+{len} runs past the input");
                assert_eq!(rec.raw, &data[off as usize..stop]);
                assert_eq!(record_len(rec.raw), Some(len), "raw bytes are one value");
                let again = parse_one(rec.raw, off).expect("a yielded record parses alone");
                assert_eq!(seen(&again), seen(&rec.record), "parse_one disagrees");
                match rec.record {
                    RecordRef::Event { data: d, .. } => {
                        let at = d.as_ptr() as usize - rec.raw.as_ptr() as usize;
                        assert!(at + d.len() <= len, "data lies outside its record");
                    }
                    RecordRef::Snapshot { state, .. } => {
                        let _ = snapshot_entries(state, |_, _| {});
                    }
                    RecordRef::Unknown => {}
                }
                records.push((off, len, seen(&rec.record)));
                end = stop as u64;
            }
            Ok(None) => break None,
            Err(ReadError::Corrupt { corruption, .. }) => {
                assert!(!recover, "a recovering read failed: {corruption:?}");
                break Some((corruption.offset, corruption.reason));
            }
            Err(e) => panic!("reading memory failed: {e}"),
        }
    };
    // once finished, it stays finished
    assert!(matches!(r.next(), Ok(None)));
    let report = r.report().clone();
    let n = |k: fn(&Seen) -> bool| records.iter().filter(|(_, _, s)| k(s)).count() as u64;
    assert_eq!(report.event_records, n(|s| matches!(s, Seen::Event { .. })));
    assert_eq!(
        report.snapshot_records,
        n(|s| matches!(s, Seen::Snapshot { .. }))
    );
    assert_eq!(report.unknown_records, n(|s| matches!(s, Seen::Unknown)));
    let len = data.len() as u64;
    assert!(report.good_bytes <= len, "good bytes past the input");
    assert!(
        report.good_bytes + report.dropped_bytes <= len,
        "good {} + dropped {} > {len}",
        report.good_bytes,
        report.dropped_bytes
    );
    assert!(report.good_bytes >= end);
    if !recover {
        assert_eq!(report.good_bytes, end);
        assert_eq!(report.invalid_records, 0);
    }
    if let Some((off, _)) = &error {
        assert_eq!(
            *off, report.good_bytes,
            "corruption is where the good bytes end"
        );
        assert!(*off < len);
    }
    if let Some(t) = report.truncated_at {
        assert_eq!(t, report.good_bytes);
        assert!(report.dropped_bytes > 0);
        assert_eq!(report.good_bytes + report.dropped_bytes, len);
        assert!(error.is_none() && report.corrupt.is_none());
    } else {
        assert_eq!(report.dropped_bytes, 0);
    }
    if let Some(c) = &report.corrupt {
        assert!(recover);
        assert_eq!(
            c.offset, report.good_bytes,
            "corruption is where the good bytes end"
        );
        let at = &data[c.offset as usize..];
        // A well-formed map is a record, or an invalid one to step over; only
        // bytes that are not one may stop a recovering read.
        assert!(
            !(kind_of(at[0]) == Kind::Map && record_len(at).is_some()),
            "a recovering read stopped at a well-formed map at {}: {}",
            c.offset,
            c.reason
        );
    }
    if error.is_none() && report.truncated_at.is_none() && report.corrupt.is_none() {
        assert_eq!(report.good_bytes, len, "a clean read consumes the input");
    }
    if let Some(f) = &report.first_invalid {
        assert!(recover && report.invalid_records > 0 && f.offset < report.good_bytes);
    }
    Read {
        records,
        report,
        error,
    }
}

fn temp_file() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("integr8tor-fuzz-{}.msgpack", std::process::id()))
    })
}

fn load(path: &Path, recover: bool, parts: usize) -> Result<Session, LoadError> {
    let opts = ReadOptions { recover };
    let go = |_| ControlFlow::Continue(());
    if parts == 0 {
        Session::open_with(path, opts, go)
    } else {
        Session::open_in_parts(path, opts, parts, go)
    }
}

/// Everything a loaded session shows, in a comparable form.
fn observe(s: &Session) -> String {
    let mut out = String::new();
    use std::fmt::Write;
    let _ = writeln!(out, "report {:?}", s.read_report());
    for e in s.events() {
        let _ = writeln!(
            out,
            "event {} {} {:?} {} {} {} {:?}",
            e.ts_ms,
            e.value.to_bits(),
            e.offset,
            if e.name == NO_NAME {
                "-"
            } else {
                s.name(e.name)
            },
            s.producer_name(e.producer),
            s.topic_name(e.topic),
            e.actor
        );
        let _ = writeln!(out, "ids {} {} {}", e.name, e.producer, e.topic);
    }
    let _ = writeln!(out, "snapshots {:?}", s.snapshots());
    let _ = writeln!(out, "topics {:?}", s.by_topic());
    let _ = writeln!(out, "producers {:?}", s.producers());
    let _ = writeln!(out, "sessions {:?}", s.session_ids());
    let names: Vec<&str> = (0..s.name_count() as u32).map(|i| s.name(i)).collect();
    let _ = writeln!(out, "names {names:?}");
    let _ = writeln!(out, "params {:?} {:?}", s.param_ids(), s.param_events());
    for id in 0..s.name_count() as u32 {
        let _ = writeln!(out, "lane {id} {:?}", s.lane(id));
    }
    out
}

/// The exact state at `t` the slow way (docs/formats.md section 3): the
/// state of the last snapshot the reader gave with `ts_ms <= t` (snapshots
/// in `ts_ms` order, stably; of a path listed twice, the last value), then
/// every parameter event at or before `t`, in table order.
fn brute_state(s: &Session, r: &Read, t: i64) -> HashMap<u32, u64> {
    let ids: HashMap<&str, u32> = (0..s.name_count() as u32).map(|i| (s.name(i), i)).collect();
    let mut m = HashMap::new();
    let mut snaps: Vec<(i64, &Vec<(Vec<u8>, u64)>)> = r
        .records
        .iter()
        .filter_map(|(_, _, k)| match k {
            Seen::Snapshot { ts_ms, entries } => Some((*ts_ms, entries)),
            _ => None,
        })
        .collect();
    snaps.sort_by_key(|x| x.0);
    if let Some((_, entries)) = snaps.iter().rev().find(|x| x.0 <= t) {
        for (path, v) in entries.iter() {
            let path = String::from_utf8_lossy(path);
            let id = *ids
                .get(&*path)
                .unwrap_or_else(|| panic!("snapshot path {path:?} has no name id"));
            m.insert(id, *v);
        }
    }
    for e in s.events().iter().filter(|e| e.ts_ms <= t) {
        if s.topic_of(e) == Some(Topic::Params) {
            m.insert(e.name, e.value.to_bits());
        }
    }
    m
}

fn check_session(s: &Session, r: &Read, len: u64) {
    assert_eq!(s.read_report(), &r.report);
    assert_eq!(s.file_bytes(), len);
    let events = s.events();
    assert_eq!(events.len() as u64, r.report.event_records);
    // the table is the reader's events, stably sorted by ts_ms
    let mut expected: Vec<(u64, &Seen)> = r
        .records
        .iter()
        .filter(|(_, _, k)| matches!(k, Seen::Event { .. }))
        .map(|(o, _, k)| (*o, k))
        .collect();
    expected.sort_by_key(|(_, k)| match k {
        Seen::Event { ts_ms, .. } => *ts_ms,
        _ => unreachable!(),
    });
    for (e, (off, k)) in events.iter().zip(&expected) {
        assert_eq!(e.offset, *off, "table order is not a stable sort by ts_ms");
        assert!(e.offset < len);
        let Seen::Event {
            topic,
            ts_ms,
            name,
            producer,
            value,
            actor,
            ..
        } = k
        else {
            unreachable!()
        };
        assert_eq!(e.ts_ms, *ts_ms);
        assert_eq!(e.value.to_bits(), *value);
        assert_eq!(e.actor, *actor);
        assert_eq!(s.topic_name(e.topic), String::from_utf8_lossy(topic));
        assert_eq!(
            s.producer_name(e.producer),
            String::from_utf8_lossy(producer)
        );
        match name {
            Some(n) => assert_eq!(s.name(e.name), String::from_utf8_lossy(n)),
            None => assert_eq!(e.name, NO_NAME),
        }
        // reading the envelope back never panics; when it decodes, it agrees
        if let Ok(env) = s.envelope(e) {
            assert_eq!(env.ts_ms, e.ts_ms);
        }
    }
    let snaps: Vec<(u64, i64)> = r
        .records
        .iter()
        .filter_map(|(o, _, k)| match k {
            Seen::Snapshot { ts_ms, .. } => Some((*o, *ts_ms)),
            _ => None,
        })
        .collect();
    let marks: Vec<(u64, i64)> = s.snapshots().iter().map(|m| (m.offset, m.ts_ms)).collect();
    assert_eq!(marks, snaps);
    for m in s.snapshots() {
        let _ = s.snapshot_state(m);
    }
    // lanes index the table by name
    let mut named = 0;
    for id in 0..s.name_count() as u32 {
        let lane = s.lane(id);
        assert!(lane.windows(2).all(|w| w[0] < w[1]));
        assert!(lane.iter().all(|&i| events[i as usize].name == id));
        named += lane.len();
    }
    assert_eq!(named, events.iter().filter(|e| e.name != NO_NAME).count());
    let params: Vec<u32> = (0..events.len() as u32)
        .filter(|&i| s.topic_of(&events[i as usize]) == Some(Topic::Params))
        .collect();
    assert_eq!(s.param_events(), &params[..]);
    // exact state at every instant that matters, and around them
    let mut instants: Vec<i64> = vec![i64::MIN, i64::MAX, 0];
    for e in events.iter().take(64) {
        instants.extend([
            e.ts_ms.saturating_sub(1),
            e.ts_ms,
            e.ts_ms.saturating_add(1),
        ]);
    }
    for &t in &instants {
        let state = s.state_at(t);
        let got: HashMap<u32, u64> = state.iter().map(|&(id, v)| (id, v.to_bits())).collect();
        assert_eq!(got.len(), state.len(), "a path twice in the state");
        assert_eq!(got, brute_state(s, r, t), "state_at({t})");
        assert!(state.windows(2).all(|w| s.name(w[0].0) <= s.name(w[1].0)));
        for &(id, v) in &state {
            assert_eq!(
                s.value_at(id, t).map(f64::to_bits),
                Some(v.to_bits()),
                "value_at({}, {t}) disagrees with state_at",
                s.name(id)
            );
        }
        assert_eq!(
            s.events_until(t),
            events.iter().filter(|e| e.ts_ms <= t).count()
        );
    }
    let _ = s.heap_bytes();
    assert_eq!(
        s.time_range(),
        events
            .first()
            .map(|f| (f.ts_ms, events[events.len() - 1].ts_ms))
    );
}

fn check_loads(data: &[u8], strict: &Read, recovering: &Read) {
    let path = temp_file();
    std::fs::write(path, data).expect("writing the temporary file");
    for (recover, r) in [(false, strict), (true, recovering)] {
        let mut first: Option<String> = None;
        // 0: as `open_with` chooses (one part for inputs this small)
        for parts in [0, 2, 3] {
            let outcome = match load(path, recover, parts) {
                Ok(s) => {
                    assert!(!data.is_empty());
                    assert!(r.error.is_none(), "loaded what the reader refused");
                    check_session(&s, r, data.len() as u64);
                    observe(&s)
                }
                Err(LoadError::Empty(_)) => {
                    assert!(data.is_empty());
                    "empty".to_owned()
                }
                Err(LoadError::Read(ReadError::Corrupt { corruption, .. })) => {
                    assert_eq!(
                        r.error.as_ref(),
                        Some(&(corruption.offset, corruption.reason.clone())),
                        "the load failed where the reader did not"
                    );
                    format!("corrupt {corruption:?}")
                }
                Err(e) => panic!("unexpected load error: {e}"),
            };
            match &first {
                None => first = Some(outcome),
                Some(f) => assert!(
                    *f == outcome,
                    "a load in {parts} parts differs from the plain one"
                ),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let strict = read(data, false);
    let recovering = read(data, true);
    // a strict read is a prefix of a recovering one
    assert!(strict.records.len() <= recovering.records.len());
    assert_eq!(
        strict.records[..],
        recovering.records[..strict.records.len()]
    );
    match &strict.error {
        None => assert_eq!(strict.report, recovering.report),
        Some((off, reason)) => {
            let at = |c: &Option<integr8tor::session::Corruption>| {
                c.as_ref().map(|c| (c.offset, c.reason.clone()))
            };
            let seen_at = [
                at(&recovering.report.corrupt),
                at(&recovering.report.first_invalid),
            ];
            assert!(
                seen_at.contains(&Some((*off, reason.clone()))),
                "strict read failed at {off} ({reason}); the recovering one says {:?}",
                recovering.report
            );
        }
    }
    check_loads(data, &strict, &recovering);
});
