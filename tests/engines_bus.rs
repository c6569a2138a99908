//! The engines against a real Kafka-protocol broker (the embedded one, in
//! process): the recorder capturing the demo, the actor rules between them, and a recorder killed with SIGKILL.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integr8tor::clock::{MonotonicClock, SharedClock};
use integr8tor::engine::{
    Demo, DemoConfig, Player, PlayerCommand, PlayerConfig, PlayerEvent, PublisherSink, Recorder,
    RecorderConfig,
};
use integr8tor::kafka::{
    Connection, Draft, EmbeddedBroker, Publisher, PublisherConfig, RateLimits, StartFrom,
};
use integr8tor::session::Session;
use integr8tor::{Actor, ActorKind};

fn clock() -> SharedClock {
    Arc::new(MonotonicClock::new())
}

fn broker() -> (EmbeddedBroker, Connection) {
    let broker = EmbeddedBroker::start(None).expect("embedded broker");
    let conn = Connection::to_embedded(&broker);
    (broker, conn)
}

#[test]
fn recording_the_demo_yields_a_clean_file_with_what_it_published() {
    let (_broker, conn) = broker();
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(
        &conn,
        RecorderConfig {
            start: StartFrom::Earliest,
            ..RecorderConfig::new(dir.path())
        },
    )
    .unwrap();
    let path = recorder.path().to_owned();
    assert!(path.starts_with(dir.path()));
    assert!(path
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("session-"));
    let demo = Demo::start(
        &conn,
        DemoConfig {
            duration: Some(Duration::from_secs(10)),
            ..DemoConfig::default()
        },
    )
    .unwrap();
    while !demo.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let published = demo.stop();
    assert_eq!(published.not_queued, 0, "{published:?}");
    let recordable =
        published.user_params + published.preset_params + published.mod_values + published.events;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    while Instant::now() < deadline {
        for e in recorder.events().try_iter() {
            if let integr8tor::engine::RecorderEvent::Stats(s) = e {
                last = s.events;
            }
        }
        if last >= recordable {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = recorder.stop().unwrap();
    assert_eq!(
        summary.stats.events, recordable,
        "{published:?} {summary:?}"
    );
    assert_eq!(
        summary.stats.filtered, 0,
        "audio is not subscribed, nothing to filter"
    );

    let check = common::integr8tor(&["check", path.to_str().unwrap()]);
    assert!(check.status.success(), "{}", common::stdout(&check));
    let info = common::integr8tor(&["info", "--json", path.to_str().unwrap()]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["event_records"], recordable);
    assert_eq!(
        info["by_topic"]["noise.params"],
        published.user_params + published.preset_params
    );
    assert_eq!(info["by_topic"]["noise.mod"], published.mod_values);
    assert_eq!(info["by_topic"]["noise.events"], published.events);
    assert!(info["by_topic"].get("noise.audio").is_none());
    assert!(
        info["snapshot_records"].as_u64().unwrap() >= 2,
        "10 s makes at least 2 snapshots"
    );
}

#[test]
fn recording_while_playing_never_captures_the_replay() {
    let (_broker, conn) = broker();
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(
        &conn,
        RecorderConfig {
            start: StartFrom::Earliest,
            out: Some(dir.path().join("during-replay.msgpack")),
            ..RecorderConfig::new(dir.path())
        },
    )
    .unwrap();
    let session = Arc::new(Session::open(&common::fixture("small-60s.msgpack")).unwrap());
    let (first, _) = session.time_range().unwrap();
    let publisher = Arc::new(
        Publisher::new(
            &conn,
            PublisherConfig::new("integr8tor.player", "replay-x"),
            clock(),
        )
        .unwrap(),
    );
    let player = Player::start(
        Arc::clone(&session),
        Box::new(PublisherSink::new(Arc::clone(&publisher))),
        clock(),
        PlayerConfig {
            speed: 8.0,
            to: Some(first + 8_000),
            ..PlayerConfig::default()
        },
    )
    .unwrap();
    // a performer on the synth at the same time
    let synth = Publisher::new(
        &conn,
        PublisherConfig {
            rate_limits: RateLimits::unlimited(),
            ..PublisherConfig::new("noise-engine", "live")
        },
        clock(),
    )
    .unwrap();
    player.send(PlayerCommand::Play);
    for i in 0..50 {
        synth.publish(Draft::param(Actor::User, "gen.1.cutoff", i as f64 / 50.0));
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut dispatched = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    'wait: while Instant::now() < deadline {
        for e in player.events().try_iter() {
            match e {
                PlayerEvent::Status(s) => dispatched = s.dispatched,
                PlayerEvent::Finished => break 'wait,
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for e in player.events().try_iter() {
        if let PlayerEvent::Status(s) = e {
            dispatched = s.dispatched;
        }
    }
    assert!(dispatched > 100, "the player sent its part ({dispatched})");
    publisher.flush(Duration::from_secs(10)).unwrap();
    synth.flush(Duration::from_secs(10)).unwrap();
    // wait until the recorder has seen everything: 50 live + every replayed one
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut stats = None;
        for e in recorder.events().try_iter() {
            if let integr8tor::engine::RecorderEvent::Stats(s) = e {
                stats = Some(s);
            }
        }
        if stats.is_some_and(|s| s.events + s.filtered >= 50 + dispatched)
            || Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let summary = recorder.stop().unwrap();
    assert_eq!(summary.stats.events, 50, "only the performer's messages");
    assert_eq!(
        summary.stats.filtered, dispatched,
        "every replayed message was seen and dropped"
    );
    let recorded = Session::open(&summary.path).unwrap();
    for e in recorded.events() {
        assert_eq!(e.actor, ActorKind::User);
        assert_eq!(recorded.producer_name(e.producer), "noise-engine");
    }
}

/// How many event records a session file holds now (it may end inside a record).
fn events_on_disk(file: &std::path::Path) -> u64 {
    match Session::open(file) {
        Ok(s) => s.read_report().event_records,
        Err(_) => 0,
    }
}

#[test]
fn a_recorder_killed_with_sigkill_keeps_everything_it_had_written() {
    let (broker, conn) = broker();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("killed.msgpack");
    let mut child = Command::new(env!("CARGO_BIN_EXE_integr8tor"))
        .args([
            "record",
            "--from-beginning",
            "--brokers",
            broker.bootstrap(),
            "--out",
        ])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let synth = Publisher::new(
        &conn,
        PublisherConfig {
            linger_ms: 0,
            rate_limits: RateLimits::unlimited(),
            ..PublisherConfig::new("noise-engine", "crash")
        },
        clock(),
    )
    .unwrap();
    let mut path_of: HashMap<u64, String> = HashMap::new();
    let mut publish = |i: u64| {
        let path = format!("gen.{}.cutoff", i % 4 + 1);
        if let integr8tor::kafka::PublishOutcome::Queued { seq } =
            synth.publish(Draft::param(Actor::User, path.clone(), i as f64))
        {
            path_of.insert(seq, path);
        }
    };
    // a first part, which the running recorder writes to disk on its own
    for i in 0..600 {
        publish(i);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while events_on_disk(&file) < 600 {
        assert!(
            Instant::now() < deadline,
            "the recorder has not written the first 600 events ({} on disk)",
            events_on_disk(&file)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // a second part still in flight when the recorder is killed
    for i in 600..1000 {
        publish(i);
    }
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc_kill(child.id() as i32, 9) };
    assert_eq!(rc, 0);
    child.wait().unwrap();
    assert_eq!(path_of.len(), 1000, "every message was queued");

    let session = Session::open(&file).expect("a killed recording loads as it is");
    let mut have: HashMap<String, Vec<u64>> = HashMap::new();
    for e in session.events() {
        let env = session.envelope(e).unwrap();
        have.entry(env.param().unwrap().0.to_owned())
            .or_default()
            .push(env.seq);
    }
    let kept: usize = have.values().map(Vec::len).sum();
    assert!(kept >= 600, "only {kept} events survived");
    // per path (one partition each), what survived is the first part of what
    // was sent, in order: nothing in the middle is lost
    for (path, seqs) in &mut have {
        seqs.sort_unstable();
        let mut sent: Vec<u64> = path_of
            .iter()
            .filter(|(_, p)| *p == path)
            .map(|(s, _)| *s)
            .collect();
        sent.sort_unstable();
        assert_eq!(seqs[..], sent[..seqs.len()], "{path}");
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
