//! The WebSocket feed with real clients: Python `websockets` processes
//! (tests/python/ws_client.py) against a bridge on the embedded broker:
//! the JSON spelling, subscriptions, a stalled client closed while another
//! keeps every message, a client that stops answering pings, and inbound
//! control with its refusals and the pin it makes in a running replay.
//!
//! Needs python3 with `websockets` (`.ci/install` installs it).

mod common;
mod kafka_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integr8tor::bridge::{WsBridge, WsConfig, WsStats};
use integr8tor::clock::{MonotonicClock, SharedClock};
use integr8tor::engine::{Player, PlayerCommand, PlayerConfig, PlayerEvent, PublisherSink};
use integr8tor::kafka::{
    Connection, Draft, EmbeddedBroker, Publisher, PublisherConfig, RateLimits, StartFrom,
    Subscriber, SubscriberConfig, SubscriberEvent,
};
use integr8tor::session::Session;
use integr8tor::{Actor, ActorKind, Body, RawValue, Topic};
use kafka_support::Collected;
use serde_json::{json, Value};

/// A ws_client.py process and its output lines.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Client {
    fn start(args: &[&str]) -> Client {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ws_client.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running python3 (with websockets: .ci/install installs it)");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Client {
            child,
            stdin,
            lines,
        }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the client printed nothing within 60 s")
    }

    fn json(&self) -> Value {
        let line = self.line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn expect_ready(&self) {
        loop {
            let line = self.line();
            if line == "ready" {
                return;
            }
            assert!(!line.contains("\"error\""), "{line}");
        }
    }

    /// Every frame up to `end`.
    fn frames_until_end(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let line = self.line();
            if line == "end" {
                return out;
            }
            out.push(serde_json::from_str(&line).unwrap());
        }
    }

    fn go(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "go").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publisher(conn: &Connection, id: &str) -> Publisher {
    let mut config = PublisherConfig::new(id, format!("{id}-session"));
    config.rate_limits = RateLimits::unlimited();
    config.linger_ms = 0;
    Publisher::new(conn, config, Arc::new(MonotonicClock::new())).unwrap()
}

struct Setup {
    _broker: EmbeddedBroker,
    conn: Connection,
    _sub: Subscriber,
    bridge: WsBridge,
}

impl Setup {
    fn start(config: WsConfig, control: bool) -> Setup {
        let broker = EmbeddedBroker::start(None).unwrap();
        let conn = Connection::to_embedded(&broker);
        let sub = Subscriber::start(
            &conn,
            SubscriberConfig::new(kafka_support::unique_group("ws-bridge"), &Topic::ALL)
                .start_from(StartFrom::Latest),
        )
        .unwrap();
        let publisher = control.then(|| {
            let clock: SharedClock = Arc::new(MonotonicClock::new());
            Arc::new(
                Publisher::new(
                    &conn,
                    PublisherConfig::new("integr8tor.ws-bridge", "ws-test"),
                    clock,
                )
                .unwrap(),
            )
        });
        let bridge = WsBridge::start(
            sub.events().clone(),
            WsConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..config
            },
            publisher,
        )
        .unwrap();
        let setup = Setup {
            _broker: broker,
            conn,
            _sub: sub,
            bridge,
        };
        setup.wait_for("the bridge's subscription", |s| s.bus_connected);
        setup
    }

    fn url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.bridge.local_addr())
    }

    fn wait_for(&self, what: &str, done: impl Fn(&WsStats) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.bridge.stats();
            if done(&s) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: not within 60 s ({s:?})");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn flush(p: &Publisher) {
    p.flush(Duration::from_secs(10)).unwrap();
}

#[test]
fn the_feed_is_json_and_a_subscription_narrows_it() {
    let s = Setup::start(WsConfig::default(), false);
    let all = Client::start(&["feed", &s.url(""), "gen.1.zz_end"]);
    let narrow = Client::start(&[
        "feed",
        &s.url(""),
        "gen.1.zz_end",
        &json!({"subscribe": {"topics": ["noise.params"], "paths": ["gen.1."]}}).to_string(),
    ]);
    all.expect_ready();
    narrow.expect_ready();
    let p = publisher(&s.conn, "test.synth");
    let mut param = Draft::param(Actor::User, "gen.1.cutoff", 0.75);
    if let Body::Param {
        value_mapped,
        has_value_mapped,
        ..
    } = &mut param.body
    {
        *value_mapped = Some(1234.5);
        *has_value_mapped = true;
    }
    param
        .extra
        .push(("ui".into(), RawValue::from_value(&"knob 3".into())));
    p.publish(param);
    p.publish(Draft::param(Actor::User, "gen.2.cutoff", 0.25));
    p.publish(Draft::mod_value(4, 0.5, Some("lfo".into())));
    p.publish(Draft::audio("master", 0.5, Some(0.25)));
    p.publish(Draft::event(
        Actor::Midi,
        "note_on",
        vec![
            ("note".into(), RawValue::from_value(&60.into())),
            ("velocity".into(), RawValue::from_value(&100.into())),
        ],
    ));
    flush(&p);
    s.wait_for("five messages in", |st| st.messages >= 5);
    p.publish(Draft::param(Actor::User, "gen.1.zz_end", 1.0));
    flush(&p);

    let frames = all.frames_until_end();
    let hello = &frames[0]["hello"];
    assert_eq!(hello["version"], 1);
    assert_eq!(hello["control"], false);
    let feed: Vec<&Value> = frames.iter().filter(|f| f.get("topic").is_some()).collect();
    let find = |topic: &str, key: &str| -> &Value {
        feed.iter()
            .find(|f| f["topic"] == topic && f["key"] == key)
            .unwrap_or_else(|| panic!("{topic} {key} not in {feed:#?}"))
    };
    let cutoff = find("noise.params", "gen.1.cutoff");
    assert!(cutoff["partition"].is_i64() && cutoff["offset"].is_i64());
    let e = &cutoff["envelope"];
    assert_eq!(e["v"], 1);
    assert_eq!(e["producer_id"], "test.synth");
    assert_eq!(e["session_id"], "test.synth-session");
    assert!(e["seq"].is_u64() && e["ts_ms"].is_i64());
    assert_eq!(e["actor"], "user");
    assert_eq!(e["path"], "gen.1.cutoff");
    assert_eq!(e["value"], 0.75);
    assert_eq!(e["value_mapped"], 1234.5);
    assert_eq!(e["ui"], "knob 3", "unknown fields come along");
    let bus = &find("noise.mod", "bus.4")["envelope"];
    assert_eq!(
        (bus["bus"].clone(), bus["value"].clone()),
        (json!(4), json!(0.5))
    );
    assert_eq!(bus["source_type"], "lfo");
    let level = &find("noise.audio", "master")["envelope"];
    assert_eq!(
        (level["peak"].clone(), level["rms"].clone()),
        (json!(0.5), json!(0.25))
    );
    let note = &find("noise.events", "note_on")["envelope"];
    assert_eq!(
        (
            note["type"].clone(),
            note["note"].clone(),
            note["velocity"].clone()
        ),
        (json!("note_on"), json!(60), json!(100))
    );
    assert_eq!(feed.len(), 6, "five and the end marker: {feed:#?}");

    let narrowed = narrow.frames_until_end();
    let paths: Vec<&str> = narrowed
        .iter()
        .filter(|f| f.get("topic").is_some())
        .map(|f| f["envelope"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["gen.1.cutoff", "gen.1.zz_end"]);
}

#[test]
fn a_stalled_client_is_closed_while_another_keeps_every_message() {
    let s = Setup::start(
        WsConfig {
            queue_capacity: 512,
            send_buffer_bytes: Some(16 << 10),
            // this test is about queues, not heartbeats
            ping_interval: Duration::from_secs(600),
            ..WsConfig::default()
        },
        false,
    );
    let mut stalled = Client::start(&["stall", &s.url("")]);
    let good = Client::start(&["feed", &s.url(""), "test.end"]);
    stalled.expect_ready();
    good.expect_ready();
    s.wait_for("two clients", |st| st.clients == 2);
    let p = publisher(&s.conn, "test.fast");
    let n = 6000u32;
    let mut frames: Vec<Value> = Vec::new();
    let count = |frames: &[Value]| {
        frames
            .iter()
            .filter(|f| f["envelope"]["path"] == "test.k")
            .count()
    };
    let mut sent = 0usize;
    for i in 0..n {
        p.publish(Draft::param(
            Actor::User,
            "test.k",
            f64::from(i) / f64::from(n),
        ));
        sent += 1;
        if i % 50 == 49 {
            flush(&p);
            // keep the good client within 100 messages of the bus, however
            // slow this machine is: it never fills its queue of 512
            while count(&frames) + 100 < sent {
                let line = good.line();
                frames.push(serde_json::from_str(&line).unwrap());
            }
        }
    }
    flush(&p);
    s.wait_for("the stalled client closed as too slow", |st| {
        st.closed_slow == 1
    });
    s.wait_for("every message in", |st| st.messages >= u64::from(n));
    p.publish(Draft::param(Actor::User, "test.end", 1.0));
    flush(&p);

    frames.extend(good.frames_until_end());
    let values: Vec<f64> = frames
        .iter()
        .filter(|f| f["envelope"]["path"] == "test.k")
        .map(|f| f["envelope"]["value"].as_f64().unwrap())
        .collect();
    assert_eq!(
        values.len(),
        n as usize,
        "the good client got every message"
    );
    assert!(values.windows(2).all(|w| w[0] < w[1]), "in order");

    stalled.go();
    let end = stalled.json();
    assert_eq!(end["closed"], true, "{end}");
    assert!(
        end["received"].as_u64().unwrap() < u64::from(n),
        "the stalled client was cut off: {end}"
    );
    let st = s.bridge.stats();
    assert_eq!(st.closed_slow, 1);
    assert_eq!(st.closed_heartbeat, 0);
}

#[test]
fn a_client_that_stops_answering_pings_is_closed() {
    let s = Setup::start(
        WsConfig {
            ping_interval: Duration::from_millis(250),
            missed_pings: 3,
            ..WsConfig::default()
        },
        false,
    );
    let deaf = Client::start(&["noping", &s.url("")]);
    // the websockets client answers pings by itself
    let good = Client::start(&["feed", &s.url(""), "test.end"]);
    deaf.expect_ready();
    good.expect_ready();
    let closed = deaf.json();
    assert_eq!(closed["closed"], true);
    assert_eq!(closed["code"], 1008, "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap()
            .contains("missed 3 pings"),
        "{closed}"
    );
    assert!(closed["pings"].as_u64().unwrap() >= 3);
    s.wait_for("counted", |st| st.closed_heartbeat == 1);
    // the answering client is still there and still fed
    let p = publisher(&s.conn, "test.end");
    p.publish(Draft::param(Actor::User, "test.end", 1.0));
    flush(&p);
    let frames = good.frames_until_end();
    assert!(frames.iter().any(|f| f["envelope"]["path"] == "test.end"));
    assert_eq!(s.bridge.stats().closed_heartbeat, 1);
}

#[test]
fn control_is_refused_without_the_flag() {
    let s = Setup::start(WsConfig::default(), false);
    let c = Client::start(&["control", &s.url(""), "gen.1.cutoff", "0.4"]);
    let answer = c.json();
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("--allow-control"),
        "{answer}"
    );
    s.wait_for("counted", |st| {
        st.control_refused == 1 && st.control_sets == 0
    });
}

#[test]
fn control_with_a_token_sets_the_value_and_pins_it_in_a_replay() {
    let token = "s3cret-42";
    let s = Setup::start(
        WsConfig {
            token: Some(token.into()),
            allow_control: true,
            ..WsConfig::default()
        },
        true,
    );
    // a wrong or missing token: no connection at all
    for query in ["?token=wrong", ""] {
        let c = Client::start(&["control", &s.url(query), "gen.1.cutoff", "0.4"]);
        assert_eq!(c.json()["refused"], 401);
    }
    s.wait_for("refusals counted", |st| st.refused_token == 2);

    // a running replay, pinned by live user messages as `integr8tor play` does
    let fixture = common::fixture("small-60s.msgpack");
    let session = Arc::new(Session::open(&fixture).unwrap());
    let clock: SharedClock = Arc::new(MonotonicClock::new());
    let replay_publisher = Arc::new(
        Publisher::new(
            &s.conn,
            PublisherConfig::new("integr8tor.player", "replay-test"),
            Arc::clone(&clock),
        )
        .unwrap(),
    );
    let live = Subscriber::start(
        &s.conn,
        SubscriberConfig::new(kafka_support::unique_group("play-live"), &[Topic::Params])
            .start_from(StartFrom::Latest),
    )
    .unwrap();
    let mut seen = Collected::default();
    kafka_support::wait_connected(&live, &mut seen, Duration::from_secs(30));
    let player = Player::start(
        Arc::clone(&session),
        Box::new(PublisherSink::new(replay_publisher)),
        clock,
        PlayerConfig {
            loop_range: session.time_range(),
            ..PlayerConfig::default()
        },
    )
    .unwrap();
    player.send(PlayerCommand::Play);

    let c = Client::start(&[
        "control",
        &s.url(&format!("?token={token}")),
        "gen.1.cutoff",
        "0.4",
    ]);
    let answer = c.json();
    assert_eq!(answer["set"]["path"], "gen.1.cutoff", "{answer}");
    assert_eq!(answer["set"]["outcome"], "queued");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut user_message = None;
    let mut pinned = false;
    while !(pinned && user_message.is_some()) {
        assert!(
            Instant::now() < deadline,
            "no pin within 60 s (user message {user_message:?})"
        );
        while let Ok(event) = live.events().try_recv() {
            if let SubscriberEvent::Messages(batch) = event {
                for m in &batch {
                    let v = m.view();
                    if let (ActorKind::User, Some((path, value))) = (v.actor_kind(), v.param()) {
                        if path == "gen.1.cutoff" {
                            user_message = Some((v.producer_id.to_owned(), value));
                        }
                        player.send(PlayerCommand::LiveUser {
                            path: path.to_owned(),
                            producer_id: v.producer_id.to_owned(),
                            value,
                        });
                    }
                }
            }
        }
        if let Ok(PlayerEvent::Status(st)) = player.events().recv_timeout(Duration::from_millis(20))
        {
            pinned |= st.pins.iter().any(|p| p.path == "gen.1.cutoff");
        }
    }
    assert_eq!(
        user_message,
        Some(("integr8tor.ws-bridge".to_owned(), 0.4)),
        "on noise.params with actor user"
    );
    player.stop();
    let st = s.bridge.stats();
    assert_eq!((st.control_sets, st.control_refused), (1, 0));
}
