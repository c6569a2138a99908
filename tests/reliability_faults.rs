//! Reliability suite "broker faults" (see RELIABILITY.md).
//!
//! 1. A 60 s soak on the embedded broker with librdkafka's mock fault
//!    injection: the broker goes down and comes back, Produce and Fetch
//!    requests fail with retriable errors, and round-trip time is added, in
//!    turn, while the demo synth publishes, a recorder records, the player
//!    replays the golden session in a loop, and the app's control thread
//!    feeds the app's model live.
//! 2. A three-broker embedded cluster whose partition leader goes down in
//!    the middle of a recording (leadership moves to another broker, the old
//!    leader comes back later).
//!
//! In both, once the faults stop, the recording must hold every recordable
//! message the brokers acknowledged (what they hold on `noise.params`,
//! `noise.events` and `noise.mod` from actors a recording keeps), each
//! exactly once. In the soak, the player must also have had every replayed
//! message acknowledged or reported, and the app's model must have kept
//! receiving live data through every stretch of it (the suite needs the
//! app, so it builds with the default `gui` feature).
#![cfg(feature = "gui")]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integr8tor::app::control::{Control, ControlConfig};
use integr8tor::app::model::Model;
use integr8tor::app::workers::{self, BusSettings, Outbox, WorkerMsg};
use integr8tor::clock::MonotonicClock;
use integr8tor::engine::{
    Demo, DemoConfig, PlayerCommand, PlayerConfig, Recorder, RecorderConfig, RecorderEvent,
    ReplayConfig, ReplayService,
};
use integr8tor::kafka::broker::Fault;
use integr8tor::kafka::{topic_specs, unix_ms_now, Connection, EmbeddedBroker, StartFrom};
use integr8tor::session::Session;
use integr8tor::{EnvelopeView, Topic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

const RECORDED: [(Topic, i32); 3] = [(Topic::Params, 4), (Topic::Events, 1), (Topic::Mod, 1)];

/// (session, producer, seq) of every message the brokers hold on the
/// recorded topics from an actor a recording keeps (not `replay`, not
/// `telemetry`).
fn held(conn: &Connection) -> HashSet<(String, String, u64)> {
    let c: BaseConsumer = conn
        .client_config(&[
            ("group.id", "faults-suite-reader".to_owned()),
            ("enable.auto.commit", "false".to_owned()),
            ("fetch.wait.max.ms", "1".to_owned()),
        ])
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut total = 0;
    let mut ends = Vec::new();
    for (topic, parts) in RECORDED {
        for p in 0..parts {
            let (low, high) = c
                .fetch_watermarks(topic.name(), p, Duration::from_secs(20))
                .unwrap();
            assert_eq!(low, 0, "{topic}[{p}]: nothing was deleted by retention");
            total += high - low;
            ends.push((topic, p, high));
            if high > low {
                tpl.add_partition_offset(topic.name(), p, Offset::Offset(low))
                    .unwrap();
            }
        }
    }
    c.assign(&tpl).unwrap();
    let mut out = HashSet::new();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < total && Instant::now() < deadline {
        let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let topic = Topic::from_name(m.topic()).unwrap();
        let high = ends
            .iter()
            .find(|(t, p, _)| *t == topic && *p == m.partition())
            .unwrap()
            .2;
        if m.offset() >= high {
            continue;
        }
        read += 1;
        let v = EnvelopeView::decode(topic, m.payload().unwrap()).unwrap();
        if v.actor_kind().is_recorded() {
            out.insert((v.session_id.to_owned(), v.producer_id.to_owned(), v.seq));
        }
    }
    assert_eq!(read, total, "read everything the brokers hold");
    out
}

/// Waits until the recorder has written `n` events or stopped moving, then stops it.
fn finish(recorder: Recorder, n: u64) -> integr8tor::engine::RecorderSummary {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = 0;
    while last < n && Instant::now() < deadline {
        if let Ok(RecorderEvent::Stats(s)) =
            recorder.events().recv_timeout(Duration::from_millis(200))
        {
            last = s.events;
        }
    }
    recorder.stop().expect("the recorder stops cleanly")
}

/// The recording holds exactly the brokers' messages, each once.
fn check_exactly_once(path: &std::path::Path, held: &HashSet<(String, String, u64)>) -> u64 {
    let session = Session::open(path).unwrap();
    let mut seen = HashSet::new();
    for e in session.events() {
        let env = session.envelope(e).unwrap();
        let id = (env.session_id, env.producer_id, env.seq);
        assert!(
            held.contains(&id),
            "{id:?} is not a message the brokers hold"
        );
        assert!(seen.insert(id.clone()), "{id:?} recorded twice");
    }
    let missing: Vec<_> = held.difference(&seen).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages not recorded, e.g. {missing:?}",
        held.len() - seen.len()
    );
    seen.len() as u64
}

fn group(name: &str) -> String {
    format!("faults-{name}-{}-{}", std::process::id(), unix_ms_now())
}

/// The app's control thread against the broker, its messages applied to the
/// app's model on a thread of their own (as the window would); returns the
/// control and the thread, which yields the instants (s since `t0`) at which
/// live data reached the model.
fn app_model(
    broker: &EmbeddedBroker,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> (Control, std::thread::JoinHandle<Vec<f64>>) {
    let (inbox, outbox_rx) = crossbeam_channel::unbounded();
    let control = Control::start(
        Outbox::new(inbox, workers::no_waker()),
        ControlConfig {
            pin_ms: 3000,
            connect: Some(BusSettings {
                brokers: Some(broker.bootstrap().to_owned()),
                options: Vec::new(),
                group_id: group("app"),
                start: StartFrom::Latest,
            }),
            demo: false,
        },
    )
    .unwrap();
    let model = std::thread::spawn(move || {
        let mut model = Model::new();
        let mut live_at = Vec::new();
        while !stop.load(Ordering::Acquire) {
            let Ok(msg) = outbox_rx.recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            let now = t0.elapsed().as_secs_f64();
            if matches!(&msg, WorkerMsg::Live(batch) if !batch.is_empty()) {
                live_at.push(now);
            } else if std::env::var_os("SOAK_TRACE").is_some() {
                // what else reaches the model, when diagnosing a stall
                let text = format!("{msg:?}");
                println!("{now:.2} {}", &text[..text.len().min(160)]);
            }
            model.apply(msg, now);
        }
        live_at
    });
    (control, model)
}

#[test]
fn a_soak_under_injected_broker_faults_records_every_acknowledged_message_once() {
    let broker = EmbeddedBroker::start(None).expect("embedded broker");
    let conn = Connection::to_embedded(&broker);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(
        &conn,
        RecorderConfig {
            start: StartFrom::Earliest,
            group_id: group("soak"),
            ..RecorderConfig::new(dir.path())
        },
    )
    .unwrap();
    let path = recorder.path().to_owned();
    let demo = Demo::start(&conn, DemoConfig::default()).unwrap();
    let golden = Arc::new(Session::open(&common::fixture("small-60s.msgpack")).unwrap());
    let (first, last) = golden.time_range().unwrap();
    let defaults = ReplayConfig::default();
    let replay = ReplayService::start(
        Some(&conn),
        Arc::clone(&golden),
        ReplayConfig {
            player: PlayerConfig {
                speed: 4.0,
                ..defaults.player
            },
            ..defaults
        },
        Arc::new(MonotonicClock::new()),
    )
    .unwrap();
    replay.send(PlayerCommand::SetLoop(Some((first, last))));
    replay.send(PlayerCommand::Play);
    let t0 = Instant::now();
    let model_stop = Arc::new(AtomicBool::new(false));
    let (mut control, model) = app_model(&broker, t0, Arc::clone(&model_stop));

    let soak = Duration::from_secs(60);
    let started = Instant::now();
    let mut faults = 0u32;
    let mut round = 0u32;
    while started.elapsed() < soak {
        match round % 4 {
            0 => {
                broker.set_down().unwrap();
                std::thread::sleep(Duration::from_millis(1500));
                broker.set_up().unwrap();
            }
            1 => {
                use RDKafkaRespErr::*;
                let errors = vec![
                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                    RD_KAFKA_RESP_ERR__TRANSPORT,
                ];
                broker
                    .inject(Fault::RequestErrors {
                        api_key: 0,
                        errors: errors.clone(),
                    })
                    .unwrap();
                broker
                    .inject(Fault::RequestErrors { api_key: 1, errors })
                    .unwrap();
            }
            2 => {
                broker
                    .inject(Fault::Rtt(Duration::from_millis(250)))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(1500));
                broker.inject(Fault::Rtt(Duration::ZERO)).unwrap();
            }
            _ => {
                // a short outage right after another fault
                broker.set_down().unwrap();
                std::thread::sleep(Duration::from_millis(300));
                broker.set_up().unwrap();
            }
        }
        println!(
            "fault {round} ({}) ended at {:.1} s",
            round % 4,
            t0.elapsed().as_secs_f64()
        );
        faults += 1;
        round += 1;
        std::thread::sleep(Duration::from_millis(1500));
    }
    let soaked = t0.elapsed().as_secs_f64();
    let published = demo.stop();
    let mut dispatched = 0;
    while let Ok(event) = replay.events().try_recv() {
        if let integr8tor::engine::PlayerEvent::Status(s) = event {
            dispatched = s.dispatched;
        }
    }
    replay.send(PlayerCommand::Pause);
    let played = replay.stop(Duration::from_secs(30));
    model_stop.store(true, Ordering::Release);
    let live_at = model.join().expect("the model thread");
    control.shutdown();

    let held = held(&conn);
    let summary = finish(recorder, held.len() as u64);
    let checked = check_exactly_once(&path, &held);
    assert!(
        checked > 1000,
        "the demo published during the soak ({published:?})"
    );
    // more than one pass of the golden session's replayed changes
    let per_pass = golden
        .events()
        .iter()
        .filter(|e| golden.topic_of(e) == Some(Topic::Params) && e.actor.is_replayed())
        .count() as u64;
    assert!(
        played.delivered() > per_pass,
        "the player kept publishing: {} delivered, one pass is {per_pass}",
        played.delivered()
    );
    assert!(
        played.delivered() + played.not_delivered() >= dispatched,
        "every replayed message was acknowledged or reported ({dispatched} dispatched)"
    );
    let mut per_second = vec![0u32; soaked.ceil() as usize + 1];
    for &t in live_at.iter().filter(|&&t| t < soaked) {
        per_second[t as usize] += 1;
    }
    println!("live batches reaching the app's model, per second: {per_second:?}");
    // live data reached the model in every 5 s stretch of the soak (the
    // longest outage is 1.5 s)
    let stretches = (soaked / 5.0).floor() as usize;
    for k in 0..stretches {
        let (from, to) = (k as f64 * 5.0, (k + 1) as f64 * 5.0);
        assert!(
            live_at.iter().any(|&t| t >= from && t < to),
            "no live data reached the app's model between {from} s and {to} s"
        );
    }
    let longest_gap = live_at
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0f64, f64::max);
    println!(
        "broker faults soak: {:.0} s, {faults} faults injected, {checked} acknowledged messages \
         recorded exactly once, 0 lost; player {} delivered, {} reported undelivered; app model \
         {} live batches, longest gap {longest_gap:.2} s; recorder {:?}",
        soak.as_secs_f64(),
        played.delivered(),
        played.not_delivered(),
        live_at.len(),
        summary.stats
    );
}

#[test]
fn a_partition_leader_going_down_mid_recording_loses_nothing() {
    let cluster = EmbeddedBroker::start_cluster(3).expect("a three-broker cluster");
    let conn = Connection::to_embedded(&cluster);
    let leaders = |broker: i32| {
        for spec in topic_specs() {
            for p in 0..spec.partitions {
                cluster
                    .inject(Fault::Leader {
                        topic: spec.topic.name().to_owned(),
                        partition: p,
                        broker,
                    })
                    .unwrap();
            }
        }
    };
    leaders(1);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(
        &conn,
        RecorderConfig {
            start: StartFrom::Earliest,
            group_id: group("failover"),
            ..RecorderConfig::new(dir.path())
        },
    )
    .unwrap();
    let path = recorder.path().to_owned();
    let demo = Demo::start(&conn, DemoConfig::default()).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // the leader of every partition goes down; leadership moves to broker 2
    cluster.inject(Fault::BrokerDown(1)).unwrap();
    leaders(2);
    std::thread::sleep(Duration::from_secs(4));
    cluster.inject(Fault::BrokerUp(1)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let published = demo.stop();
    let held = held(&conn);
    let summary = finish(recorder, held.len() as u64);
    let checked = check_exactly_once(&path, &held);
    assert!(checked > 100, "the demo published ({published:?})");
    println!(
        "leader failover: 3 brokers, leader down for 4 s, {checked} acknowledged messages \
         recorded exactly once, 0 lost; recorder {:?}",
        summary.stats
    );
}
