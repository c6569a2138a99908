//! The session core against files written by an independent Python encoder
//! (`../shared/fixtures`), through the library and through the CLI.

mod common;

use common::{fixture, integr8tor, small_facts, stderr, stdout};
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
    assert_eq!(
        info["producers"],
        serde_json::json!(["python.gui", "sc.bridge"])
    );
    assert_eq!(
        info["session_ids"],
        serde_json::json!([facts["session_id"]])
    );
    assert_eq!(info["dropped_bytes"], 0);
    assert_eq!(info["unknown_records"], 0);
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
    assert_eq!(s.param_paths().len(), 24);
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
    // the last file snapshot agrees with the exact state where no clock skew intervenes
    let last = s.snapshots().last().unwrap();
    let snap = s.snapshot_state(last).unwrap();
    assert_eq!(snap.len(), 24);
}

#[test]
fn truncated_fixture_loads_its_complete_records_and_reports_the_cut() {
    let s = Session::open(&fixture("truncated.msgpack")).unwrap();
    let r = s.read_report();
    assert_eq!(r.event_records + r.snapshot_records, 20_000);
    assert_eq!(r.dropped_bytes, 37);
    let info = json(&integr8tor(&[
        "info",
        fixture("truncated.msgpack").to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(info["dropped_bytes"], 37);

    let out = integr8tor(&["check", fixture("truncated.msgpack").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("37 bytes dropped"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn corrupt_fixture_fails_at_its_offset_unless_recovering() {
    let path = fixture("corrupt-at-offset.msgpack");
    match Session::open(&path) {
        Err(LoadError::Read(ReadError::Corrupt { corruption, .. })) => {
            assert_eq!(corruption.offset, 3_300_793)
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let s = Session::open_with(&path, ReadOptions { recover: true }, |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let r = s.read_report();
    assert_eq!(r.event_records + r.snapshot_records, 15_000);
    assert_eq!(r.corrupt.as_ref().unwrap().offset, 3_300_793);

    let info = integr8tor(&["info", path.to_str().unwrap()]);
    assert_eq!(info.status.code(), Some(2));
    assert!(stderr(&info).contains("corrupt at byte 3300793"));

    let check = integr8tor(&["check", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    let text = stdout(&check);
    assert!(
        text.starts_with(&format!("{}: corrupt at byte 3300793: ", path.display())),
        "{text}"
    );
}

#[test]
fn check_recover_salvages_a_clean_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("salvaged.msgpack");
    let path = fixture("corrupt-at-offset.msgpack");
    let r = integr8tor(&[
        "check",
        path.to_str().unwrap(),
        "--recover",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 3_300_793);
    let clean = integr8tor(&["check", out.to_str().unwrap()]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    let mut reader = Reader::open(&out, ReadOptions::default()).unwrap();
    let mut n = 0;
    while reader.next().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 15_000);
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
    let out = integr8tor(&["check", fixture("small-60s.msgpack").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("ok, 30293 events, 12 snapshots"));
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
