//! Reliability suite "crash" (see RELIABILITY.md).
//!
//! `integr8tor record` is killed with SIGKILL at 20 pseudo-random moments
//! while the demo synth publishes on the embedded broker. After each kill:
//! the file loads, or `check --recover` restores a file that loads; and,
//! judged against what the broker holds, each partition's events in the file
//! are exactly the broker's messages from the recording's first one on, in
//! order, with no hole and no duplicate: a kill only ever cuts the tail.
//! How old the oldest lost message was at the kill is measured (from the
//! broker's timestamps) and printed, not asserted: it is the figure behind
//! "a killed recorder loses at most the last 100 ms".

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integr8tor::engine::{Demo, DemoConfig};
use integr8tor::kafka::{unix_ms_now, Connection, EmbeddedBroker};
use integr8tor::session::Session;
use integr8tor::{EnvelopeView, Topic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const RUNS: usize = 20;

/// Where each message the broker holds sits: (session, producer, seq) ->
/// (topic, partition, offset, Kafka timestamp).
type Index = HashMap<(String, String, u64), (Topic, i32, i64, i64)>;

/// Low and high watermark per partition.
type Ends = HashMap<(Topic, i32), (i64, i64)>;

fn broker_contents(conn: &Connection) -> (Index, Ends) {
    let c: BaseConsumer = conn
        .client_config(&[
            ("group.id", "crash-suite-reader".to_owned()),
            ("enable.auto.commit", "false".to_owned()),
            ("fetch.wait.max.ms", "1".to_owned()),
        ])
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for (topic, parts) in [(Topic::Params, 4), (Topic::Events, 1), (Topic::Mod, 1)] {
        for p in 0..parts {
            let (low, high) = c
                .fetch_watermarks(topic.name(), p, Duration::from_secs(10))
                .unwrap();
            ends.insert((topic, p), (low, high));
            if high > low {
                tpl.add_partition_offset(topic.name(), p, Offset::Offset(low))
                    .unwrap();
            }
        }
    }
    c.assign(&tpl).unwrap();
    let total: i64 = ends.values().map(|(l, h)| h - l).sum();
    let mut index = Index::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (index.len() as i64) < total && Instant::now() < deadline {
        let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let topic = Topic::from_name(m.topic()).unwrap();
        let (_, high) = ends[&(topic, m.partition())];
        if m.offset() >= high {
            continue;
        }
        let v = EnvelopeView::decode(topic, m.payload().unwrap()).unwrap();
        index.insert(
            (v.session_id.to_owned(), v.producer_id.to_owned(), v.seq),
            (
                topic,
                m.partition(),
                m.offset(),
                m.timestamp().to_millis().unwrap_or(0),
            ),
        );
    }
    assert_eq!(
        index.len() as i64,
        total,
        "read everything the broker holds"
    );
    (index, ends)
}

/// Loads the file, recovering it with `check --recover` when it is damaged.
fn load_or_recover(path: &std::path::Path, recovered: &mut usize) -> Option<Session> {
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        // killed before anything was written
        return None;
    }
    match Session::open(path) {
        Ok(s) => Some(s),
        Err(e) => {
            let out = path.with_extension("recovered.msgpack");
            let check = common::integr8tor(&[
                "check",
                path.to_str().unwrap(),
                "--recover",
                out.to_str().unwrap(),
            ]);
            assert_eq!(
                check.status.code(),
                Some(1),
                "{e}: {}",
                common::stdout(&check)
            );
            *recovered += 1;
            Some(Session::open(&out).unwrap_or_else(|e| panic!("recovered file: {e}")))
        }
    }
}

#[test]
fn a_recorder_killed_at_random_moments_only_ever_loses_the_tail() {
    let broker = EmbeddedBroker::start(None).expect("embedded broker");
    let conn = Connection::to_embedded(&broker);
    let demo = Demo::start(&conn, DemoConfig::default()).unwrap();
    let mut rng = 0x00c0_ffee_d00d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let dir = tempfile::tempdir().unwrap();
    let mut kills = Vec::new();
    for run in 0..RUNS {
        let out = dir.path().join(format!("run-{run}.msgpack"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_integr8tor"))
            .args([
                "record",
                "--brokers",
                broker.bootstrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // the recorder says where it records once it has started
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "record ended early");
            if line.starts_with("recording ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in err.lines() {});
        let wait = Duration::from_millis(200 + next() % 2300);
        std::thread::sleep(wait);
        child.kill().unwrap();
        let killed_ms = unix_ms_now();
        child.wait().unwrap();
        kills.push((out, killed_ms, wait));
    }
    // what counts is what the broker acknowledged and holds, read below
    let _published = demo.stop();

    let (index, ends) = broker_contents(&conn);
    let mut recovered = 0;
    let mut checked = 0u64;
    let mut empty = 0;
    let mut worst_loss_ms = 0i64;
    for (path, killed_ms, wait) in &kills {
        let Some(session) = load_or_recover(path, &mut recovered) else {
            empty += 1;
            continue;
        };
        // per partition, the broker offsets of the file's events, in file order
        let mut per: HashMap<(Topic, i32), Vec<(i64, i64)>> = HashMap::new();
        let mut in_file: Vec<_> = session.events().to_vec();
        in_file.sort_by_key(|e| e.offset);
        for e in &in_file {
            let env = session.envelope(e).unwrap();
            let at = index
                .get(&(env.session_id.clone(), env.producer_id.clone(), env.seq))
                .unwrap_or_else(|| panic!("{}: an event the broker never held", path.display()));
            per.entry((at.0, at.1)).or_default().push((at.2, at.3));
        }
        for ((topic, p), offsets) in &per {
            let first = offsets[0].0;
            for (i, (o, _)) in offsets.iter().enumerate() {
                assert_eq!(
                    *o,
                    first + i as i64,
                    "{}: {topic}[{p}] has a hole or a duplicate at {o}",
                    path.display()
                );
            }
            checked += offsets.len() as u64;
            // the first message not in the file: how old was it at the kill?
            let next = first + offsets.len() as i64;
            let (_, high) = ends[&(*topic, *p)];
            if next < high {
                if let Some((_, _, _, ts)) = index
                    .values()
                    .find(|(t, q, o, _)| t == topic && q == p && *o == next)
                {
                    worst_loss_ms = worst_loss_ms.max(killed_ms - ts);
                }
            }
        }
        let _ = wait;
    }
    assert!(
        checked > 0 && empty < RUNS / 2,
        "the recorders recorded ({checked} events, {empty} empty files)"
    );
    println!(
        "crash suite: {RUNS} kills, {recovered} files recovered with check --recover, \
         {empty} killed before writing, {checked} events checked against the broker, 0 holes; \
         oldest message lost was {worst_loss_ms} ms old at its kill"
    );
}
