//! Property tests: whatever the writer writes, the reader and the loader read
//! back exactly; every prefix of a file reads as a prefix of its records; and
//! files from the writer load with a plain Python `msgpack.Unpacker` loop.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use integr8tor::envelope::{Actor, Body, Envelope, RawValue};
use integr8tor::session::reader::snapshot_entries;
use integr8tor::session::{ReadOptions, Reader, RecordRef, Session, SessionWriter};
use proptest::prelude::*;

const PATHS: [&str; 5] = [
    "gen.1.cutoff",
    "gen.2.drive",
    "master.volume",
    "mod.1.rate",
    "fx.é.mix",
];

/// One generated message: (topic kind, path index, ts step, value, actor index).
fn message() -> impl Strategy<Value = (u8, usize, i64, f64, u8)> {
    (0u8..3, 0..PATHS.len(), -40i64..3_000, 0.0f64..=1.0, 0u8..4)
}

fn envelope(i: u64, ts: i64, (kind, p, _, value, actor): (u8, usize, i64, f64, u8)) -> Envelope {
    let actor = [Actor::User, Actor::Midi, Actor::Preset, Actor::Mod][actor as usize].clone();
    let mut env = Envelope::param_change("sess", "prop.gen", i + 1, ts, actor, PATHS[p], value);
    match kind {
        0 => {}
        1 => {
            env.body = Body::Mod {
                path: format!("bus.{p}"),
                bus: p as i64,
                value,
                source_type: Some("lfo".into()),
            }
        }
        _ => {
            env.body = Body::Event {
                event_type: "note_on".into(),
            };
            env.extra.push((
                "note".into(),
                RawValue::from_value(&rmpv::Value::from(60 + p as i64)),
            ));
        }
    }
    env
}

/// Builds the session: envelopes with ts moving mostly forward, sometimes back (skew).
fn build(msgs: &[(u8, usize, i64, f64, u8)]) -> Vec<Envelope> {
    let mut ts = 1_790_000_000_000i64;
    msgs.iter()
        .enumerate()
        .map(|(i, &m)| {
            ts += m.2;
            envelope(i as u64, ts, m)
        })
        .collect()
}

fn write(envs: &[Envelope]) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut w = SessionWriter::new(&mut bytes, Path::new("memory"));
        for e in envs {
            w.append_envelope(e).unwrap();
        }
        w.flush().unwrap();
    }
    bytes
}

#[derive(Debug, PartialEq)]
enum Rec {
    Event {
        topic: String,
        key: Option<String>,
        data: Vec<u8>,
    },
    Snapshot {
        ts_ms: i64,
        state: Vec<(String, u64)>,
    },
}

/// Reads every record; returns them with their end offsets and the reader's report.
fn read_all(bytes: &[u8]) -> (Vec<(Rec, u64)>, integr8tor::session::ReadReport) {
    let mut r = Reader::new(bytes, Path::new("memory"), ReadOptions::default());
    let mut out = Vec::new();
    while let Some(rec) = r.next().expect("a prefix never fails") {
        let end = rec.offset + rec.raw.len() as u64;
        let rec = match rec.record {
            RecordRef::Event {
                topic, key, data, ..
            } => Rec::Event {
                topic: String::from_utf8(topic.to_vec()).unwrap(),
                key: key.map(|k| String::from_utf8(k.to_vec()).unwrap()),
                data: data.to_vec(),
            },
            RecordRef::Snapshot { ts_ms, state } => {
                let mut v = Vec::new();
                snapshot_entries(state, |p, x| {
                    v.push((String::from_utf8(p.to_vec()).unwrap(), x.to_bits()))
                })
                .unwrap();
                Rec::Snapshot { ts_ms, state: v }
            }
            RecordRef::Unknown => panic!("the writer writes no unknown records"),
        };
        out.push((rec, end));
    }
    (out, r.report().clone())
}

/// The writing rules of docs/formats.md section 3, written out independently.
fn model(envs: &[Envelope]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut state: Vec<(String, f64)> = Vec::new();
    let mut last: Option<i64> = None;
    for e in envs {
        out.push(Rec::Event {
            topic: e.topic().name().into(),
            key: Some(e.kafka_key().into()),
            data: e.encode(),
        });
        if let Some((p, v)) = e.param() {
            match state.iter_mut().find(|(q, _)| q == p) {
                Some(slot) => slot.1 = v,
                None => state.push((p.into(), v)),
            }
        }
        if last.is_none_or(|l| e.ts_ms - l > 5_000) {
            last = Some(e.ts_ms);
            out.push(Rec::Snapshot {
                ts_ms: e.ts_ms,
                state: state
                    .iter()
                    .map(|(p, v)| (p.clone(), v.to_bits()))
                    .collect(),
            });
        }
    }
    out
}

/// State at t by the exact rule, the slow way.
fn naive_state(envs: &[Envelope], t: i64) -> HashMap<String, u64> {
    let mut params: Vec<&Envelope> = envs.iter().filter(|e| e.param().is_some()).collect();
    params.sort_by_key(|e| e.ts_ms);
    let mut s = HashMap::new();
    for e in params.into_iter().filter(|e| e.ts_ms <= t) {
        let (p, v) = e.param().unwrap();
        s.insert(p.to_owned(), v.to_bits());
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn writer_output_reads_back_exactly(msgs in prop::collection::vec(message(), 0..400)) {
        let envs = build(&msgs);
        let bytes = write(&envs);
        let (recs, report) = read_all(&bytes);
        let recs: Vec<Rec> = recs.into_iter().map(|(r, _)| r).collect();
        prop_assert_eq!(recs, model(&envs));
        prop_assert!(report.is_clean());
        prop_assert_eq!(report.good_bytes, bytes.len() as u64);
    }

    #[test]
    fn every_prefix_reads_as_a_prefix(msgs in prop::collection::vec(message(), 1..60)) {
        let envs = build(&msgs);
        let bytes = write(&envs);
        let (all, _) = read_all(&bytes);
        for cut in 0..=bytes.len() {
            let (recs, report) = read_all(&bytes[..cut]);
            let k = all.iter().take_while(|(_, end)| *end <= cut as u64).count();
            prop_assert_eq!(recs.len(), k, "cut at {}", cut);
            for (a, b) in recs.iter().zip(&all) {
                prop_assert_eq!(a, b);
            }
            let complete = if k == 0 { 0 } else { all[k - 1].1 };
            prop_assert_eq!(report.dropped_bytes, cut as u64 - complete);
        }
    }

    #[test]
    fn loaded_state_is_exact_at_any_instant(
        msgs in prop::collection::vec(message(), 1..800),
        probes in prop::collection::vec(0.0f64..1.0, 1..20),
    ) {
        let envs = build(&msgs);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.msgpack");
        std::fs::File::create(&path).unwrap().write_all(&write(&envs)).unwrap();
        let s = Session::open(&path).unwrap();
        prop_assert_eq!(s.events().len(), envs.len());
        let lo = envs.iter().map(|e| e.ts_ms).min().unwrap() - 10;
        let hi = envs.iter().map(|e| e.ts_ms).max().unwrap() + 10;
        for p in probes {
            let t = lo + ((hi - lo) as f64 * p) as i64;
            let got: HashMap<String, u64> = s
                .state_at(t)
                .into_iter()
                .map(|(id, v)| (s.name(id).to_owned(), v.to_bits()))
                .collect();
            prop_assert_eq!(got, naive_state(&envs, t), "at {}", t);
        }
    }
}

#[test]
fn python_msgpack_unpacker_reads_writer_files() {
    let mut msgs = Vec::new();
    for i in 0..2_000u32 {
        msgs.push((
            (i % 3) as u8,
            (i as usize) % PATHS.len(),
            7,
            (i as f64) / 2_000.0,
            0,
        ));
    }
    let envs = build(&msgs);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.msgpack");
    {
        let mut w = SessionWriter::create(&path).unwrap();
        for e in &envs {
            w.append_envelope(e).unwrap();
        }
        w.finish().unwrap();
    }
    let script = r#"
import sys, msgpack
events = snaps = 0
paths = set()
with open(sys.argv[1], "rb") as f:
    for rec in msgpack.Unpacker(f, raw=False):
        if rec["type"] == "event":
            events += 1
            if rec["topic"] == "noise.params":
                paths.add(rec["data"]["path"])
        elif rec["type"] == "snapshot":
            snaps += 1
print(events, snaps, len(paths))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs (the CI script installs it with msgpack)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Session::open(&path).unwrap();
    let expected = format!(
        "{} {} {}\n",
        envs.len(),
        s.read_report().snapshot_records,
        s.param_paths().len()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}
