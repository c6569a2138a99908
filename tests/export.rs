//! `integr8tor export` and `import` against the 60 s golden session: each
//! export read back by an independent reader (Python `csv`, `sqlite3` and
//! `mcap`, tests/python/export_readers.py) has the facts file's counts and
//! values; the SQLite round trips are lossless; bad input leaves no output.
//!
//! Needs python3 with `mcap` (`.ci/install` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{fixture, integr8tor, small_facts, stderr, stdout};
use integr8tor::export::{self, Control, ExportError, ExportOptions, Format, Progress};
use integr8tor::session::Session;
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The facts file's probe instants, comma-separated.
fn instants(facts: &Value) -> String {
    facts["exact_state_at"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs the Python reader on an export.
fn python_read(kind: &str, file: &Path, facts: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/export_readers.py");
    let o = Command::new("python3")
        .arg(script)
        .args([kind, s(file), &instants(facts)])
        .output()
        .expect("running python3");
    assert!(
        o.status.success(),
        "export_readers.py {kind} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("the reader prints JSON")
}

fn export_ok(args: &[&str]) -> String {
    let o = integr8tor(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// Every file in `dir`, by name.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn csv_read_by_python_has_the_facts() {
    let facts = small_facts();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.csv");
    let summary = export_ok(&["export", s(&fixture("small-60s.msgpack")), s(&out)]);
    let events = format!("exported {} events", facts["event_records"]);
    assert!(summary.contains(&events), "{summary}");
    let r = python_read("csv", &out, &facts);
    assert_eq!(
        r["columns"],
        serde_json::json!([
            "ts_ms",
            "time",
            "topic",
            "path",
            "value",
            "value_mapped",
            "actor",
            "producer_id",
            "seq",
            "data"
        ])
    );
    for key in [
        "event_records",
        "by_topic",
        "first_ts_ms",
        "last_ts_ms",
        "param_paths",
        "exact_state_at",
    ] {
        assert_eq!(r[key], facts[key], "{key}");
    }
    assert_eq!(r["bad_times"], 0, "every ISO time is its ts_ms");
    assert_eq!(
        r["events_with_data"], facts["by_topic"]["noise.events"],
        "every event has its own fields in `data`"
    );
}

#[test]
fn sqlite_read_by_python_has_the_facts() {
    let facts = small_facts();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.db");
    export_ok(&["export", s(&fixture("small-60s.msgpack")), s(&out)]);
    let r = python_read("sqlite", &out, &facts);
    for key in [
        "event_records",
        "by_topic",
        "snapshot_records",
        "snapshots",
        "first_ts_ms",
        "last_ts_ms",
        "param_paths",
        "exact_state_at",
    ] {
        assert_eq!(r[key], facts[key], "{key}");
    }
    assert_eq!(
        r["params_indexes"],
        serde_json::json!(["path,ts_ms", "ts_ms"])
    );
    assert_eq!(r["snapshot_states_are_objects"], true);
    assert_eq!(r["events_with_data"], facts["by_topic"]["noise.events"]);
    let session = &r["session"];
    assert_eq!(session["event_records"], facts["event_records"]);
    assert_eq!(session["by_topic"], facts["by_topic"]);
    assert_eq!(session["param_paths"], facts["param_paths"]);
    assert_eq!(
        session["session_ids"],
        serde_json::json!([facts["session_id"]])
    );
    let info = info_of(&fixture("small-60s.msgpack"));
    assert_eq!(session["producers"], info["producers"]);
}

#[test]
fn mcap_passes_the_mcap_reader_with_summary_indexes_and_json_channels() {
    let facts = small_facts();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.mcap");
    export_ok(&["export", s(&fixture("small-60s.msgpack")), s(&out)]);
    let r = python_read("mcap", &out, &facts);
    let by_channel = r["by_channel"].as_object().unwrap();
    for (topic, n) in facts["by_topic"].as_object().unwrap() {
        assert_eq!(&by_channel[topic], n, "channel {topic}");
    }
    let params = facts["by_topic"]["noise.params"].as_u64().unwrap();
    let mods = facts["by_topic"]["noise.mod"].as_u64().unwrap();
    let per_path: u64 = by_channel
        .iter()
        .filter(|(k, _)| k.starts_with("/param/"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    let per_bus: u64 = by_channel
        .iter()
        .filter(|(k, _)| k.starts_with("/mod/"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(per_path, params);
    assert_eq!(per_bus, mods);
    assert_eq!(
        by_channel
            .keys()
            .filter(|k| k.starts_with("/mod/bus."))
            .count(),
        16
    );
    assert_eq!(by_channel["/snapshot"], facts["snapshot_records"]);
    let events = facts["event_records"].as_u64().unwrap();
    let snaps = facts["snapshot_records"].as_u64().unwrap();
    assert_eq!(r["message_count"], events + params + mods + snaps);
    assert!(r["chunk_indexes"].as_u64().unwrap() >= 1);
    assert_eq!(r["chunk_compression"], serde_json::json!(["lz4"]));
    assert_eq!(r["schema_encodings"], serde_json::json!(["jsonschema"]));
    assert_eq!(r["message_encodings"], serde_json::json!(["json"]));
    assert_eq!(r["channels_without_schema"], 0);
    assert_eq!(r["bad_json"], 0);
    let seek_channel = r["seek_channel"].as_str().unwrap();
    assert_eq!(
        r["seek_count"], by_channel[seek_channel],
        "indexed read of one channel"
    );
    for key in ["first_ts_ms", "last_ts_ms", "param_paths", "exact_state_at"] {
        assert_eq!(r[key], facts[key], "{key}");
    }
}

/// The MCAP export read back with the `mcap` crate's own reader, chunk CRCs
/// checked: the summary's statistics count what the stream holds, and each
/// chunk's message indexes lead to its messages.
#[test]
fn mcap_reads_back_with_the_mcap_crates_reader_crcs_checked() {
    use mcap::read::{MessageStream, Options, Summary};
    let facts = small_facts();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.mcap");
    export_ok(&["export", s(&fixture("small-60s.msgpack")), s(&out)]);
    let bytes = std::fs::read(&out).unwrap();
    let mut by_channel: std::collections::HashMap<u16, u64> = Default::default();
    let mut total = 0u64;
    for m in MessageStream::new_with_options(&bytes, Options::ValidateChunkCrcs.into()).unwrap() {
        let m = m.expect("a valid message");
        assert!(serde_json::from_slice::<Value>(&m.data).is_ok());
        *by_channel.entry(m.channel.id).or_default() += 1;
        total += 1;
    }
    let summary = Summary::read(&bytes).unwrap().expect("a summary section");
    let stats = summary.stats.as_ref().expect("statistics");
    assert_eq!(stats.message_count, total);
    let events = facts["event_records"].as_u64().unwrap();
    let snaps = facts["snapshot_records"].as_u64().unwrap();
    let params = facts["by_topic"]["noise.params"].as_u64().unwrap();
    let mods = facts["by_topic"]["noise.mod"].as_u64().unwrap();
    assert_eq!(total, events + snaps + params + mods);
    let counts: std::collections::HashMap<u16, u64> =
        stats.channel_message_counts.clone().into_iter().collect();
    assert_eq!(counts, by_channel);
    assert_eq!(stats.channel_count as usize, summary.channels.len());
    assert_eq!(stats.chunk_count as usize, summary.chunk_indexes.len());
    assert!(summary.chunk_indexes.len() >= 2, "several chunks");
    let mut indexed = 0u64;
    for chunk in &summary.chunk_indexes {
        let indexes = summary.read_message_indexes(&bytes, chunk).unwrap();
        for (channel, entries) in &indexes {
            indexed += entries.len() as u64;
            let last = entries.last().unwrap();
            let m = summary.seek_message(&bytes, chunk, last).unwrap();
            assert_eq!(m.channel.id, channel.id);
            assert_eq!(m.log_time, last.log_time);
            assert!((chunk.message_start_time..=chunk.message_end_time).contains(&m.log_time));
        }
    }
    assert_eq!(indexed, total, "every message is indexed");

    // nothing in range: still a whole file, with a summary and no chunks
    let empty = dir.path().join("empty.mcap");
    export_ok(&[
        "export",
        s(&fixture("small-60s.msgpack")),
        s(&empty),
        "--from",
        "99999999999999",
    ]);
    let bytes = std::fs::read(&empty).unwrap();
    let stream = MessageStream::new_with_options(&bytes, Options::ValidateChunkCrcs.into());
    assert_eq!(stream.unwrap().count(), 0);
    let summary = Summary::read(&bytes).unwrap().expect("a summary section");
    assert_eq!(summary.stats.unwrap().message_count, 0);
    assert!(summary.chunk_indexes.is_empty());
}

#[test]
fn jsonl_has_every_record_spelled_as_the_envelope_json() {
    let facts = small_facts();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.jsonl");
    let input = fixture("small-60s.msgpack");
    export_ok(&["export", s(&input), s(&out)]);
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let events: Vec<&Value> = lines.iter().filter(|l| l["type"] == "event").collect();
    let snaps = lines.iter().filter(|l| l["type"] == "snapshot").count();
    assert_eq!(
        events.len() as u64,
        facts["event_records"].as_u64().unwrap()
    );
    assert_eq!(snaps as u64, facts["snapshot_records"].as_u64().unwrap());
    // the data of each event is the library's envelope JSON of the same record
    let session = Session::open(&input).unwrap();
    let first = &session.events()[0];
    let env = session.envelope(first).unwrap();
    let spelled = export::json::envelope_value(&env.encode()).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["data"] == spelled && e["topic"] == env.topic().name()),
        "the first event by time is in the file as {spelled}"
    );
    let params = events
        .iter()
        .filter(|e| e["topic"] == "noise.params")
        .count();
    assert_eq!(
        params as u64,
        facts["by_topic"]["noise.params"].as_u64().unwrap()
    );
}

/// `info --json` of a session, less the fields that name or size the file.
fn info_of(file: &Path) -> Value {
    let o = integr8tor(&["info", s(file), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let m = v.as_object_mut().unwrap();
    m.remove("file");
    m.remove("file_bytes");
    v
}

fn state_json(file: &Path, at: &str) -> Value {
    let o = integr8tor(&["state", s(file), "--at", at, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn session_to_sqlite_to_session_keeps_info_and_state() {
    let facts = small_facts();
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("small-60s.msgpack");
    let db = dir.path().join("small.db");
    let back = dir.path().join("back.msgpack");
    export_ok(&["export", s(&input), s(&db)]);
    let summary = export_ok(&["import", s(&db), s(&back)]);
    let counts = format!(
        "imported {} events and {} snapshots",
        facts["event_records"], facts["snapshot_records"]
    );
    assert!(summary.contains(&counts), "{summary}");
    // records of unknown types are skipped by readers and not exported
    let (mut a, mut b) = (info_of(&back), info_of(&input));
    for v in [&mut a, &mut b] {
        v.as_object_mut().unwrap().remove("unknown_records");
    }
    assert_eq!(a, b);
    for (t, expected) in facts["exact_state_at"].as_object().unwrap() {
        assert_eq!(&state_json(&back, t), expected, "state at {t}");
        assert_eq!(state_json(&back, t), state_json(&input, t), "state at {t}");
    }
    let clean = integr8tor(&["check", s(&back)]);
    assert!(clean.status.success(), "{}", stdout(&clean));
}

/// Every row of every table but `session`, in (ts_ms, rowid) order.
fn tables(db: &Path) -> Vec<(String, Vec<Vec<String>>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut out = Vec::new();
    for t in ["params", "mod", "events", "snapshots"] {
        let mut st = conn
            .prepare(&format!("SELECT * FROM {t} ORDER BY ts_ms, rowid"))
            .unwrap();
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        out.push((t.to_owned(), rows));
    }
    out
}

#[test]
fn sqlite_export_to_session_to_sqlite_is_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.db");
    let session = dir.path().join("session.msgpack");
    let second = dir.path().join("second.db");
    export_ok(&["export", s(&fixture("small-60s.msgpack")), s(&first)]);
    export_ok(&["import", s(&first), s(&session)]);
    export_ok(&["export", s(&session), s(&second)]);
    let (a, b) = (tables(&first), tables(&second));
    for ((name, rows_a), (_, rows_b)) in a.iter().zip(&b) {
        assert_eq!(rows_a.len(), rows_b.len(), "rows of {name}");
        assert_eq!(rows_a, rows_b, "table {name}");
    }
}

#[test]
fn first_design_recording_imports_with_snapshots_and_exports_back_losslessly() {
    let facts = small_facts();
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.db");
    export_ok(&["export", s(&fixture("small-60s.msgpack")), s(&full)]);
    // the first design's table only: params(ts_ms, path, value, actor)
    let old = dir.path().join("params.db");
    {
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch(&format!(
            "ATTACH '{}' AS src;
             CREATE TABLE params(ts_ms INTEGER, path TEXT, value REAL, actor TEXT);
             INSERT INTO params SELECT ts_ms, path, value, actor FROM src.params ORDER BY rowid;",
            full.display()
        ))
        .unwrap();
    }
    let session = dir.path().join("old.msgpack");
    let again = dir.path().join("again.db");
    export_ok(&["import", s(&old), s(&session)]);
    let info = info_of(&session);
    assert_eq!(info["event_records"], facts["by_topic"]["noise.params"]);
    assert_eq!(info["param_paths"], facts["param_paths"]);
    assert!(
        info["snapshot_records"].as_u64().unwrap() >= 1,
        "snapshots are made"
    );
    for (t, expected) in facts["exact_state_at"].as_object().unwrap() {
        assert_eq!(&state_json(&session, t), expected, "state at {t}");
    }
    export_ok(&["export", s(&session), s(&again)]);
    let rows = |db: &Path, sql: &str| -> Vec<String> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut st = conn.prepare(sql).unwrap();
        st.query_map([], |r| {
            Ok(format!(
                "{:?}",
                (0..4)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i).unwrap())
                    .collect::<Vec<_>>()
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let q = "SELECT ts_ms, path, value, actor FROM params ORDER BY ts_ms, rowid";
    assert_eq!(rows(&old, q), rows(&again, q));
}

#[test]
fn a_database_without_a_recording_is_named_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE notes(ts INTEGER, text TEXT);")
            .unwrap();
    }
    let out = dir.path().join("out.msgpack");
    let o = integr8tor(&["import", s(&db), s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("no `params` table"), "{err}");
    assert!(err.contains("notes"), "names what it has: {err}");
    assert!(!out.exists());

    let partial = dir.path().join("partial.db");
    {
        let conn = rusqlite::Connection::open(&partial).unwrap();
        conn.execute_batch("CREATE TABLE params(ts_ms INTEGER, path TEXT, value REAL);")
            .unwrap();
    }
    let o = integr8tor(&["import", s(&partial), s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no column `actor`"), "{}", stderr(&o));

    let not_db = dir.path().join("text.db");
    std::fs::write(
        &not_db,
        "this is not a database, just some words.\n".repeat(50),
    )
    .unwrap();
    let o = integr8tor(&["import", s(&not_db), s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not an SQLite database"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    assert_eq!(listing(dir.path()), ["other.db", "partial.db", "text.db"]);
}

#[test]
fn truncated_or_corrupt_input_fails_with_the_readers_message_and_leaves_no_output() {
    let truncated = common::truncated_small();
    let corrupt = common::corrupt_small();
    let says_corrupt = format!("corrupt at byte {}", corrupt.offset);
    for (damaged, says) in [
        (&truncated, "truncated at byte"),
        (&corrupt, says_corrupt.as_str()),
    ] {
        let name = damaged
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for format in Format::ALL {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join(format!("out.{}", format.extension()));
            let o = integr8tor(&["export", s(&damaged.path), s(&out)]);
            assert_eq!(o.status.code(), Some(2), "{name} to {format}");
            let err = stderr(&o);
            assert!(err.contains(says), "{name} to {format}: {err}");
            assert!(err.contains(&name), "names the input: {err}");
            assert!(
                listing(dir.path()).is_empty(),
                "{name} to {format} left {:?}",
                listing(dir.path())
            );
        }
    }
}

#[test]
fn an_existing_output_is_kept_without_force_and_replaced_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keep.csv");
    std::fs::write(&out, "precious\n").unwrap();
    let input = fixture("small-60s.msgpack");
    let o = integr8tor(&["export", s(&input), s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious\n");
    export_ok(&["export", s(&input), s(&out), "--force"]);
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .starts_with("ts_ms,time,topic"));
    assert_eq!(listing(dir.path()), ["keep.csv"]);
    // the same holds for imports
    let db = dir.path().join("s.db");
    export_ok(&["export", s(&input), s(&db)]);
    let session = dir.path().join("s.msgpack");
    std::fs::write(&session, b"x").unwrap();
    let o = integr8tor(&["import", s(&db), s(&session)]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&session).unwrap(), b"x");
    export_ok(&["import", s(&db), s(&session), "--force"]);
    assert!(Session::open(&session).is_ok());
}

#[test]
fn from_to_and_topics_select_records() {
    let facts = small_facts();
    let input = fixture("small-60s.msgpack");
    let session = Session::open(&input).unwrap();
    let first = facts["first_ts_ms"].as_i64().unwrap();
    let (from, to) = (first + 10_000, first + 20_000);
    let params_in_range = session
        .events()
        .iter()
        .filter(|e| e.ts_ms >= from && e.ts_ms <= to)
        .filter(|e| session.topic_name(e.topic) == "noise.params")
        .count();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("part.csv");
    let (f, t) = (from.to_string(), to.to_string());
    export_ok(&[
        "export",
        s(&input),
        s(&out),
        "--from",
        &f,
        "--to",
        &t,
        "--topics",
        "params",
    ]);
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), params_in_range);
    assert!(rows.iter().all(|r| &r[2] == "noise.params"));
    assert!(rows.iter().all(|r| {
        let ts: i64 = r[0].parse().unwrap();
        ts >= from && ts <= to
    }));
    let o = integr8tor(&[
        "export",
        s(&input),
        s(&dir.path().join("x.csv")),
        "--topics",
        "noise.nope",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown topic"), "{}", stderr(&o));
    let o = integr8tor(&["export", s(&input), s(&dir.path().join("x.txt"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--format"), "{}", stderr(&o));
}

#[test]
fn progress_goes_to_the_end_and_a_cancel_leaves_no_file() {
    let input = fixture("small-60s.msgpack");
    let dir = tempfile::tempdir().unwrap();
    for format in Format::ALL {
        let out = dir.path().join(format!("p.{}", format.extension()));
        let mut seen: Vec<Progress> = Vec::new();
        let never = AtomicBool::new(false);
        {
            let mut ctl = Control::new(&never, |p| seen.push(p));
            export::export(&input, &out, format, &ExportOptions::default(), &mut ctl).unwrap();
        }
        assert!(seen.len() >= 3, "{format}: {} reports", seen.len());
        assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
        let last = seen.last().unwrap();
        assert_eq!(last.done, last.total, "{format} ends at the total");
        assert_eq!(last.total, std::fs::metadata(&input).unwrap().len());

        let cancelled_out = dir.path().join(format!("c.{}", format.extension()));
        let stop = AtomicBool::new(false);
        let mut reports = 0;
        let result = {
            let mut ctl = Control::new(&stop, |_| {
                reports += 1;
                if reports == 2 {
                    stop.store(true, Ordering::Relaxed);
                }
            });
            export::export(
                &input,
                &cancelled_out,
                format,
                &ExportOptions::default(),
                &mut ctl,
            )
        };
        assert!(
            matches!(result, Err(ExportError::Cancelled(_))),
            "{format}: {result:?}"
        );
        assert!(!cancelled_out.exists());
    }
    let names: Vec<String> = listing(dir.path());
    assert_eq!(
        names.len(),
        Format::ALL.len(),
        "no temporary files left: {names:?}"
    );

    // imports report and cancel the same way
    let db = dir.path().join("p.db");
    let out = dir.path().join("i.msgpack");
    let stop = AtomicBool::new(false);
    let result = {
        let mut ctl = Control::new(&stop, |p: Progress| {
            if p.done > 0 {
                stop.store(true, Ordering::Relaxed);
            }
        });
        export::import_sqlite(&db, &out, false, &mut ctl)
    };
    assert!(
        matches!(result, Err(ExportError::Cancelled(_))),
        "{result:?}"
    );
    assert!(!out.exists());
}

#[test]
fn without_a_terminal_progress_is_plain_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("plain.jsonl");
    let o = integr8tor(&["export", s(&fixture("small-60s.msgpack")), s(&out)]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.starts_with("integr8tor: exporting"), "{err:?}");
    assert!(
        !err.contains('\r') && !err.contains('\u{1b}'),
        "no bar: {err:?}"
    );
}

/// A session long enough that exporting or importing it takes a while,
/// written by the golden files' generator.
fn long_session(dir: &Path) -> PathBuf {
    let file = dir.join("long.msgpack");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/make_golden.py");
    let status = Command::new("python3")
        .arg(script)
        .args(["--seconds", "1200", s(&file)])
        .status()
        .expect("running python3");
    assert!(status.success(), "make_golden.py failed");
    file
}

/// Runs `integr8tor ARGS`, sends it SIGINT once its temporary output file
/// (`.NAME.*.part`) exists beside `out`, and returns how it ended.
fn interrupted(args: &[&str], out: &Path) -> std::process::Output {
    use std::process::Stdio;
    let dir = out.parent().unwrap();
    let prefix = format!(".{}.", out.file_name().unwrap().to_string_lossy());
    let mut child = Command::new(env!("CARGO_BIN_EXE_integr8tor"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running integr8tor");
    // the signal handlers are installed before the temporary file is made
    loop {
        let staged = listing(dir)
            .iter()
            .any(|n| n.starts_with(&prefix) && n.ends_with(".part"));
        if staged {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{args:?} ended ({status}) before its output was staged");
        }
        std::thread::yield_now();
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(kill.success());
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_stops_export_and_import_leaving_no_output_and_the_old_file_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let input = long_session(dir.path());
    let work = dir.path().join("out");
    std::fs::create_dir(&work).unwrap();

    // an export over an existing file, with --force so that it would replace it
    let out = work.join("long.mcap");
    let old = b"an earlier export, not to be lost\n";
    std::fs::write(&out, old).unwrap();
    let o = interrupted(&["export", s(&input), s(&out), "--force"], &out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(
        err.contains(&format!("cancelled; {} was not written", out.display())),
        "{err}"
    );
    assert!(stdout(&o).is_empty(), "no summary: {}", stdout(&o));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        old,
        "the old file is unchanged"
    );
    assert_eq!(listing(&work), ["long.mcap"], "no temporary file is left");

    // an export to a new file leaves nothing
    std::fs::remove_file(&out).unwrap();
    let out = work.join("long.db");
    let o = interrupted(&["export", s(&input), s(&out)], &out);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
    assert!(stderr(&o).contains("cancelled"), "{}", stderr(&o));
    assert!(listing(&work).is_empty(), "{:?}", listing(&work));

    // an import, over an existing session file with --force
    let db = dir.path().join("long.db");
    export_ok(&["export", s(&input), s(&db)]);
    let out = work.join("imported.msgpack");
    std::fs::write(&out, old).unwrap();
    let o = interrupted(&["import", s(&db), s(&out), "--force"], &out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(
        err.contains(&format!("cancelled; {} was not written", out.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        old,
        "the old file is unchanged"
    );
    assert_eq!(
        listing(&work),
        ["imported.msgpack"],
        "no temporary file is left"
    );
}
