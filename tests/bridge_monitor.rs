//! The monitor page in headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from tests/web): served by the WebSocket bridge while
//! the demo synth plays, it shows the values the demo publishes and updates
//! them, fetching nothing but its own page and feed.
//!
//! Needs `chromium` and `node` with tests/web's packages (`.ci/install`).

mod kafka_support;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integr8tor::bridge::{WsBridge, WsConfig};
use integr8tor::engine::{Demo, DemoConfig};
use integr8tor::kafka::{
    Connection, EmbeddedBroker, StartFrom, Subscriber, SubscriberConfig, SubscriberEvent,
};
use integr8tor::Topic;
use kafka_support::Collected;
use serde_json::Value;

#[test]
fn the_monitor_page_shows_the_demo_and_follows_it() {
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let feed = Subscriber::start(
        &conn,
        SubscriberConfig::new(kafka_support::unique_group("ws-bridge"), &Topic::ALL)
            .start_from(StartFrom::Latest),
    )
    .unwrap();
    let bridge = WsBridge::start(
        feed.events().clone(),
        WsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..WsConfig::default()
        },
        None,
    )
    .unwrap();
    // everything the demo publishes, per path, to check what the page shows
    let watcher = Subscriber::start(
        &conn,
        SubscriberConfig::new(kafka_support::unique_group("watch"), &[Topic::Params])
            .start_from(StartFrom::Latest),
    )
    .unwrap();
    let mut c = Collected::default();
    kafka_support::wait_connected(&watcher, &mut c, Duration::from_secs(30));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !bridge.stats().bus_connected {
        assert!(std::time::Instant::now() < deadline, "bridge not connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    let seen: Arc<Mutex<HashMap<String, HashSet<u64>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let seen = Arc::clone(&seen);
        let stop = Arc::clone(&stop);
        let events = watcher.events().clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(SubscriberEvent::Messages(batch)) =
                    events.recv_timeout(Duration::from_millis(50))
                {
                    let mut seen = seen.lock().unwrap();
                    for m in &batch {
                        if let Some((path, value)) = m.view().param() {
                            seen.entry(path.to_owned())
                                .or_default()
                                .insert(value.to_bits());
                        }
                    }
                }
            }
        })
    };
    let demo = Demo::start(&conn, DemoConfig::default()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("monitor.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web/monitor.mjs");
    let url = format!("http://{}/", bridge.local_addr());
    let out = Command::new("node")
        .args([script, &url, shot.to_str().unwrap()])
        .output()
        .expect("running node (tests/web needs `npm install`: .ci/install does it)");
    assert!(
        out.status.success(),
        "monitor.mjs failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(demo);
    if let Ok(keep) = std::env::var("MONITOR_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a screenshot was taken"
    );

    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"], serde_json::json!([]), "no page errors");
    for r in report["requests"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        assert!(
            r.starts_with(&url),
            "the page fetched {r}: nothing but itself"
        );
    }
    let after = &report["after"];
    assert_eq!(after["socket"], "connected");
    assert_eq!(after["link"], "connected");
    let groups: Vec<&str> = after["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        ["gen.1", "gen.2", "gen.3", "gen.4", "mod", "master"],
        "grouped as in the app"
    );
    let shown = after["params"].as_object().unwrap();
    let paths: HashSet<String> = integr8tor::engine::demo::demo_paths().into_iter().collect();
    assert_eq!(shown.keys().cloned().collect::<HashSet<_>>(), paths);
    // the watcher may still be taking in the last messages: wait for it
    let published = |path: &str, value: f64| {
        seen.lock()
            .unwrap()
            .get(path)
            .is_some_and(|vs| vs.contains(&value.to_bits()))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for (path, p) in shown {
        let value = p["value"].as_f64().unwrap();
        while !published(path, value) {
            assert!(
                std::time::Instant::now() < deadline,
                "{path} shows {value}, which the demo never published"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let text: f64 = p["text"].as_str().unwrap().parse().unwrap();
        assert!(
            (text - value).abs() <= 0.0005 + 1e-12,
            "{path}: {text} for {value}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    collector.join().unwrap();
    assert_eq!(after["meters"].as_array().unwrap().len(), 5);
    assert!(!after["events"].as_array().unwrap().is_empty());
    let before = &report["before"];
    assert_ne!(before["buses"], after["buses"], "the buses moved");
    assert_ne!(before["params"], after["params"], "values were updated");
    assert!(bridge.stats().pages >= 1);
}
