//! The session core against golden files written by an independent Python
//! encoder (`tests/data/make_golden.py`), through the library and through the
//! CLI; the damaged copies are cut from them here.

mod common;

use common::{count, fixture, integr8tor, small_facts, stderr, stdout};
use integr8tor::envelope::{ActorKind, Body};
use integr8tor::session::{LoadError, ReadError, ReadOptions, Reader, Session};
use serde_json::Value;

fn json(o: &std::process::Output) -> Value {
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(o));
    serde_json::from_str(&stdout(o)).expect("stdout is JSON")
}

#[test]
fn info_json_agrees_with_the_facts() {
    let facts = small_facts();
    let path = fixture("small-60s.msgpack");
    let info = json(&integr8tor(&["info", path.to_str().unwrap(), "--json"]));
    for key in [
        "event_records",
        "snapshot_records",
        "by_topic",
        "first_ts_ms",
        "last_ts_ms",
        "param_paths",
    ] {
        assert_eq!(info[key], facts[key], "field {key}");
    }
    let duration = facts["last_ts_ms"].as_i64().unwrap() - facts["first_ts_ms"].as_i64().unwrap();
    assert_eq!(info["duration_ms"], duration);
    assert_eq!(info["producers"], facts["producers"]);
    assert_eq!(info["session_ids"], facts["session_ids"]);
    assert_eq!(info["dropped_bytes"], 0);
    assert_eq!(info["unknown_records"], facts["unknown_records"]);
}

#[test]
fn state_json_is_exact_at_every_probe() {
    let facts = small_facts();
    let path = fixture("small-60s.msgpack");
    for (t, expected) in facts["exact_state_at"].as_object().unwrap() {
        let got = json(&integr8tor(&[
            "state",
            path.to_str().unwrap(),
            "--at",
            t,
            "--json",
        ]));
        let got = got.as_object().unwrap();
        let expected = expected.as_object().unwrap();
        assert_eq!(got.len(), expected.len(), "paths at {t}");
        for (p, v) in expected {
            // bit-exact: both sides are shortest round-trip decimal texts
            assert_eq!(
                got[p].as_f64().unwrap().to_bits(),
                v.as_f64().unwrap().to_bits(),
                "{p} at {t}"
            );
        }
    }
}

#[test]
fn library_state_and_snapshots_match_the_facts() {
    let facts = small_facts();
    let s = Session::open(&fixture("small-60s.msgpack")).unwrap();
    let snaps: Vec<i64> = s.snapshots().iter().map(|m| m.ts_ms).collect();
    let expected: Vec<i64> = facts["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(snaps, expected);
    assert_eq!(
        s.param_paths().len(),
        facts["param_paths"].as_array().unwrap().len()
    );
    for (t, state) in facts["exact_state_at"].as_object().unwrap() {
        let t: i64 = t.parse().unwrap();
        let got = s.state_at(t);
        let state = state.as_object().unwrap();
        assert_eq!(got.len(), state.len());
        for (id, v) in got {
            assert_eq!(v.to_bits(), state[s.name(id)].as_f64().unwrap().to_bits());
            assert_eq!(s.value_at(id, t), Some(v), "value_at agrees with state_at");
        }
    }
    // events come out in ts order, and every one reads back as a full envelope
    assert!(s.events().windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
    let first_param = s.events()[s.param_events()[0] as usize];
    let env = s.envelope(&first_param).unwrap();
    assert_eq!(env.ts_ms, first_param.ts_ms);
    assert_eq!(
        env.param().unwrap().1.to_bits(),
        first_param.value.to_bits()
    );
    // every file snapshot reads back with the paths the writer put in it
    let sizes: Vec<usize> = s
        .snapshots()
        .iter()
        .map(|m| s.snapshot_state(m).unwrap().len())
        .collect();
    let expected: Vec<usize> = facts["snapshot_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(sizes, expected);
}

#[test]
fn truncated_copy_loads_its_complete_records_and_reports_the_cut() {
    let cut = common::truncated_small();
    let path = cut.path.to_str().unwrap();
    let s = Session::open(&cut.path).unwrap();
    let r = s.read_report();
    assert_eq!(
        r.event_records + r.snapshot_records + r.unknown_records,
        cut.records_before
    );
    assert_eq!(r.dropped_bytes, cut.dropped_bytes);
    let info = json(&integr8tor(&["info", path, "--json"]));
    assert_eq!(info["dropped_bytes"], cut.dropped_bytes);

    let out = integr8tor(&["check", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("{} bytes dropped", cut.dropped_bytes)),
        "{}",
        stdout(&out)
    );
}

#[test]
fn corrupt_copy_fails_at_its_offset_unless_recovering() {
    let bad = common::corrupt_small();
    let path = &bad.path;
    match Session::open(path) {
        Err(LoadError::Read(ReadError::Corrupt { corruption, .. })) => {
            assert_eq!(corruption.offset, bad.offset)
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let s = Session::open_with(path, ReadOptions { recover: true }, |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let r = s.read_report();
    assert_eq!(
        r.event_records + r.snapshot_records + r.unknown_records,
        bad.records_before
    );
    assert_eq!(r.corrupt.as_ref().unwrap().offset, bad.offset);

    let info = integr8tor(&["info", path.to_str().unwrap()]);
    assert_eq!(info.status.code(), Some(2));
    let needle = format!("corrupt at byte {}", bad.offset);
    assert!(stderr(&info).contains(&needle), "{}", stderr(&info));

    let check = integr8tor(&["check", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    let text = stdout(&check);
    assert!(
        text.starts_with(&format!("{}: {needle}: ", path.display())),
        "{text}"
    );
}

#[test]
fn check_recover_salvages_a_clean_file() {
    let bad = common::corrupt_small();
    let out = bad.dir.path().join("salvaged.msgpack");
    let path = &bad.path;
    let r = integr8tor(&[
        "check",
        path.to_str().unwrap(),
        "--recover",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), bad.offset);
    let clean = integr8tor(&["check", out.to_str().unwrap()]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    let mut reader = Reader::open(&out, ReadOptions::default()).unwrap();
    let mut n = 0;
    while reader.next().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, bad.records_before);
    // refusing to overwrite: the output exists now
    let again = integr8tor(&[
        "check",
        path.to_str().unwrap(),
        "--recover",
        out.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("already exists"));
}

#[test]
fn clean_fixture_checks_ok() {
    let facts = small_facts();
    let out = integr8tor(&["check", fixture("small-60s.msgpack").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let expected = format!(
        "ok, {} events, {} snapshots",
        count(&facts, "event_records"),
        count(&facts, "snapshot_records")
    );
    assert!(stdout(&out).contains(&expected), "{}", stdout(&out));
}

#[test]
fn bad_paths_get_one_clear_line_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.msgpack");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("nope.msgpack");
    for (args, needle) in [
        (vec!["info", missing.to_str().unwrap()], "No such file"),
        (
            vec!["info", dir.path().to_str().unwrap()],
            "not a regular file",
        ),
        (vec!["info", empty.to_str().unwrap()], "empty file"),
        (
            vec!["state", missing.to_str().unwrap(), "--at", "0"],
            "No such file",
        ),
        (
            vec!["check", dir.path().to_str().unwrap()],
            "not a regular file",
        ),
        (vec!["check", empty.to_str().unwrap()], "empty file"),
    ] {
        let o = integr8tor(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// The exact state of a golden session at each of its facts' probes, bit for bit.
fn assert_state_matches_the_facts(s: &Session, facts: &Value) {
    for (t, state) in facts["exact_state_at"].as_object().unwrap() {
        let t: i64 = t.parse().unwrap();
        let got: Vec<(&str, u64)> = s
            .state_at(t)
            .into_iter()
            .map(|(id, v)| (s.name(id), v.to_bits()))
            .collect();
        let mut expected: Vec<(&str, u64)> = state
            .as_object()
            .unwrap()
            .iter()
            .map(|(p, v)| (p.as_str(), v.as_f64().unwrap().to_bits()))
            .collect();
        expected.sort();
        assert_eq!(got, expected, "state at {t}");
    }
}

#[test]
fn the_small_session_holds_every_kind_of_message_its_facts_name() {
    let facts = small_facts();
    let s = Session::open(&fixture("small-60s.msgpack")).unwrap();
    let r = s.read_report();
    assert_eq!(r.event_records, count(&facts, "event_records"));
    assert_eq!(r.snapshot_records, count(&facts, "snapshot_records"));
    assert_eq!(r.unknown_records, count(&facts, "unknown_records"));
    assert_eq!(s.file_bytes(), count(&facts, "file_bytes"));

    let mut by_actor = std::collections::BTreeMap::<String, u64>::new();
    let mut by_type = std::collections::BTreeMap::<String, u64>::new();
    let mut presets = Vec::new();
    let (mut extra, mut mapped, mut legacy) = (0u64, 0u64, 0u64);
    for e in s.events() {
        let env = s.envelope(e).unwrap();
        match &env.body {
            Body::Param { value_mapped, .. } => {
                let actor = env.actor.as_ref().map_or("", |a| a.as_str());
                *by_actor.entry(actor.into()).or_default() += 1;
                extra += u64::from(!env.extra.is_empty());
                mapped += u64::from(value_mapped.is_some());
            }
            Body::Event { event_type } => {
                *by_type.entry(event_type.clone()).or_default() += 1;
                if event_type == "preset_load" {
                    let name = env.extra_field("preset").unwrap().decode().unwrap();
                    presets.push(serde_json::json!({
                        "ts_ms": env.ts_ms,
                        "preset": name.as_str().unwrap(),
                    }));
                }
                if event_type.starts_with("note_") {
                    for field in ["note", "velocity"] {
                        let v = env.extra_field(field).unwrap().decode().unwrap();
                        assert!(v.as_u64().is_some(), "{event_type} {field}: {v}");
                    }
                }
            }
            _ => {}
        }
        // the old producer's strings arrive bin-typed and read as text
        if env.producer_id == "python.legacy" {
            legacy += 1;
            assert_eq!(env.session_id, facts["session_id"].as_str().unwrap());
            assert_eq!(env.actor_kind(), ActorKind::User);
        }
    }
    let json_counts = |m: &std::collections::BTreeMap<String, u64>| serde_json::json!(m);
    assert_eq!(json_counts(&by_actor), facts["params_by_actor"]);
    assert_eq!(json_counts(&by_type), facts["events_by_type"]);
    assert_eq!(Value::Array(presets), facts["preset_loads"]);
    assert_eq!(extra, count(&facts, "params_with_extra_fields"));
    assert_eq!(mapped, count(&facts, "params_with_value_mapped"));
    assert_eq!(legacy, count(&facts, "bin_string_events"));
    assert_state_matches_the_facts(&s, &facts);
}

#[test]
fn a_recording_started_mid_performance_keeps_its_first_snapshot_values() {
    let name = "snapshot-start.msgpack";
    let facts = common::facts(name);
    let path = fixture(name);
    let s = Session::open(&path).unwrap();
    assert_eq!(
        s.read_report().event_records,
        count(&facts, "event_records")
    );
    let snaps: Vec<i64> = s.snapshots().iter().map(|m| m.ts_ms).collect();
    assert_eq!(serde_json::json!(snaps), facts["snapshots"]);
    // the facts' state counts the first snapshot's values that no event sets
    assert!(!facts["snapshot_only_paths"].as_array().unwrap().is_empty());
    assert_state_matches_the_facts(&s, &facts);
    let info = json(&integr8tor(&["info", path.to_str().unwrap(), "--json"]));
    assert_eq!(info["param_paths"], facts["param_paths"]);
    for (t, expected) in facts["exact_state_at"].as_object().unwrap() {
        let got = json(&integr8tor(&[
            "state",
            path.to_str().unwrap(),
            "--at",
            t,
            "--json",
        ]));
        assert_eq!(&got, expected, "state --json at {t}");
    }
}
