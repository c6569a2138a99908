//! A recording that is complete and loses nothing, against the embedded
//! broker (in process): the gap left when retention deletes what a recorder
//! had not read yet, the state a recording starts with, keys kept as
//! received, a recording that receives nothing, the embedded broker's size
//! limit, and unreachable brokers.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use integr8tor::engine::{Recorder, RecorderConfig, RecorderEvent, RecorderSummary};
use integr8tor::kafka::{
    unix_ms_now, wait_for_brokers, BusError, Connection, ConnectionState, EmbeddedBroker, StartFrom,
};
use integr8tor::session::{ReadOptions, Reader, RecordRef, Session};
use integr8tor::Topic;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rmpv::Value;

fn broker() -> (EmbeddedBroker, Connection) {
    let broker = EmbeddedBroker::start(None).expect("embedded broker");
    let conn = Connection::to_embedded(&broker);
    (broker, conn)
}

fn group(name: &str) -> String {
    format!("{name}-{}-{}", std::process::id(), unix_ms_now())
}

/// Delivery reports of a raw producer: Ok or librdkafka's words.
#[derive(Default)]
struct Deliveries(Mutex<Vec<Result<(), String>>>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let r = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().unwrap().push(r);
    }
}

fn raw_producer(conn: &Connection, extra: &[(&str, &str)]) -> BaseProducer<Deliveries> {
    let mut options = vec![("linger.ms", "0".to_owned())];
    options.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    conn.client_config(&options)
        .create_with_context(Deliveries::default())
        .expect("raw producer")
}

/// Sends and waits for the delivery report; returns it.
fn send(
    p: &BaseProducer<Deliveries>,
    topic: Topic,
    key: Option<&[u8]>,
    payload: &[u8],
) -> Result<(), String> {
    let before = p.context().0.lock().unwrap().len();
    let mut record = BaseRecord::to(topic.name()).payload(payload);
    if let Some(k) = key {
        record = record.key(k);
    }
    p.send(record).map_err(|(e, _)| e).expect("enqueue");
    p.flush(Duration::from_secs(20)).expect("flush");
    let reports = p.context().0.lock().unwrap();
    assert_eq!(reports.len(), before + 1, "one delivery report");
    reports[before].clone()
}

fn envelope(topic: Topic, seq: u64, fields: &[(&str, Value)]) -> Vec<u8> {
    let mut entries = vec![
        (Value::from("v"), Value::from(1)),
        (Value::from("session_id"), Value::from("s-complete")),
        (Value::from("producer_id"), Value::from("test.raw")),
        (Value::from("seq"), Value::from(seq)),
        (
            Value::from("ts_ms"),
            Value::from(1_790_000_000_000i64 + seq as i64),
        ),
        (Value::from("actor"), Value::from("user")),
    ];
    match topic {
        Topic::Mod => {
            entries.push((Value::from("path"), Value::from("bus.0")));
            entries.push((Value::from("bus"), Value::from(0)));
            entries.push((Value::from("value"), Value::F64(0.5)));
        }
        Topic::Events => entries.push((Value::from("type"), Value::from("note_on"))),
        _ => {}
    }
    for (k, v) in fields {
        entries.retain(|(key, _)| key.as_str() != Some(k));
        entries.push((Value::from(*k), v.clone()));
    }
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &Value::Map(entries)).unwrap();
    out
}

fn param(seq: u64, path: &str, value: f64, actor: &str) -> Vec<u8> {
    envelope(
        Topic::Params,
        seq,
        &[
            ("path", Value::from(path)),
            ("value", Value::F64(value)),
            ("actor", Value::from(actor)),
        ],
    )
}

/// Waits for the recorder's link to come up (its partitions are assigned).
fn wait_connected(recorder: &Recorder) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "recorder never connected");
        if let Ok(RecorderEvent::Connection(ConnectionState::Connected)) =
            recorder.events().recv_timeout(Duration::from_millis(100))
        {
            return;
        }
    }
}

/// Stops once the recorder has written `events` events (or 30 s passed).
fn stop_after(recorder: Recorder, events: u64) -> RecorderSummary {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let mut seen = 0;
        for e in recorder.events().try_iter() {
            if let RecorderEvent::Stats(s) = e {
                seen = s.events;
            }
        }
        if seen >= events {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    recorder.stop().expect("recorder stops cleanly")
}

/// The first snapshot's state of a recording, by path.
fn first_snapshot(path: &std::path::Path) -> Vec<(String, f64)> {
    let session = Session::open(path).unwrap();
    let first = session.snapshots().first().expect("a snapshot");
    let mut state = session.snapshot_state(first).unwrap();
    state.sort_by(|a, b| a.0.cmp(&b.0));
    state
}

fn recorder(conn: &Connection, dir: &std::path::Path, config: RecorderConfig) -> Recorder {
    let _ = dir;
    Recorder::start(conn, config).expect("recorder starts")
}

#[test]
fn a_recorder_behind_retention_resumes_at_the_oldest_message_kept_and_reports_the_gap() {
    let (_broker, conn) = broker();
    let p = raw_producer(&conn, &[]);
    // a group whose committed position (offset 0) retention will delete
    let g = group("behind");
    let committer: BaseConsumer = conn
        .client_config(&[("group.id", g.clone())])
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(Topic::Mod.name(), 0, Offset::Offset(0))
        .unwrap();
    committer.commit(&tpl, CommitMode::Sync).unwrap();
    drop(committer);

    // 10 KB messages, one batch each: well past the 5 MiB the broker keeps
    let pad = Value::from("x".repeat(10_000));
    let n = 800u64;
    for seq in 1..=n {
        let m = envelope(Topic::Mod, seq, &[("pad", pad.clone())]);
        send(&p, Topic::Mod, Some(b"bus.0"), &m).expect("delivered");
    }
    let probe: BaseConsumer = conn.client_config(&[]).create().unwrap();
    let (low, high) = probe
        .fetch_watermarks(Topic::Mod.name(), 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(high, n as i64);
    assert!(low > 0, "retention deleted the oldest messages (low {low})");

    let dir = tempfile::tempdir().unwrap();
    let config = RecorderConfig {
        group_id: g,
        ..RecorderConfig::new(dir.path())
    };
    let rec = recorder(&conn, dir.path(), config);
    let path = rec.path().to_owned();
    let kept = (high - low) as u64;
    let summary = stop_after(rec, kept);
    let s = summary.stats;
    assert_eq!(
        s.events, kept,
        "every message still kept is recorded: {s:?}"
    );
    assert_eq!(s.gap_messages, low as u64, "{s:?}");
    assert_eq!(s.gaps, 1);
    let session = Session::open(&path).unwrap();
    assert_eq!(session.events().len() as u64, kept);
}

#[test]
fn a_latest_recorder_still_starts_at_the_latest_message() {
    let (_broker, conn) = broker();
    let p = raw_producer(&conn, &[]);
    for seq in 1..=20 {
        send(
            &p,
            Topic::Events,
            Some(b"note_on"),
            &envelope(Topic::Events, seq, &[]),
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let rec = recorder(&conn, dir.path(), RecorderConfig::new(dir.path()));
    let path = rec.path().to_owned();
    wait_connected(&rec);
    for seq in 21..=23 {
        send(
            &p,
            Topic::Events,
            Some(b"note_on"),
            &envelope(Topic::Events, seq, &[]),
        )
        .unwrap();
    }
    let summary = stop_after(rec, 3);
    assert_eq!(summary.stats.events, 3, "{summary:?}");
    assert_eq!(summary.stats.gap_messages, 0);
    let session = Session::open(&path).unwrap();
    let seqs: Vec<u64> = session
        .events()
        .iter()
        .map(|e| session.envelope(e).unwrap().seq)
        .collect();
    assert_eq!(seqs, [21, 22, 23]);
}

#[test]
fn a_recording_starts_with_every_value_noise_params_retains_and_what_the_caller_knows() {
    let (_broker, conn) = broker();
    let p = raw_producer(&conn, &[]);
    let retained: [(&str, f64, &str); 5] = [
        ("gen.1.cutoff", 0.1, "user"),
        ("gen.2.res", 0.7, "preset"),
        ("gen.1.cutoff", 0.2, "user"),
        // what a recorder does not store does not count
        ("master.volume", 0.9, "replay"),
        ("meter.x", 0.4, "telemetry"),
    ];
    for (i, (path, value, actor)) in retained.iter().enumerate() {
        let key = path.as_bytes();
        send(
            &p,
            Topic::Params,
            Some(key),
            &param(i as u64 + 1, path, *value, actor),
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = RecorderConfig {
        initial_state: vec![("app.only".into(), 0.33), ("gen.1.cutoff".into(), 0.05)],
        ..RecorderConfig::new(dir.path())
    };
    let rec = recorder(&conn, dir.path(), config);
    let path = rec.path().to_owned();
    wait_connected(&rec);
    send(
        &p,
        Topic::Params,
        Some(b"gen.3.x"),
        &param(10, "gen.3.x", 0.5, "user"),
    )
    .unwrap();
    let summary = stop_after(rec, 1);
    let s = summary.stats;
    assert_eq!(
        s.events, 1,
        "the retained messages are state, not events: {s:?}"
    );
    assert_eq!(s.initial_paths, 3, "{s:?}");

    assert_eq!(
        first_snapshot(&path),
        [
            ("app.only".to_owned(), 0.33),
            ("gen.1.cutoff".to_owned(), 0.2),
            ("gen.2.res".to_owned(), 0.7),
            ("gen.3.x".to_owned(), 0.5),
        ]
    );
}

/// Starting a recording never waits for the brokers: the history read runs
/// on the recorder's own thread. Started while the broker is down, the
/// recorder returns at once, and once the broker is back the first snapshot
/// still holds the value noise.params retained from before.
#[test]
fn a_recording_started_while_the_broker_is_down_still_begins_with_the_retained_state() {
    let (broker, conn) = broker();
    let p = raw_producer(&conn, &[]);
    send(
        &p,
        Topic::Params,
        Some(b"gen.4.fold"),
        &param(1, "gen.4.fold", 0.61, "user"),
    )
    .unwrap();
    broker.set_down().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = RecorderConfig {
        retained_timeout: Duration::from_secs(60),
        ..RecorderConfig::new(dir.path())
    };
    // with the history read on the caller's thread this call would not
    // return before the broker is back, and the broker comes back only
    // after it returned
    let rec = recorder(&conn, dir.path(), config);
    let path = rec.path().to_owned();
    broker.set_up().unwrap();
    wait_connected(&rec);
    send(
        &p,
        Topic::Params,
        Some(b"gen.4.drive"),
        &param(2, "gen.4.drive", 0.2, "user"),
    )
    .unwrap();
    let summary = stop_after(rec, 1);
    assert_eq!(summary.stats.events, 1, "{:?}", summary.stats);
    assert_eq!(summary.stats.initial_paths, 1, "{:?}", summary.stats);
    assert_eq!(
        first_snapshot(&path),
        [
            ("gen.4.drive".to_owned(), 0.2),
            ("gen.4.fold".to_owned(), 0.61)
        ]
    );

    // stopped while the broker is still away, it does not sit out the
    // history read's timeout (a minute here): it stops and leaves no file
    broker.set_down().unwrap();
    let config = RecorderConfig {
        retained_timeout: Duration::from_secs(600),
        ..RecorderConfig::new(dir.path())
    };
    let rec = recorder(&conn, dir.path(), config);
    let path = rec.path().to_owned();
    let summary = rec.stop().expect("stops cleanly");
    assert!(!summary.kept, "{summary:?}");
    assert!(
        !path.exists(),
        "no file for a recording that received nothing"
    );
}

#[test]
fn keys_are_stored_exactly_as_received() {
    let (_broker, conn) = broker();
    let p = raw_producer(&conn, &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = RecorderConfig {
        start: StartFrom::Earliest,
        ..RecorderConfig::new(dir.path())
    };
    let keys: [Option<&[u8]>; 4] = [
        None,
        Some(b"\xff\xfe"),
        Some(b"another key"),
        Some(b"note_on"),
    ];
    for (i, k) in keys.iter().enumerate() {
        send(
            &p,
            Topic::Events,
            *k,
            &envelope(Topic::Events, i as u64 + 1, &[]),
        )
        .unwrap();
    }
    let rec = recorder(&conn, dir.path(), config);
    let path = rec.path().to_owned();
    let summary = stop_after(rec, keys.len() as u64);
    assert_eq!(summary.stats.events, keys.len() as u64);

    let mut reader = Reader::open(&path, ReadOptions::default()).unwrap();
    let mut got: Vec<(Option<Vec<u8>>, bool)> = Vec::new();
    while let Some(rec) = reader.next().unwrap() {
        if let RecordRef::Event { key, .. } = rec.record {
            // a key that is not UTF-8 is stored as bin (marker 0xc4)
            let as_bin = key.is_some_and(|k| {
                let start = k.as_ptr() as usize - rec.raw.as_ptr() as usize;
                rec.raw[start - 2] == 0xc4
            });
            got.push((key.map(<[u8]>::to_vec), as_bin));
        }
    }
    assert_eq!(
        got,
        [
            (None, false),
            (Some(b"\xff\xfe".to_vec()), true),
            (Some(b"another key".to_vec()), false),
            (Some(b"note_on".to_vec()), false),
        ]
    );
}

#[test]
fn a_recording_that_receives_nothing_says_so_and_leaves_no_file() {
    let (_broker, conn) = broker();
    let dir = tempfile::tempdir().unwrap();
    let rec = recorder(&conn, dir.path(), RecorderConfig::new(dir.path()));
    let path = rec.path().to_owned();
    wait_connected(&rec);
    let summary = rec.stop().unwrap();
    assert!(!summary.kept, "{summary:?}");
    assert_eq!(summary.stats.events, 0);
    assert!(!path.exists(), "{} was left behind", path.display());
}

#[test]
fn the_embedded_broker_refuses_a_batch_it_cannot_hold_and_keeps_what_it_acknowledged() {
    let (_broker, conn) = broker();
    // a client willing to send 6 MB in one message
    let p = raw_producer(&conn, &[("message.max.bytes", "8000000")]);
    for seq in 1..=5 {
        send(
            &p,
            Topic::Events,
            Some(b"note_on"),
            &envelope(Topic::Events, seq, &[]),
        )
        .unwrap();
    }
    let huge = envelope(
        Topic::Events,
        6,
        &[("blob", Value::from("y".repeat(6 << 20)))],
    );
    let refused = send(&p, Topic::Events, Some(b"note_on"), &huge);
    let why = refused.expect_err("the broker refuses a 6 MB batch");
    assert!(why.contains("size"), "a size error: {why}");
    // just under the limit is accepted
    let big = envelope(
        Topic::Events,
        7,
        &[("blob", Value::from("z".repeat(900_000)))],
    );
    send(&p, Topic::Events, Some(b"note_on"), &big).expect("a 0.9 MB batch is accepted");
    for seq in 8..=12 {
        send(
            &p,
            Topic::Events,
            Some(b"note_on"),
            &envelope(Topic::Events, seq, &[]),
        )
        .unwrap();
    }

    // every acknowledged message is still there
    let dir = tempfile::tempdir().unwrap();
    let config = RecorderConfig {
        start: StartFrom::Earliest,
        ..RecorderConfig::new(dir.path())
    };
    let rec = recorder(&conn, dir.path(), config);
    let path = rec.path().to_owned();
    let summary = stop_after(rec, 11);
    assert_eq!(summary.stats.events, 11, "{summary:?}");
    let session = Session::open(&path).unwrap();
    let seqs: Vec<u64> = session
        .events()
        .iter()
        .map(|e| session.envelope(e).unwrap().seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]);
}

#[test]
fn waiting_for_an_unreachable_broker_ends_in_one_clear_error() {
    // a port nothing listens on: bind one, note it, close it
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conn = Connection::new(format!("127.0.0.1:{port}"));
    let err = wait_for_brokers(&conn, Duration::from_millis(1500)).unwrap_err();
    assert!(matches!(err, BusError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot reach the brokers at 127.0.0.1:{port} within 2 s"
        )),
        "{text}"
    );
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains('\n'));

    let (_broker, conn) = broker();
    wait_for_brokers(&conn, Duration::from_secs(10)).expect("the embedded broker answers");
}

#[test]
fn record_demo_and_play_give_up_on_an_unreachable_broker_with_one_line_and_exit_2() {
    let golden = common::fixture("small-60s.msgpack")
        .to_str()
        .unwrap()
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let brokers = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    for args in [
        vec![
            "record",
            "--brokers",
            &brokers,
            "--connect-timeout",
            "1",
            "--dir",
            dir_arg,
        ],
        vec!["demo", "--brokers", &brokers, "--connect-timeout", "1"],
        vec![
            "play",
            golden.as_str(),
            "--brokers",
            &brokers,
            "--connect-timeout",
            "1",
        ],
    ] {
        let out = common::integr8tor(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = common::stderr(&out);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("brokers: "))
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(
            lines[0].starts_with(&format!(
                "integr8tor: cannot reach the brokers at {brokers}"
            )),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file left"
    );
}

/// A payload nested far beyond any reader's limit, recorded by an older
/// recorder, still loads in time linear in the file, in one part or several.
#[test]
fn a_file_with_a_deeply_nested_payload_loads_the_same_in_one_part_or_several() {
    use integr8tor::msgpack::write as w;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.msgpack");
    let mut file = Vec::new();
    let record = |out: &mut Vec<u8>, data: &[u8]| {
        w::map_len(out, 4);
        for (k, v) in [
            ("type", "event"),
            ("topic", "noise.events"),
            ("key", "note_on"),
        ] {
            w::str(out, k);
            w::str(out, v);
        }
        w::str(out, "data");
        out.extend_from_slice(data);
    };
    for seq in 1..=50 {
        record(&mut file, &envelope(Topic::Events, seq, &[]));
    }
    // {"deep": {"a": {"a": ... 1}}} 300,000 levels: 0.9 MB
    let mut deep = envelope(Topic::Events, 51, &[]);
    deep[0] += 1; // one more field in the (fix)map
    w::str(&mut deep, "deep");
    for _ in 0..300_000 {
        deep.extend_from_slice(&[0x81, 0xa1, b'a']);
    }
    deep.push(0x01);
    record(&mut file, &deep);
    for seq in 52..=100 {
        record(&mut file, &envelope(Topic::Events, seq, &[]));
    }
    std::fs::write(&path, &file).unwrap();

    let go = |_| std::ops::ControlFlow::Continue(());
    // events compared by instant and place (their value is NaN on noise.events)
    let table = |s: &Session| -> Vec<(i64, u64)> {
        s.events().iter().map(|e| (e.ts_ms, e.offset)).collect()
    };
    let one = Session::open_in_parts(&path, ReadOptions::default(), 1, go).unwrap();
    assert_eq!(one.events().len(), 100);
    for parts in [2, 4] {
        let many = Session::open_in_parts(&path, ReadOptions::default(), parts, go).unwrap();
        assert_eq!(table(&many), table(&one), "{parts} parts");
        assert_eq!(many.read_report(), one.read_report(), "{parts} parts");
    }
    // and the bus side refuses such a payload
    assert!(integr8tor::EnvelopeView::decode(Topic::Events, &deep).is_err());
}
