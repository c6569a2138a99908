//! OSC out, decoded by an independent implementation: a Python `python-osc`
//! receiver on a real UDP socket (tests/python/osc_listen.py), fed by the
//! bridge from the embedded broker, live, under a virtual clock, and during
//! a replay by `integr8tor play`.
//!
//! Needs python3 with `python-osc` (`.ci/install` installs it).

mod common;
mod kafka_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integr8tor::bridge::{OscBridge, OscConfig, OscStats};
use integr8tor::clock::{MonotonicClock, SharedClock, VirtualClock};
use integr8tor::kafka::{
    Connection, Draft, EmbeddedBroker, Publisher, PublisherConfig, RateLimits, StartFrom,
    Subscriber, SubscriberConfig,
};
use integr8tor::session::Session;
use integr8tor::{Actor, Body, RawValue, Topic};
use serde_json::Value;

const MARKER: &str = "/noise/event/test_end";

/// A running osc_listen.py and the lines it printed.
struct Listener {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl Listener {
    fn start() -> Listener {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/osc_listen.py");
        let mut child = Command::new("python3")
            .args([script, MARKER])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running python3 (with python-osc: .ci/install installs it)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("osc_listen.py printed nothing (is python-osc installed?)");
        let port = first
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("expected `port N`, got {first:?}"));
        Listener { child, port, lines }
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every message up to the end marker (which is not included).
    fn messages_until_end(self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!("no end marker within 60 s; got {} messages", out.len())
                });
            if line == "end" {
                break;
            }
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["address"] != MARKER {
                out.push(v);
            }
        }
        let mut me = self;
        let _ = me.child.wait();
        out
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn publisher(conn: &Connection, id: &str) -> Publisher {
    let mut config = PublisherConfig::new(id, format!("{id}-session"));
    config.rate_limits = RateLimits::unlimited();
    config.linger_ms = 0;
    Publisher::new(conn, config, Arc::new(MonotonicClock::new())).unwrap()
}

/// A subscriber and an OSC bridge on it, once its partitions are assigned.
fn bridge(conn: &Connection, targets: Vec<String>, clock: SharedClock) -> (Subscriber, OscBridge) {
    let sub = Subscriber::start(
        conn,
        SubscriberConfig::new(
            kafka_support::unique_group("osc-bridge"),
            &[Topic::Params, Topic::Mod, Topic::Audio, Topic::Events],
        )
        .start_from(StartFrom::Latest),
    )
    .unwrap();
    let bridge = OscBridge::start(
        sub.events().clone(),
        OscConfig {
            targets,
            ..OscConfig::default()
        },
        clock,
    )
    .unwrap();
    wait_for(&bridge, "the bridge's subscription", |s| s.bus_connected);
    (sub, bridge)
}

fn wait_for(bridge: &OscBridge, what: &str, done: impl Fn(&OscStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = bridge.stats();
        if done(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within 60 s ({s:?})");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends one first message from a producer that has not published yet and
/// waits for the bridge to take it in (a subscriber that is caught up must
/// not miss a new producer's first batch); returns the bridge's count then.
fn first_message(p: &Publisher, bridge: &OscBridge) -> u64 {
    p.publish(Draft::event(Actor::Midi, "first", vec![]));
    p.flush(Duration::from_secs(10)).unwrap();
    wait_for(bridge, "a new producer's first message", |s| {
        s.router.offered == 1
    });
    1
}

fn end_marker(p: &Publisher) {
    p.publish(Draft::event(Actor::Midi, "test_end", vec![]));
    p.flush(Duration::from_secs(10)).unwrap();
}

fn floats(v: &Value) -> Vec<f32> {
    v["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn params_mod_events_and_levels_arrive_as_python_osc_decodes_them() {
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let listener = Listener::start();
    // a second target where nothing listens: refused, counted, harmless
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_target = dead.local_addr().unwrap().to_string();
    drop(dead);
    let (_sub, bridge) = bridge(
        &conn,
        vec![dead_target.clone(), listener.target()],
        Arc::new(MonotonicClock::new()),
    );
    let p = publisher(&conn, "test.synth");
    let base = first_message(&p, &bridge);
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
    p.publish(param);
    p.publish(Draft::param(Actor::Preset, "master.volume", 0.5));
    for bus in 0..16 {
        p.publish(Draft::mod_value(
            bus,
            f64::from(bus as u8) / 16.0,
            Some("lfo".into()),
        ));
    }
    p.publish(Draft::audio("gen.2", 0.625, Some(0.25)));
    p.publish(Draft::audio("master", 0.5, None));
    p.publish(Draft::event(
        Actor::Midi,
        "note_on",
        vec![
            ("velocity".into(), RawValue::from_value(&100.into())),
            ("note".into(), RawValue::from_value(&60.into())),
        ],
    ));
    p.publish(Draft::event(
        Actor::Preset,
        "preset_load",
        vec![("preset".into(), RawValue::from_value(&"warm pad".into()))],
    ));
    p.flush(Duration::from_secs(10)).unwrap();
    // 2 params + 16 buses + the bus list + 2 levels + 2 events
    wait_for(&bridge, "every message through the bridge", |s| {
        s.router.offered >= base + 22 && s.router.held == 0
    });
    end_marker(&p);
    let got = listener.messages_until_end();
    let by_addr: HashMap<&str, &Value> = got
        .iter()
        .map(|m| (m["address"].as_str().unwrap(), m))
        .collect();
    let one = |a: &str| {
        *by_addr
            .get(a)
            .unwrap_or_else(|| panic!("{a} not received: {got:#?}"))
    };

    let cutoff = one("/noise/gen/1/cutoff");
    assert_eq!(cutoff["tags"], "ff");
    assert_eq!(floats(cutoff), vec![0.75, 1234.5]);
    let volume = one("/noise/master/volume");
    assert_eq!(volume["tags"], "f", "no value_mapped, no second argument");
    assert_eq!(floats(volume), vec![0.5]);
    for bus in 0..16u8 {
        let m = one(&format!("/noise/mod/bus/{bus}"));
        assert_eq!(m["tags"], "f");
        assert_eq!(floats(m), vec![f32::from(bus) / 16.0]);
    }
    // the list: its last emission holds all 16 current values
    let list = got
        .iter()
        .rfind(|m| m["address"] == "/noise/mod/buses")
        .expect("/noise/mod/buses");
    assert_eq!(list["tags"], "f".repeat(16));
    assert_eq!(
        floats(list),
        (0..16u8).map(|b| f32::from(b) / 16.0).collect::<Vec<_>>()
    );
    let level = one("/noise/level/gen/2");
    assert_eq!(level["tags"], "ff");
    assert_eq!(floats(level), vec![0.625, 0.25]);
    assert_eq!(one("/noise/level/master")["tags"], "f");
    let note = one("/noise/event/note_on");
    assert_eq!(note["tags"], "ii", "fields in name order: note, velocity");
    assert_eq!(note["args"], serde_json::json!([60, 100]));
    let preset = one("/noise/event/preset_load");
    assert_eq!(preset["tags"], "s");
    assert_eq!(preset["args"], serde_json::json!(["warm pad"]));

    let stats = bridge.stop();
    let dead = &stats.targets[0];
    let live = &stats.targets[1];
    assert_eq!(dead.target, dead_target);
    assert!(
        dead.refused > 0,
        "the dead target's refusals are counted: {dead:?}"
    );
    assert!(dead.last_error.is_some());
    assert_eq!(live.refused + live.dropped + live.errors, 0, "{live:?}");
    assert_eq!(
        live.packets as usize,
        got.len() + 1,
        "every packet sent arrived"
    );
}

#[test]
fn each_address_is_rate_limited_on_virtual_time() {
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let listener = Listener::start();
    let clock = VirtualClock::new();
    clock.set(Duration::from_secs(100));
    let (_sub, bridge) = bridge(&conn, vec![listener.target()], Arc::new(clock.clone()));
    let p = publisher(&conn, "test.fast");
    let base = first_message(&p, &bridge);
    // a burst while the clock stands still: one message goes, the newest is held
    let n: u32 = 500;
    for i in 1..=n {
        p.publish(Draft::param(
            Actor::User,
            "gen.3.drive",
            f64::from(i) / 1000.0,
        ));
        p.publish(Draft::mod_value(5, f64::from(i) / 1000.0, None));
        if i % 10 == 0 {
            p.publish(Draft::event(
                Actor::Midi,
                "tick",
                vec![("i".into(), RawValue::from_value(&i.into()))],
            ));
        }
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let total = u64::from(n) * 2 + u64::from(n / 10);
    wait_for(&bridge, "the burst taken in", |s| {
        s.router.offered >= base + total
    });
    let s = bridge.stats();
    // params and the bus each hold one value; the bus list too
    assert_eq!(s.router.held, 3, "{s:?}");
    // 1/60 s later the param opens; the 30 Hz bus and list not yet
    clock.advance(Duration::from_nanos(16_666_667));
    wait_for(&bridge, "the param released", |s| s.router.held == 2);
    clock.advance(Duration::from_millis(17));
    wait_for(&bridge, "the bus released", |s| s.router.held == 0);
    // nothing more goes out however long it stays quiet
    clock.advance(Duration::from_secs(5));
    end_marker(&p);
    let got = listener.messages_until_end();
    let on = |a: &str| -> Vec<f32> {
        got.iter()
            .filter(|m| m["address"] == a)
            .map(|m| floats(m)[0])
            .collect()
    };
    assert_eq!(
        on("/noise/gen/3/drive"),
        vec![0.001, 0.5],
        "first, then the newest"
    );
    assert_eq!(on("/noise/mod/bus/5"), vec![0.001, 0.5]);
    assert_eq!(on("/noise/mod/buses").len(), 2);
    // events are never held
    assert_eq!(on("/noise/event/tick").len(), (n / 10) as usize);
}

// The bridge's subscriber is caught up and idle when `play` starts a new
// producer: every replayed value must reach OSC, its first batch included.
#[test]
fn a_replay_by_integr8tor_play_goes_out_as_osc() {
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let listener = Listener::start();
    let (_sub, bridge) = bridge(
        &conn,
        vec![listener.target()],
        Arc::new(MonotonicClock::new()),
    );
    let fixture = common::fixture("small-60s.msgpack");
    let facts = common::small_facts();
    let first = facts["first_ts_ms"].as_i64().unwrap();
    // a 3 s stretch at 8x: replay sends the state at its start, then the
    // user, midi and preset changes in it
    let (from, to) = (first + 46_200, first + 49_300);
    let out = Command::new(env!("CARGO_BIN_EXE_integr8tor"))
        .args([
            "play",
            fixture.to_str().unwrap(),
            "--brokers",
            broker.bootstrap(),
        ])
        .args([
            "--speed",
            "8",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stdout = common::stdout(&out);
    let sent: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sent: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `sent: N` in {stdout}"));
    assert!(sent > 0);
    wait_for(&bridge, "the replay through the bridge", |s| {
        s.router.offered >= sent && s.router.held == 0
    });
    let p = publisher(&conn, "test.end");
    end_marker(&p);
    let got = listener.messages_until_end();
    let mut last: HashMap<String, f32> = HashMap::new();
    for m in &got {
        last.insert(m["address"].as_str().unwrap().to_owned(), floats(m)[0]);
    }
    // where the replay ended, every path's last OSC value is the session's state
    let session = Session::open(&fixture).unwrap();
    let state = session.state_at(to);
    assert!(!state.is_empty());
    for (id, value) in state {
        let path = session.name(id);
        let addr = format!("/noise/{}", path.replace('.', "/"));
        assert_eq!(last.get(&addr), Some(&(value as f32)), "{addr}");
    }
}
