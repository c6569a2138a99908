//! Bus → OSC and bus → WebSocket latency, and WebSocket fan-out.
//!
//!     cargo bench --bench bridges
//!
//! Every run uses a fresh embedded broker and a publisher with the default
//! `linger.ms` (5). Messages are `noise.events` (never held by the OSC rate
//! limits) carrying their index, offered at a steady rate.
//!
//! 1. Baseline: publish call → the application thread takes the message off
//!    a plain subscriber's channel (what the bridges start from).
//! 2. OSC: publish call → the packet arrives on a UDP socket in this process.
//! 3. WebSocket: publish call → a client in this process (tungstenite) has
//!    read the frame.
//!
//! Each at the demo's rate (about 700 messages/s: 16 buses and 5 meters at
//! 30 Hz, parameters and notes) and at 10,000/s, for `BENCH_BRIDGE_SECONDS`
//! (default 3) each. The bridges' own figure (the subscriber's receive stamp
//! → the send call or the client's flush) is printed beside.
//!
//! 4. Fan-out: 50 WebSocket clients at the demo's rate, then a burst of
//!    50,000 messages as fast as the publisher takes them: frames delivered
//!    per second, clients closed as too slow, and the process's resident
//!    memory before and after.

use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integr8tor::bridge::{OscBridge, OscConfig, WsBridge, WsConfig};
use integr8tor::clock::MonotonicClock;
use integr8tor::engine::LatencyHistogram;
use integr8tor::kafka::{
    Connection, ConnectionState, Draft, EmbeddedBroker, PublishOutcome, Publisher, PublisherConfig,
    RateLimits, StartFrom, Subscriber, SubscriberConfig, SubscriberEvent,
};
use integr8tor::{Actor, RawValue, Topic};
use tokio_tungstenite::tungstenite;

const DEMO_RATE: u64 = 700;

fn seconds() -> f64 {
    std::env::var("BENCH_BRIDGE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0)
}

fn publisher(conn: &Connection) -> Publisher {
    let mut config = PublisherConfig::new("bench.synth", format!("bench-{}", std::process::id()));
    config.rate_limits = RateLimits::unlimited();
    config.flush_on_drop = Duration::from_secs(30);
    Publisher::new(conn, config, Arc::new(MonotonicClock::new())).expect("publisher")
}

fn subscriber(conn: &Connection, name: &str, topics: &[Topic]) -> Subscriber {
    let group = format!("bench-{name}-{}", std::process::id());
    Subscriber::start(
        conn,
        SubscriberConfig::new(group, topics).start_from(StartFrom::Latest),
    )
    .expect("subscriber")
}

fn event(i: u64) -> Draft {
    Draft::event(
        Actor::Midi,
        "bench",
        vec![("i".to_owned(), RawValue::from_value(&i.into()))],
    )
}

/// Offers `n` events at `rate` per second; returns each one's publish time.
fn offer(p: &Publisher, rate: u64, n: u64) -> Vec<Instant> {
    let start = Instant::now();
    let mut sent = Vec::with_capacity(n as usize);
    for i in 0..n {
        // sleeps until the message is due, never spins: at 10,000/s a spin
        // took a whole core from the bridges it measures; messages that fell
        // due during a sleep go out at once, in a small burst (as a synth's
        // control tick sends them), each stamped when it is handed over
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        }
        sent.push(Instant::now());
        loop {
            match p.publish(event(i)) {
                PublishOutcome::Queued { .. } => break,
                PublishOutcome::QueueFull => std::thread::sleep(Duration::from_micros(100)),
                other => panic!("publish: {other:?}"),
            }
        }
    }
    let _ = p.flush(Duration::from_secs(30));
    sent
}

/// Latency of every message that arrived, from its publish time.
fn histogram(sent: &[Instant], arrived: &[Option<Instant>]) -> (LatencyHistogram, u64) {
    let mut h = LatencyHistogram::default();
    let mut missing = 0;
    for (s, a) in sent.iter().zip(arrived) {
        match a {
            Some(a) => h.record_us(a.duration_since(*s).as_secs_f64() * 1e6),
            None => missing += 1,
        }
    }
    (h, missing)
}

fn wait_connected(sub: &Subscriber) -> Vec<SubscriberEvent> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rest = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "subscriber did not connect");
        if let Ok(e) = sub.events().recv_timeout(Duration::from_millis(100)) {
            if matches!(e, SubscriberEvent::Connection(ConnectionState::Connected)) {
                return rest;
            }
            rest.push(e);
        }
    }
}

/// Publishes a warm-up event and waits until `seen` says it arrived.
fn warm_up(p: &Publisher, seen: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen() {
        assert!(Instant::now() < deadline, "warm-up message never arrived");
        p.publish(event(u64::MAX));
        let _ = p.flush(Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn event_index(m: &integr8tor::kafka::Received) -> Option<u64> {
    let view = m.view();
    let raw = view.extras().find(|(k, _)| *k == b"i")?.1;
    rmpv::decode::read_value(&mut &raw[..]).ok()?.as_u64()
}

struct Row {
    what: String,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    own: String,
    missing: u64,
}

fn row(what: String, h: &LatencyHistogram, missing: u64, own: String) -> Row {
    let s = h.summary();
    Row {
        what,
        p50_ms: s.p50_us / 1000.0,
        p99_ms: s.p99_us / 1000.0,
        max_ms: s.max_us / 1000.0,
        own,
        missing,
    }
}

fn baseline(rate: u64, n: u64) -> Row {
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let sub = subscriber(&conn, "baseline", &[Topic::Events]);
    wait_connected(&sub);
    let p = publisher(&conn);
    let arrived: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n as usize]));
    let warm = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (arrived, warm, stop) = (Arc::clone(&arrived), Arc::clone(&warm), Arc::clone(&stop));
        let events = sub.events().clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(SubscriberEvent::Messages(batch)) =
                    events.recv_timeout(Duration::from_millis(50))
                {
                    let now = Instant::now();
                    let mut a = arrived.lock().unwrap();
                    for m in &batch {
                        match event_index(m) {
                            Some(u64::MAX) => warm.store(true, Ordering::Relaxed),
                            Some(i) if i < n => a[i as usize] = Some(now),
                            _ => {}
                        }
                    }
                }
            }
        })
    };
    warm_up(&p, || warm.load(Ordering::Relaxed));
    let sent = offer(&p, rate, n);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let (h, missing) = histogram(&sent, &arrived.lock().unwrap());
    row(
        format!("subscriber alone, {rate}/s"),
        &h,
        missing,
        String::new(),
    )
}

fn osc(rate: u64, n: u64) -> Row {
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let sub = subscriber(&conn, "osc", &[Topic::Events]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let bridge = OscBridge::start(
        sub.events().clone(),
        OscConfig {
            targets: vec![socket.local_addr().unwrap().to_string()],
            ..OscConfig::default()
        },
        Arc::new(MonotonicClock::new()),
    )
    .unwrap();
    while !bridge.stats().bus_connected {
        std::thread::sleep(Duration::from_millis(10));
    }
    let p = publisher(&conn);
    let arrived: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n as usize]));
    let warm = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (arrived, warm, stop) = (Arc::clone(&arrived), Arc::clone(&warm), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                let Ok(len) = socket.recv(&mut buf) else {
                    continue;
                };
                let now = Instant::now();
                let Ok((_, rosc::OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..len])
                else {
                    continue;
                };
                let i = match m.args.first() {
                    Some(rosc::OscType::Int(i)) => *i as u64,
                    Some(rosc::OscType::Long(i)) => *i as u64,
                    // the warm-up's u64::MAX goes out as a float
                    Some(rosc::OscType::Float(_)) => u64::MAX,
                    _ => continue,
                };
                if i >= n {
                    warm.store(true, Ordering::Relaxed);
                } else {
                    arrived.lock().unwrap()[i as usize] = Some(now);
                }
            }
        })
    };
    warm_up(&p, || warm.load(Ordering::Relaxed));
    let sent = offer(&p, rate, n);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let stats = bridge.stop();
    let (h, missing) = histogram(&sent, &arrived.lock().unwrap());
    let own = format!(
        "p50 {:.3} p99 {:.3} max {:.3}",
        stats.latency.p50_us / 1000.0,
        stats.latency.p99_us / 1000.0,
        stats.latency.max_us / 1000.0
    );
    row(format!("bus → OSC packet, {rate}/s"), &h, missing, own)
}

fn ws_client(addr: std::net::SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{addr}/ws"), stream).unwrap();
    ws
}

fn ws_bridge(conn: &Connection, config: WsConfig) -> (Subscriber, WsBridge) {
    let sub = subscriber(conn, "ws", &[Topic::Events]);
    let bridge = WsBridge::start(
        sub.events().clone(),
        WsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        },
        None,
    )
    .unwrap();
    while !bridge.stats().bus_connected {
        std::thread::sleep(Duration::from_millis(10));
    }
    (sub, bridge)
}

/// The event index in a feed frame.
fn frame_index(text: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("envelope")?.get("i")?.as_u64()
}

fn ws(rate: u64, n: u64) -> Row {
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let (_sub, bridge) = ws_bridge(&conn, WsConfig::default());
    let mut client = ws_client(bridge.local_addr());
    let p = publisher(&conn);
    let arrived: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n as usize]));
    let warm = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (arrived, warm, stop) = (Arc::clone(&arrived), Arc::clone(&warm), Arc::clone(&stop));
        client
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(tungstenite::Message::Text(text)) = client.read() else {
                    continue;
                };
                let now = Instant::now();
                match frame_index(&text) {
                    Some(i) if i < n => arrived.lock().unwrap()[i as usize] = Some(now),
                    Some(_) => warm.store(true, Ordering::Relaxed),
                    None => {}
                }
            }
        })
    };
    warm_up(&p, || warm.load(Ordering::Relaxed));
    let sent = offer(&p, rate, n);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let stats = bridge.stop();
    let (h, missing) = histogram(&sent, &arrived.lock().unwrap());
    let own = format!(
        "p50 {:.3} p99 {:.3} max {:.3}",
        stats.latency.p50_us / 1000.0,
        stats.latency.p99_us / 1000.0,
        stats.latency.max_us / 1000.0
    );
    row(
        format!("bus → WebSocket client, {rate}/s"),
        &h,
        missing,
        own,
    )
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn fan_out(clients: usize, demo_seconds: f64, burst: u64) {
    let broker = EmbeddedBroker::start(None).unwrap();
    let conn = Connection::to_embedded(&broker);
    let config = WsConfig {
        max_clients: clients + 8,
        ..WsConfig::default()
    };
    let queue = config.queue_capacity;
    let (_sub, bridge) = ws_bridge(&conn, config);
    let rss_before = rss_kib();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..clients)
        .map(|_| {
            let mut c = ws_client(bridge.local_addr());
            c.get_mut()
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match c.read() {
                        Ok(tungstenite::Message::Text(t)) if t.contains("\"topic\"") => {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(tungstenite::Error::Io(e))
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    while bridge.stats().clients < clients {
        std::thread::sleep(Duration::from_millis(10));
    }
    let p = publisher(&conn);
    // the demo's rate
    let n = (DEMO_RATE as f64 * demo_seconds) as u64;
    let rss_start = rss_kib();
    offer(&p, DEMO_RATE, n);
    let want = n * clients as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let demo_stats = bridge.stats();
    let demo_got = received.load(Ordering::Relaxed);
    let rss_demo = rss_kib();
    // a burst as fast as the publisher takes it
    let start = Instant::now();
    let before = received.load(Ordering::Relaxed);
    for i in 0..burst {
        loop {
            match p.publish(event(i)) {
                PublishOutcome::Queued { .. } => break,
                _ => std::thread::sleep(Duration::from_micros(100)),
            }
        }
    }
    let _ = p.flush(Duration::from_secs(30));
    let want_burst = burst * clients as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut peak_rss = rss_kib();
    loop {
        let s = bridge.stats();
        let alive = s.clients as u64;
        let got = received.load(Ordering::Relaxed) - before;
        peak_rss = peak_rss.max(rss_kib());
        // done when every client still connected has everything
        if got >= burst * alive && s.messages >= n + burst || Instant::now() > deadline {
            break;
        }
        let _ = want_burst;
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let burst_stats = bridge.stats();
    let burst_got = received.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.join();
    }
    println!();
    println!("WebSocket fan-out to {clients} clients (queue {queue} messages per client):");
    println!(
        "  demo rate {DEMO_RATE}/s for {demo_seconds} s: {demo_got} of {want} frames delivered, {} clients closed as too slow",
        demo_stats.closed_slow
    );
    println!(
        "  burst of {burst}: {burst_got} frames to {} clients in {:.2} s = {:.0} frames/s ({:.0} messages/s per client); {} closed as too slow",
        burst_stats.clients,
        elapsed.as_secs_f64(),
        burst_got as f64 / elapsed.as_secs_f64(),
        burst as f64 / elapsed.as_secs_f64(),
        burst_stats.closed_slow
    );
    println!(
        "  resident memory: {:.1} MiB before the clients, {:.1} MiB with {clients} connected, {:.1} MiB after the demo rate, peak {:.1} MiB during the burst (clients in this process)",
        rss_before as f64 / 1024.0,
        rss_start as f64 / 1024.0,
        rss_demo as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
}

fn main() {
    let secs = seconds();
    let mut rows = Vec::new();
    for rate in [DEMO_RATE, 10_000] {
        let n = (rate as f64 * secs) as u64;
        rows.push(baseline(rate, n));
        rows.push(osc(rate, n));
        rows.push(ws(rate, n));
    }
    println!();
    println!(
        "{:<36} {:>9} {:>9} {:>9} {:>8}   the bridge's own part (ms)",
        "publish call → received", "p50 ms", "p99 ms", "max ms", "missing"
    );
    for r in &rows {
        println!(
            "{:<36} {:>9.3} {:>9.3} {:>9.3} {:>8}   {}",
            r.what, r.p50_ms, r.p99_ms, r.max_ms, r.missing, r.own
        );
    }
    fan_out(50, secs, 50_000);
}
