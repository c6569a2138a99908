//! The replay service against the embedded broker: what `integr8tor play`
//! and the app send when they play the golden session.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integr8tor::clock::{MonotonicClock, SharedClock};
use integr8tor::engine::{
    Demo, DemoConfig, PlayerCommand, PlayerConfig, PlayerEvent, ReplayConfig, ReplayService,
};
use integr8tor::kafka::{
    unix_ms_now, Connection, Draft, EmbeddedBroker, Publisher, PublisherConfig, Received,
    StartFrom, Subscriber, SubscriberConfig, SubscriberEvent,
};
use integr8tor::session::Session;
use integr8tor::{Actor, Body, Topic};

fn clock() -> SharedClock {
    Arc::new(MonotonicClock::new())
}

fn group(name: &str) -> String {
    format!("{name}-{}-{}", std::process::id(), unix_ms_now())
}

/// Receives until `done` holds (or a generous limit passes, which fails the caller's asserts).
fn collect_until(sub: &Subscriber, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&got) && Instant::now() < deadline {
        if let Ok(SubscriberEvent::Messages(batch)) =
            sub.events().recv_timeout(Duration::from_millis(100))
        {
            got.extend(batch);
        }
    }
    got
}

fn is_v4_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 4)
}

/// Plays to the end and returns the last status.
fn play_to_end(replay: &ReplayService) -> integr8tor::engine::PlayerStatus {
    replay.send(PlayerCommand::Play);
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match replay.events().recv_timeout(Duration::from_millis(200)) {
            Ok(PlayerEvent::Status(s)) => last = Some(s),
            Ok(PlayerEvent::Finished) => break,
            Err(_) => {}
        }
    }
    // the status that follows the end
    while let Ok(PlayerEvent::Status(s)) = replay.events().try_recv() {
        last = Some(s);
    }
    *last.expect("the player reports its status")
}

#[test]
fn playing_the_golden_session_at_8x_delivers_its_user_midi_and_preset_changes_as_recorded() {
    let session = Arc::new(Session::open(&common::fixture("small-60s.msgpack")).unwrap());
    let expected: Vec<_> = session
        .events()
        .iter()
        .filter(|e| session.topic_of(e) == Some(Topic::Params) && e.actor.is_replayed())
        .copied()
        .collect();
    let facts = common::small_facts();
    assert_eq!(
        expected.len() as u64,
        facts["by_topic"]["noise.params"].as_u64().unwrap()
            - facts["params_by_actor"]["mod"].as_u64().unwrap_or(0),
        "every parameter change but the modulation's"
    );
    for actor in ["user", "midi", "preset"] {
        assert!(
            expected
                .iter()
                .any(|e| format!("{:?}", e.actor).to_lowercase() == actor),
            "the golden session has {actor} changes"
        );
    }

    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let sub = Subscriber::start(
        &conn,
        SubscriberConfig::new(group("replay8"), &[Topic::Params]).start_from(StartFrom::Earliest),
    )
    .unwrap();
    let defaults = ReplayConfig::default();
    let replay = ReplayService::start(
        Some(&conn),
        Arc::clone(&session),
        ReplayConfig {
            player: PlayerConfig {
                speed: 8.0,
                ..defaults.player
            },
            ..defaults
        },
        clock(),
    )
    .unwrap();
    let replay_session = replay.session_id().to_owned();
    assert!(is_v4_uuid(&replay_session), "{replay_session}");
    let status = play_to_end(&replay);
    assert_eq!(status.dispatched, expected.len() as u64, "{status:?}");
    let summary = replay.stop(Duration::from_secs(10));
    assert_eq!(
        summary.delivered(),
        expected.len() as u64,
        "the broker acknowledged every replayed message and nothing else"
    );
    assert_eq!(summary.not_delivered(), 0);

    let mut got = collect_until(&sub, |g| g.len() >= expected.len());
    assert_eq!(got.len(), expected.len());
    // the player's seq is its send order
    got.sort_by_key(|m| m.envelope().seq);
    let mut applied: BTreeMap<String, f64> = BTreeMap::new();
    for (i, (m, e)) in got.iter().zip(&expected).enumerate() {
        let out = m.envelope();
        let original = session.envelope(e).unwrap();
        assert_eq!(out.actor, Some(Actor::Replay), "message {i}");
        assert_eq!(out.session_id, replay_session, "message {i}");
        assert_eq!(out.producer_id, "integr8tor.player", "message {i}");
        assert_eq!(out.seq, i as u64 + 1, "message {i}");
        assert_eq!(out.source.as_deref(), Some("integr8tor"), "message {i}");
        assert_eq!(
            out.body, original.body,
            "message {i}: path, value, value_mapped"
        );
        assert_eq!(out.extra, original.extra, "message {i}: extra fields");
        assert_eq!(m.key(), Some(original.kafka_key()), "message {i}");
        if let Body::Param { path, value, .. } = out.body {
            applied.insert(path, value);
        }
    }
    assert!(
        expected.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms),
        "sent in ts_ms order"
    );
    // a consumer that applied them holds the session's state at the end,
    // for every path whose last change replay republishes
    let (_, end) = session.time_range().unwrap();
    let mut compared = 0;
    for (name, value) in session.state_at(end) {
        let setter = session.setter_at(name, end);
        if setter.is_some_and(|e| !e.actor.is_replayed()) {
            continue; // the live modulation's
        }
        assert_eq!(
            applied.get(session.name(name)),
            Some(&value),
            "{}",
            session.name(name)
        );
        compared += 1;
    }
    assert!(compared >= 20, "compared {compared} paths");
}

#[test]
fn a_performers_touch_on_the_synth_pins_its_path_during_replay() {
    // two paths changing every 100 ms for 20 s
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("take.msgpack");
    {
        let mut w = integr8tor::session::SessionWriter::create(&file).unwrap();
        for i in 0..200u64 {
            for (k, path) in ["gen.1.cutoff", "gen.2.drive"].iter().enumerate() {
                let env = integr8tor::Envelope::param_change(
                    "6f1c7a52-34b2-4c8e-9d43-0b8f6a1e2c3d",
                    "python.gui",
                    i * 2 + k as u64 + 1,
                    1_790_000_000_000 + i as i64 * 100,
                    Actor::User,
                    path,
                    i as f64 / 200.0,
                );
                w.append_envelope(&env).unwrap();
            }
        }
        w.finish().unwrap();
    }
    let session = Arc::new(Session::open(&file).unwrap());
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let replay = ReplayService::start(
        Some(&conn),
        Arc::clone(&session),
        ReplayConfig::default(),
        clock(),
    )
    .unwrap();
    replay.send(PlayerCommand::Play);
    // the synth's own user message (another producer) and a MIDI one
    let synth = Publisher::new(
        &conn,
        PublisherConfig::new("noise-engine", integr8tor::engine::new_session_id()),
        clock(),
    )
    .unwrap();
    let pinned_until = Instant::now() + Duration::from_secs(15);
    let mut pins = Vec::new();
    while pins.is_empty() && Instant::now() < pinned_until {
        synth.publish(Draft::param(Actor::User, "gen.1.cutoff", 0.9));
        synth.publish(Draft::param(Actor::Midi, "gen.2.drive", 0.9));
        if let Ok(PlayerEvent::Status(s)) = replay.events().recv_timeout(Duration::from_millis(200))
        {
            pins = s.pins;
        }
    }
    assert_eq!(
        pins.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
        ["gen.1.cutoff"],
        "a user message pins its path; a midi one does not"
    );
    replay.stop(Duration::from_secs(5));
}

#[test]
fn the_demo_stamps_a_version_4_uuid_session_id() {
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let sub = Subscriber::start(
        &conn,
        SubscriberConfig::new(group("demo-id"), &[Topic::Params]).start_from(StartFrom::Earliest),
    )
    .unwrap();
    let demo = Demo::start(
        &conn,
        DemoConfig {
            duration: Some(Duration::from_secs(2)),
            ..DemoConfig::default()
        },
    )
    .unwrap();
    let got = collect_until(&sub, |g| !g.is_empty());
    demo.stop();
    let id = got[0].envelope().session_id;
    assert!(is_v4_uuid(&id), "{id}");
    assert!(got.iter().all(|m| m.envelope().session_id == id));
}

/// Dropping a replay on a bus (as the app does when it loads another
/// session, reconnects or closes) ends its threads; it used to wait for
/// ever, as the player waited for a sender that the live-pinning thread held.
#[test]
fn dropping_a_replay_on_a_bus_returns() {
    let session = Arc::new(Session::open(&common::fixture("small-60s.msgpack")).unwrap());
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let (done_tx, done) = crossbeam_channel::bounded(1);
    let worker = std::thread::spawn(move || {
        for play in [false, true] {
            let replay = ReplayService::start(
                Some(&conn),
                Arc::clone(&session),
                ReplayConfig::default(),
                clock(),
            )
            .unwrap();
            if play {
                replay.send(PlayerCommand::Play);
            }
            // the first status report: the player thread is running
            let _ = replay.events().recv_timeout(Duration::from_secs(10));
            drop(replay);
            done_tx.send(play).unwrap();
        }
    });
    for play in [false, true] {
        // a bound so a regression fails instead of hanging the suite
        assert_eq!(
            done.recv_timeout(Duration::from_secs(60)),
            Ok(play),
            "dropping a {} replay did not return",
            if play { "playing" } else { "stopped" }
        );
    }
    worker.join().unwrap();
}

/// The app's control thread replaces its player when the bus is replaced
/// (Settings, Apply): the new player goes on where the old one was, from the
/// old player's own final status.
#[cfg(feature = "gui")]
#[test]
fn the_app_player_resumes_where_it_was_when_the_bus_is_replaced() {
    use integr8tor::app::control::{Control, ControlConfig};
    use integr8tor::app::workers::{self, BusSettings, Command, Outbox, WorkerMsg};
    use integr8tor::engine::PlayState;

    let broker = EmbeddedBroker::start(None).unwrap();
    let settings = BusSettings {
        brokers: Some(broker.bootstrap().to_owned()),
        options: Vec::new(),
        group_id: group("app-resume"),
        start: StartFrom::Latest,
    };
    let (inbox, msgs) = crossbeam_channel::unbounded();
    let control = Control::start(
        Outbox::new(inbox, workers::no_waker()),
        ControlConfig {
            pin_ms: 3000,
            connect: Some(settings.clone()),
            demo: false,
        },
    )
    .unwrap();
    // waits for a message matching `want`, returning it
    let wait = |want: &dyn Fn(&WorkerMsg) -> bool, what: &str| -> WorkerMsg {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(m) = msgs.recv_timeout(Duration::from_millis(100)) {
                if want(&m) {
                    return m;
                }
            }
        }
        panic!("no {what} within 30 s");
    };
    wait(&|m| matches!(m, WorkerMsg::Connected { .. }), "connection");
    let commands = control.sender();
    commands
        .send(Command::Open {
            path: common::fixture("small-60s.msgpack"),
            recover: false,
        })
        .unwrap();
    let WorkerMsg::Loaded(loaded) = wait(&|m| matches!(m, WorkerMsg::Loaded(_)), "load") else {
        unreachable!()
    };
    let (first, last) = loaded.range;
    let at = first + (last - first) / 2;
    let looped = (first + 1000, last - 1000);
    commands
        .send(Command::Transport(PlayerCommand::SetSpeed(2.0)))
        .unwrap();
    commands
        .send(Command::Transport(PlayerCommand::SetLoop(Some(looped))))
        .unwrap();
    commands
        .send(Command::Transport(PlayerCommand::Seek(at)))
        .unwrap();
    commands
        .send(Command::Transport(PlayerCommand::Pause))
        .unwrap();
    let placed = |m: &WorkerMsg| {
        matches!(m, WorkerMsg::Playback(s)
            if s.position_ms == at && s.speed == 2.0 && s.loop_range == Some(looped)
                && s.state == PlayState::Paused)
    };
    wait(&placed, "status at the seek");

    commands.send(Command::Connect(settings)).unwrap();
    wait(
        &|m| matches!(m, WorkerMsg::Connected { .. }),
        "reconnection",
    );
    // the new player's reports: where the old one was, same speed and loop
    wait(&placed, "the new player's status where the old one was");
    drop(control);
}
