//! Loading in parallel parts gives exactly what a one-part load gives: on the
//! golden files and copies of them cut or corrupted, and on files made so that a part's
//! guessed start is not a record boundary.

mod common;

use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::Path;

use common::fixture;
use integr8tor::envelope::{Actor, Envelope, RawValue};
use integr8tor::session::{LoadError, ReadError, ReadOptions, Session, SessionWriter, NO_NAME};

fn load(path: &Path, recover: bool, parts: usize) -> Result<Session, LoadError> {
    Session::open_in_parts(path, ReadOptions { recover }, parts, |_| {
        ControlFlow::Continue(())
    })
}

/// Everything a session shows, as text (floats as bits).
fn observe(s: &Session) -> String {
    let mut out = String::new();
    writeln!(out, "{:?}", s.read_report()).unwrap();
    for e in s.events() {
        let name = if e.name == NO_NAME {
            "-"
        } else {
            s.name(e.name)
        };
        writeln!(
            out,
            "{} {} {} {}#{} {} {} {:?}",
            e.ts_ms,
            e.value.to_bits(),
            e.offset,
            name,
            e.name,
            s.producer_name(e.producer),
            s.topic_name(e.topic),
            e.actor
        )
        .unwrap();
    }
    writeln!(out, "{:?}", s.snapshots()).unwrap();
    writeln!(
        out,
        "{:?} {:?} {:?}",
        s.by_topic(),
        s.producers(),
        s.session_ids()
    )
    .unwrap();
    writeln!(out, "{:?} {:?}", s.param_ids(), s.param_events()).unwrap();
    for id in 0..s.name_count() as u32 {
        writeln!(out, "{} {:?}", s.name(id), s.lane(id)).unwrap();
    }
    if let Some((first, last)) = s.time_range() {
        for k in 0..=20 {
            let t = first + (last - first) * k / 20;
            writeln!(out, "{t}: {:?}", s.state_at(t)).unwrap();
        }
    }
    out
}

fn assert_parts_agree(path: &Path, recover: bool) -> Session {
    let one = load(path, recover, 1).unwrap();
    let expected = observe(&one);
    for parts in [2, 3, 4, 7] {
        let s = load(path, recover, parts).unwrap();
        assert!(
            observe(&s) == expected,
            "{} in {parts} parts differs from one part",
            path.display()
        );
    }
    let plain =
        Session::open_with(path, ReadOptions { recover }, |_| ControlFlow::Continue(())).unwrap();
    assert!(observe(&plain) == expected);
    one
}

#[test]
fn fixtures_load_the_same_in_any_number_of_parts() {
    let facts = common::small_facts();
    let s = assert_parts_agree(&fixture("small-60s.msgpack"), false);
    assert_eq!(
        s.events().len() as u64,
        common::count(&facts, "event_records")
    );
    assert_parts_agree(&fixture("snapshot-start.msgpack"), false);
    let cut = common::truncated_small();
    let s = assert_parts_agree(&cut.path, false);
    assert_eq!(s.read_report().dropped_bytes, cut.dropped_bytes);
    let bad = common::corrupt_small();
    let s = assert_parts_agree(&bad.path, true);
    assert_eq!(s.read_report().corrupt.as_ref().unwrap().offset, bad.offset);
}

#[test]
fn a_strict_load_fails_at_the_same_offset_in_any_number_of_parts() {
    let bad = common::corrupt_small();
    for parts in [1, 2, 3, 4, 7] {
        match load(&bad.path, false, parts) {
            Err(LoadError::Read(ReadError::Corrupt { corruption, .. })) => {
                assert_eq!(corruption.offset, bad.offset, "{parts} parts")
            }
            other => panic!("{parts} parts: expected corruption, got {other:?}"),
        }
    }
}

fn env(seq: u64, ts: i64, producer: &str, path: &str, value: f64) -> Envelope {
    Envelope::param_change("sess", producer, seq, ts, Actor::User, path, value)
}

/// A file whose middle is one big event whose extra field holds a copy of a
/// valid run of records: a part that starts in there reads records that are
/// not in the file, and the load must notice and read on from the right place.
#[test]
fn a_false_record_boundary_inside_a_value_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // the embedded run of records, as a writer writes them
    let inner_path = dir.path().join("inner.msgpack");
    {
        let mut w = SessionWriter::create(&inner_path).unwrap();
        for i in 0..2_000u64 {
            let e = env(
                i + 1,
                5_000 + i as i64,
                "inner",
                &format!("p.{}", i % 7),
                0.5,
            );
            w.append_envelope(&e).unwrap();
        }
        w.finish().unwrap();
    }
    let inner = std::fs::read(&inner_path).unwrap();

    let path = dir.path().join("outer.msgpack");
    {
        let mut w = SessionWriter::create(&path).unwrap();
        for i in 0..50u64 {
            // producers appear in a different order in each half
            let producer = if i < 25 { "a" } else { "b" };
            w.append_envelope(&env(i + 1, 1_000 + (i as i64 % 9) * 10, producer, "x", 0.1))
                .unwrap();
        }
        let mut big = env(51, 1_005, "c", "y", 0.2);
        big.extra.push(("blob".into(), RawValue(bin(&inner))));
        w.append_envelope(&big).unwrap();
        for i in 0..50u64 {
            let producer = if i % 2 == 0 { "b" } else { "d" };
            w.append_envelope(&env(52 + i, 990 + i as i64, producer, "z", 0.3))
                .unwrap();
        }
        w.finish().unwrap();
    }
    let one = assert_parts_agree(&path, false);
    assert_eq!(one.producers(), vec!["a", "b", "c", "d"]);
    assert_eq!(one.events().len(), 101);
    assert!(
        one.name_id("p.1").is_none(),
        "the embedded records are not events"
    );
}

/// MessagePack bin of `bytes`.
fn bin(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0xc6];
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Parts that meet names, producers and topics in different orders number
/// them as a one-part load does, and their skewed events merge stably.
#[test]
fn parts_renumber_names_and_merge_ties_stably() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.msgpack");
    {
        let mut w = SessionWriter::create(&path).unwrap();
        let mut seq = 0;
        for i in 0..6_000i64 {
            seq += 1;
            let producer = ["p1", "p2", "p3"][(i as usize / 1_000 + i as usize) % 3];
            let name = format!("n.{}", (i * 7919) % (10 + i / 600));
            // many equal ts_ms across the whole file, and clock skew
            let ts = 10_000 + i / 50 * 10 - (i % 5) * 3;
            let mut e = env(seq, ts, producer, &name, i as f64 / 6_000.0);
            if i % 11 == 0 {
                e.body = integr8tor::envelope::Body::Event {
                    event_type: name.clone(),
                };
            }
            w.append_envelope(&e).unwrap();
        }
        w.finish().unwrap();
    }
    let one = assert_parts_agree(&path, false);
    assert_eq!(one.events().len(), 6_000);
}

/// Found by `fuzz/` (session_reader): a snapshot whose `ts_ms` is a
/// well-formed integer too big for i64 is an invalid record that a
/// recovering read steps over, not corruption that ends the read.
#[test]
fn an_out_of_range_snapshot_time_is_an_invalid_record_not_corruption() {
    let mut bytes = vec![0x83];
    for (k, v) in [
        (&b"type"[..], &b"\xa8snapshot"[..]),
        (b"ts_ms", b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
        (b"state", b"\x80"),
    ] {
        bytes.push(0xa0 | k.len() as u8);
        bytes.extend_from_slice(k);
        bytes.extend_from_slice(v);
    }
    let bad = bytes.len() as u64;
    let mut good = Vec::new();
    {
        let mut w = SessionWriter::new(&mut good, Path::new("memory"));
        w.append_envelope(&env(1, 1_000, "p", "x", 0.5)).unwrap();
        w.flush().unwrap();
    }
    bytes.extend_from_slice(&good);

    let mut strict =
        integr8tor::session::Reader::new(&bytes[..], Path::new("m"), ReadOptions::default());
    match strict.next() {
        Err(ReadError::Corrupt { corruption, .. }) => {
            assert_eq!(corruption.offset, 0);
            assert!(
                corruption.reason.contains("out of range"),
                "{}",
                corruption.reason
            );
        }
        other => panic!("expected an error at byte 0, got {other:?}"),
    }
    let mut r =
        integr8tor::session::Reader::new(&bytes[..], Path::new("m"), ReadOptions { recover: true });
    let mut offsets = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        offsets.push(rec.offset);
    }
    // the event and the snapshot after it, both past the invalid record
    assert_eq!(offsets.len(), 2);
    assert_eq!(offsets[0], bad);
    let report = r.report();
    assert_eq!(report.invalid_records, 1);
    assert_eq!(report.first_invalid.as_ref().unwrap().offset, 0);
    assert!(report.corrupt.is_none());
    assert_eq!(report.good_bytes, bytes.len() as u64);
}

/// A name that is both a parameter path and an event type (or a mod path):
/// `value_at` answers with the parameter's value, as `state_at` does.
#[test]
fn value_at_skips_other_topics_sharing_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared-name.msgpack");
    {
        let mut w = SessionWriter::create(&path).unwrap();
        w.append_envelope(&env(1, 1_000, "p", "x", 0.25)).unwrap();
        let mut note = env(2, 2_000, "p", "x", 0.0);
        note.body = integr8tor::envelope::Body::Event {
            event_type: "x".into(),
        };
        w.append_envelope(&note).unwrap();
        w.finish().unwrap();
    }
    let s = Session::open(&path).unwrap();
    let x = s.name_id("x").unwrap();
    assert_eq!(s.lane(x).len(), 2);
    assert_eq!(s.state_at(3_000), vec![(x, 0.25)]);
    assert_eq!(s.value_at(x, 3_000), Some(0.25));
    assert_eq!(s.value_at(x, 999), None);
}
