//! Publish → subscribe through the embedded broker on loopback.
//!
//!     cargo bench --bench kafka_throughput
//!
//! Three measurements, printed as one table at the end:
//!
//! 1. Drain: a backlog of `noise.params` envelopes is published first, then a
//!    fresh [`Subscriber`] reads it from the beginning. Throughput is decoded,
//!    deduplicated messages handed over on the subscriber's channel per
//!    second, from the first message to the last (the group join before the
//!    first message is reported separately).
//! 2. Live: a [`Publisher`] on one thread publishes as fast as librdkafka
//!    accepts while the subscriber reads; messages/s from the first publish
//!    to the last message received.
//! 3. Latency: messages offered at a steady 1,000 and 10,000 per second, with
//!    `linger.ms` 5 and 0. Latency is from the `publish` call to the moment
//!    the application thread takes the message off the subscriber's channel
//!    (both stamped with the same monotonic clock in this process). A bare
//!    librdkafka consumer with the same settings reads the same messages in
//!    the same run, so what the subscriber adds (decoding, duplicate check,
//!    the channel hop) stands apart from what the broker costs.
//!
//! 4. Publishing through an outage: with the embedded broker down, how long
//!    each `publish` call takes (it only queues; it never waits for the
//!    broker), over 2,000 calls spread over two seconds.
//!
//! `BENCH_KAFKA_MESSAGES=N` changes the backlog (default 500,000; the
//! embedded broker keeps about 5 MiB per partition, so much larger backlogs
//! lose their oldest messages, which the drain would report as missing).
//! `BENCH_KAFKA_SECONDS=S` changes each latency run (default 5).
//! `BENCH_KAFKA_RUNS=N` repeats the drain and the live run (default 3; the
//! table shows the median run and the range, each run on a fresh broker).
//! `BENCH_KAFKA_ONLY=drain`, `=latency` or `=outage` runs that part alone; with
//! `BENCH_KAFKA_BROKERS=host:port` the latency part measures that broker instead
//! (its topics created beforehand, e.g. by `integr8tor topics create`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use integr8tor::clock::MonotonicClock;
use integr8tor::engine::latency::percentile;
use integr8tor::kafka::{
    Connection, ConnectionState, Draft, EmbeddedBroker, PublishOutcome, Publisher, PublisherConfig,
    RateLimits, StartFrom, Subscriber, SubscriberConfig, SubscriberEvent,
};
use integr8tor::{Actor, Topic};

/// Parameter paths used as keys (spread over the four partitions).
const PATHS: usize = 64;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn paths() -> Vec<String> {
    (0..PATHS)
        .map(|i| format!("gen.{}.param{}", i / 8, i % 8))
        .collect()
}

fn publisher(conn: &Connection, producer_id: &str, linger_ms: u32) -> Publisher {
    let mut config = PublisherConfig::new(producer_id, "bench-session");
    config.rate_limits = RateLimits::unlimited();
    config.linger_ms = linger_ms;
    config.flush_on_drop = Duration::from_secs(30);
    Publisher::new(conn, config, Arc::new(MonotonicClock::new())).expect("publisher")
}

fn subscriber(conn: &Connection, group: &str, start: StartFrom) -> Subscriber {
    // BENCH_KAFKA_SUBSCRIBER_X="key=value,key=value": extra librdkafka options
    let extra: Vec<(String, String)> = std::env::var("BENCH_KAFKA_SUBSCRIBER_X")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let conn = &conn.clone().with_options(extra);
    let config = SubscriberConfig::new(group, &[Topic::Params]).start_from(start);
    Subscriber::start(conn, config).expect("subscriber")
}

/// Publishes, waiting briefly whenever librdkafka's queue is full; returns the seq.
fn publish_blocking(publisher: &Publisher, draft: Draft) -> u64 {
    loop {
        match publisher.publish(draft.clone()) {
            PublishOutcome::Queued { seq } => return seq,
            PublishOutcome::QueueFull => std::thread::sleep(Duration::from_micros(200)),
            other => panic!("publish failed: {other:?}"),
        }
    }
}

fn wait_connected(sub: &Subscriber) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(SubscriberEvent::Connection(ConnectionState::Connected)) =
            sub.events().recv_timeout(Duration::from_millis(100))
        {
            return;
        }
    }
    panic!("subscriber not connected within 30 s");
}

struct Throughput {
    name: &'static str,
    messages: u64,
    seconds: f64,
    note: String,
}

impl Throughput {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }
}

/// Drains `expected` messages; returns (count, first arrival, last arrival).
fn drain(sub: &Subscriber, expected: u64, idle_limit: Duration) -> (u64, Instant, Instant) {
    let mut count = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    while count < expected {
        match sub.events().recv_timeout(idle_limit) {
            Ok(SubscriberEvent::Messages(batch)) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                count += batch.len() as u64;
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    (count, first.unwrap_or(last), last)
}

fn bench_drain(conn: &Connection, backlog: u64) -> (Throughput, Duration) {
    let publisher = {
        let conn = conn
            .clone()
            .with_option("queue.buffering.max.messages", "1000000")
            .with_option("batch.size", "1000000");
        let linger = env_number("BENCH_KAFKA_BACKLOG_LINGER", 5) as u32;
        publisher(&conn, "bench.backlog", linger)
    };
    let paths = paths();
    let t = Instant::now();
    for i in 0..backlog as usize {
        let draft = Draft::param(
            Actor::User,
            paths[i % PATHS].as_str(),
            (i % 1000) as f64 / 1000.0,
        );
        publish_blocking(&publisher, draft);
    }
    publisher.flush(Duration::from_secs(120)).expect("flush");
    let stats = publisher.stats();
    assert_eq!(stats.delivered, backlog, "{stats:?}");
    eprintln!(
        "backlog: {backlog} messages published in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    drop(publisher);

    let cpu_before = thread_cpu();
    let started = Instant::now();
    let sub = subscriber(conn, "bench-drain", StartFrom::Earliest);
    let (count, first, last) = drain(&sub, backlog, Duration::from_secs(10));
    let cpu = cpu_by_name(&cpu_before, &thread_cpu());
    let stats = sub.stop();
    let wall = last.duration_since(started).as_secs_f64();
    let per_message: Vec<String> = cpu
        .iter()
        .filter(|(_, run, _)| *run > 0.005)
        .map(|(name, run, wait)| {
            format!(
                "{name} {:.2} µs/msg (running {:.0}%, waiting for a CPU {:.0}%)",
                run * 1e6 / count.max(1) as f64,
                run / wall * 100.0,
                wait / wall * 100.0
            )
        })
        .collect();
    eprintln!("drain, per thread:\n  {}", per_message.join("\n  "));
    let join = first.duration_since(started);
    let seconds = last.duration_since(first).as_secs_f64();
    let note = if count == backlog {
        format!(
            "{} duplicates, {} malformed",
            stats.duplicates, stats.malformed
        )
    } else {
        format!("ONLY {count} of {backlog} arrived (broker dropped the oldest?)")
    };
    (
        Throughput {
            name: "drain a backlog (subscriber alone)",
            messages: count,
            seconds,
            note,
        },
        join,
    )
}

fn bench_live(conn: &Connection, messages: u64) -> Throughput {
    let sub = subscriber(conn, "bench-live", StartFrom::Latest);
    wait_connected(&sub);
    // Latest is resolved just after the assignment: give it a moment
    std::thread::sleep(Duration::from_millis(500));
    let conn2 = conn
        .clone()
        .with_option("queue.buffering.max.messages", "1000000")
        .with_option("batch.size", "1000000");
    let started = Instant::now();
    let producer = std::thread::spawn(move || {
        let publisher = publisher(&conn2, "bench.live", 5);
        let paths = paths();
        for i in 0..messages as usize {
            let draft = Draft::param(Actor::User, paths[i % PATHS].as_str(), 0.5);
            publish_blocking(&publisher, draft);
        }
        publisher.flush(Duration::from_secs(120)).expect("flush");
    });
    let (count, _first, last) = drain(&sub, messages, Duration::from_secs(10));
    producer.join().expect("producer thread");
    Throughput {
        name: "publish + subscribe at once",
        messages: count,
        seconds: last.duration_since(started).as_secs_f64(),
        note: if count == messages {
            "one publisher thread, one subscriber".to_owned()
        } else {
            format!("ONLY {count} of {messages} arrived")
        },
    }
}

struct Latency {
    rate: u64,
    linger: u32,
    sent: usize,
    received: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// The same messages through a bare librdkafka consumer in the same run.
    bare: BareLatency,
}

/// Latency of a bare librdkafka consumer (no decoding, no duplicate check,
/// no channel), reading the same topic in its own group beside the subscriber.
#[derive(Default)]
struct BareLatency {
    received: usize,
    p50: Duration,
    p99: Duration,
}

/// Polls `noise.params` with the subscriber's librdkafka settings and notes
/// when each (partition, offset) came out of `poll`, until `stop`.
fn bare_consumer(
    conn: &Connection,
    group: &str,
    stop: Arc<AtomicBool>,
    first: crossbeam_channel::Sender<()>,
) -> std::thread::JoinHandle<Vec<((i32, i64), Instant)>> {
    use integr8tor::kafka::subscriber::{
        EMBEDDED_FETCH_WAIT_MS, EMBEDDED_SESSION_TIMEOUT_MS, FETCH_QUEUE_BACKOFF_MS,
    };
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let mut defaults: Vec<(&str, String)> = vec![
        ("group.id", group.to_owned()),
        ("enable.auto.commit", "false".to_owned()),
        ("auto.offset.reset", "latest".to_owned()),
        ("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string()),
        ("enable.metrics.push", "false".to_owned()),
    ];
    if conn.is_embedded() {
        defaults.push(("fetch.wait.max.ms", EMBEDDED_FETCH_WAIT_MS.to_string()));
        defaults.push((
            "session.timeout.ms",
            EMBEDDED_SESSION_TIMEOUT_MS.to_string(),
        ));
        defaults.push(("heartbeat.interval.ms", "500".to_owned()));
    }
    let consumer: BaseConsumer = conn
        .client_config(&defaults)
        .create()
        .expect("bare consumer");
    consumer
        .subscribe(&[Topic::Params.name()])
        .expect("subscribe");
    std::thread::Builder::new()
        .name("bare-consumer".into())
        .spawn(move || {
            let mut seen = Vec::new();
            let mut told = false;
            while !stop.load(Ordering::Acquire) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    seen.push(((m.partition(), m.offset()), Instant::now()));
                    if !told {
                        let _ = first.send(());
                        told = true;
                    }
                }
            }
            seen
        })
        .expect("bare consumer thread")
}

fn bench_latency(conn: &Connection, rate: u64, linger: u32, seconds: u64) -> Latency {
    let group = format!("bench-latency-{rate}-{linger}");
    let sub = subscriber(conn, &group, StartFrom::Latest);
    wait_connected(&sub);
    let bare_stop = Arc::new(AtomicBool::new(false));
    let (bare_first, bare_ready) = crossbeam_channel::bounded(1);
    let bare = bare_consumer(
        conn,
        &format!("{group}-bare"),
        Arc::clone(&bare_stop),
        bare_first,
    );
    let producer_id = format!("bench.latency.{rate}.{linger}");
    let total = (rate * seconds) as usize;
    let done = Arc::new(AtomicBool::new(false));

    // warm up: both clients connected and the path hot before timing
    let publisher = publisher(conn, &producer_id, linger);
    let warm_up = Instant::now();
    'warm: loop {
        assert!(
            warm_up.elapsed() < Duration::from_secs(30),
            "nothing arrived within 30 s"
        );
        publisher.publish(Draft::param(Actor::User, "warm.up", 0.0));
        let until = Instant::now() + Duration::from_millis(100);
        while let Ok(event) = sub.events().recv_deadline(until) {
            if matches!(event, SubscriberEvent::Messages(_)) {
                // both consumers have their partitions
                if bare_ready.recv_deadline(until).is_ok() {
                    break 'warm;
                }
            }
        }
    }
    publisher.flush(Duration::from_secs(10)).expect("flush");
    while sub
        .events()
        .recv_timeout(Duration::from_millis(200))
        .is_ok()
    {}
    let first_seq = publisher.next_seq() as usize;
    let total = first_seq + total;
    let sent_at: Arc<Vec<std::sync::OnceLock<Instant>>> =
        Arc::new((0..total + 1).map(|_| std::sync::OnceLock::new()).collect());

    let producer = {
        let sent_at = Arc::clone(&sent_at);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let paths = paths();
            let start = Instant::now();
            let mut sent = first_seq;
            while sent < total {
                // everything due by now, then sleep to the next millisecond
                let due = (first_seq + (start.elapsed().as_secs_f64() * rate as f64) as usize + 1)
                    .min(total);
                while sent < due {
                    let draft = Draft::param(Actor::User, paths[sent % PATHS].as_str(), 0.5);
                    // stamped before the call: the message may arrive before it returns
                    let seq = publisher.next_seq();
                    let _ = sent_at[seq as usize].set(Instant::now());
                    match publisher.publish(draft) {
                        PublishOutcome::Queued { seq: queued } => assert_eq!(queued, seq),
                        other => panic!("publish failed: {other:?}"),
                    }
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            publisher.flush(Duration::from_secs(30)).expect("flush");
            done.store(true, Ordering::Release);
            sent - first_seq
        })
    };

    let cpu_before = thread_cpu();
    let timed = Instant::now();
    let expected = total - first_seq;
    let mut latencies = Vec::with_capacity(expected);
    // where each timed message sits, to find the bare consumer's copy of it
    let mut placed: std::collections::HashMap<(i32, i64), Instant> =
        std::collections::HashMap::with_capacity(expected);
    while latencies.len() < expected {
        match sub.events().recv_timeout(Duration::from_secs(5)) {
            Ok(SubscriberEvent::Messages(batch)) => {
                let now = Instant::now();
                for m in batch {
                    if let Some(at) = sent_at
                        .get(m.view().seq as usize)
                        .and_then(|cell| cell.get())
                    {
                        latencies.push(now.duration_since(*at));
                        placed.insert((m.partition, m.offset), *at);
                    }
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let sent = producer.join().expect("producer thread");
    bare_stop.store(true, Ordering::Release);
    let mut bare_latencies: Vec<Duration> = bare
        .join()
        .expect("bare consumer")
        .into_iter()
        .filter_map(|(at, got)| placed.get(&at).map(|sent| got.duration_since(*sent)))
        .collect();
    bare_latencies.sort_unstable();
    assert!(done.load(Ordering::Acquire));
    let wall = timed.elapsed().as_secs_f64();
    let busy: Vec<String> = cpu_by_name(&cpu_before, &thread_cpu())
        .iter()
        .filter(|(_, run, _)| *run / wall > 0.01)
        .map(|(name, run, wait)| {
            format!(
                "{name} {:.0}% (+{:.0}% waiting for a CPU)",
                run / wall * 100.0,
                wait / wall * 100.0
            )
        })
        .collect();
    eprintln!("  {rate}/s linger {linger}, threads: {}", busy.join(", "));
    latencies.sort_unstable();
    let pick = |q: f64| percentile(&latencies, q).unwrap_or_default();
    let bare_pick = |q: f64| percentile(&bare_latencies, q).unwrap_or_default();
    Latency {
        rate,
        linger,
        sent,
        received: latencies.len(),
        p50: pick(0.50),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        bare: BareLatency {
            received: bare_latencies.len(),
            p50: bare_pick(0.50),
            p99: bare_pick(0.99),
        },
    }
}

/// Per-call time of `publish` while the broker is down: (calls, p50, p99, max).
fn bench_outage_publish() -> (usize, Duration, Duration, Duration) {
    let (broker, conn) = fresh_broker();
    let publisher = publisher(&conn, "bench.outage", 5);
    publisher.publish(Draft::param(Actor::User, "warm.up", 0.0));
    publisher.flush(Duration::from_secs(10)).expect("flush");
    broker.set_down().expect("broker down");
    let paths = paths();
    let mut calls = Vec::with_capacity(2_000);
    for i in 0..2_000 {
        let draft = Draft::param(Actor::User, paths[i % PATHS].as_str(), 0.5);
        let t = Instant::now();
        let outcome = publisher.publish(draft);
        calls.push(t.elapsed());
        assert!(
            matches!(outcome, PublishOutcome::Queued { .. }),
            "publish during the outage: {outcome:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    broker.set_up().expect("broker up");
    publisher
        .flush(Duration::from_secs(30))
        .expect("flush after the outage");
    calls.sort_unstable();
    (
        calls.len(),
        percentile(&calls, 0.5).unwrap(),
        percentile(&calls, 0.99).unwrap(),
        *calls.last().unwrap(),
    )
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// The subscriber's own per-message work, single-threaded and without a
/// broker: decoding an envelope in place (what the subscriber does), making
/// an owned copy of one (what a consumer that keeps messages does), and
/// checking it against the duplicate window.
fn bench_components() -> (f64, f64, f64) {
    use integr8tor::kafka::DedupWindow;
    use integr8tor::{Envelope, EnvelopeView};
    let n = 1_000_000u64;
    let paths = paths();
    let payloads: Vec<Vec<u8>> = (0..4096u64)
        .map(|i| {
            Envelope::param_change(
                "0b7a3c1e-5d2f-4e8a-9c61-2f4d8e9a7b10",
                "python.gui",
                i + 1,
                1_790_000_000_000 + i as i64,
                Actor::User,
                &paths[i as usize % PATHS],
                0.5,
            )
            .encode()
        })
        .collect();
    let t = Instant::now();
    let mut checksum = 0u64;
    for i in 0..n {
        let e = EnvelopeView::decode(Topic::Params, &payloads[(i % 4096) as usize]).unwrap();
        checksum = checksum.wrapping_add(e.seq);
    }
    let view_ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    let t = Instant::now();
    for i in 0..n {
        let e = Envelope::decode(Topic::Params, &payloads[(i % 4096) as usize]).unwrap();
        checksum = checksum.wrapping_add(e.seq);
    }
    let owned_ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    let mut window = DedupWindow::default();
    let t = Instant::now();
    for seq in 1..=n {
        checksum +=
            u64::from(window.insert("0b7a3c1e-5d2f-4e8a-9c61-2f4d8e9a7b10", "python.gui", seq));
    }
    let dedup_ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    assert!(checksum > 0);
    (view_ns, owned_ns, dedup_ns)
}

/// A new embedded broker. librdkafka's mock broker finds the batch to return
/// for a fetch by walking its log from the oldest batch, so every fetch costs
/// time proportional to the batches the partition holds (up to 100,000 or
/// 5 MiB); measurements do not inherit each other's logs.
fn fresh_broker() -> (EmbeddedBroker, Connection) {
    let broker = EmbeddedBroker::start(None).expect("embedded broker");
    let conn = Connection::to_embedded(&broker);
    (broker, conn)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let backlog = env_number("BENCH_KAFKA_MESSAGES", 500_000);
    let seconds = env_number("BENCH_KAFKA_SECONDS", 5);

    // each measurement gets a fresh broker: the mock's fetch cost grows with
    // the number of batches in its log (see fresh_broker)

    let (view_ns, owned_ns, dedup_ns) = bench_components();
    eprintln!(
        "per message: decode in place {view_ns:.0} ns (owned copy {owned_ns:.0} ns), \
         duplicate check {dedup_ns:.0} ns"
    );
    let only = std::env::var("BENCH_KAFKA_ONLY").unwrap_or_default();
    let outage = bench_outage_publish();
    let outage_line = format!(
        "publish calls with the broker down: {} calls, p50 {} µs, p99 {} µs, max {} µs",
        outage.0,
        us(outage.1),
        us(outage.2),
        us(outage.3)
    );
    eprintln!("{outage_line}");
    if only == "outage" {
        println!("{outage_line}");
        return;
    }
    if only == "latency" {
        // BENCH_KAFKA_BROKERS=host:port measures another broker (topics created
        // beforehand with `integr8tor topics create --brokers host:port`)
        let external = std::env::var("BENCH_KAFKA_BROKERS").ok();
        if let Some(brokers) = &external {
            eprintln!("latency against {brokers}, not the embedded broker");
        }
        for linger in [5, 0] {
            for rate in [1_000, 10_000] {
                let (_broker, conn) = match &external {
                    Some(brokers) => (None, Connection::new(brokers.as_str())),
                    None => {
                        let (broker, conn) = fresh_broker();
                        (Some(broker), conn)
                    }
                };
                let l = bench_latency(&conn, rate, linger, seconds);
                println!(
                    "latency {rate}/s linger {linger}: p50 {} ms p99 {} ms max {} ms; bare librdkafka consumer beside it ({} messages): p50 {} ms p99 {} ms; the subscriber adds {} ms at p99 (target <= 0.2 ms)",
                    ms(l.p50),
                    ms(l.p99),
                    ms(l.max),
                    l.bare.received,
                    ms(l.bare.p50),
                    ms(l.bare.p99),
                    ms(l.p99.saturating_sub(l.bare.p99))
                );
            }
        }
        return;
    }
    let runs = env_number("BENCH_KAFKA_RUNS", 3).max(1) as usize;
    let mut drains: Vec<(Throughput, Duration)> = (0..runs)
        .map(|_| {
            let (_broker, conn) = fresh_broker();
            bench_drain(&conn, backlog)
        })
        .collect();
    if only == "drain" {
        for (drain, _) in &drains {
            println!(
                "drain: {} messages in {:.2} s = {:.0}/s ({})",
                drain.messages,
                drain.seconds,
                drain.rate(),
                drain.note
            );
        }
        return;
    }
    let mut lives: Vec<Throughput> = (0..runs)
        .map(|_| {
            let (_broker, conn) = fresh_broker();
            bench_live(&conn, backlog)
        })
        .collect();
    let range = |rates: &[f64]| {
        format!(
            "{} runs: {:.0} to {:.0}",
            rates.len(),
            rates.iter().copied().fold(f64::INFINITY, f64::min),
            rates.iter().copied().fold(0.0, f64::max)
        )
    };
    let drain_rates: Vec<f64> = drains.iter().map(|(t, _)| t.rate()).collect();
    let live_rates: Vec<f64> = lives.iter().map(Throughput::rate).collect();
    drains.sort_by(|a, b| a.0.rate().total_cmp(&b.0.rate()));
    lives.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let (mut drain, join) = drains.swap_remove(runs / 2);
    let mut live = lives.swap_remove(runs / 2);
    drain.note = format!("median of {}; {}", range(&drain_rates), drain.note);
    live.note = format!("median of {}; {}", range(&live_rates), live.note);
    let mut latencies = Vec::new();
    for linger in [5, 0] {
        for rate in [1_000, 10_000] {
            let (_broker, conn) = fresh_broker();
            let l = bench_latency(&conn, rate, linger, seconds);
            eprintln!(
                "latency {rate}/s linger {linger}: p50 {} ms p99 {} ms",
                ms(l.p50),
                ms(l.p99)
            );
            latencies.push(l);
        }
    }

    println!();
    println!(
        "Kafka layer on the embedded broker (loopback, {} cores)",
        cores()
    );
    println!();
    println!(
        "{:<38} {:>9} {:>8} {:>12}  note",
        "throughput", "messages", "seconds", "messages/s"
    );
    for t in [&drain, &live] {
        println!(
            "{:<38} {:>9} {:>8.2} {:>12.0}  {}",
            t.name,
            t.messages,
            t.seconds,
            t.rate(),
            t.note
        );
    }
    println!(
        "(the drain's group join took {} ms before the first message)",
        ms(join)
    );
    println!();
    println!("{outage_line}");
    println!();
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12} {:>10}",
        "latency, publish→app",
        "sent",
        "received",
        "p50 ms",
        "p99 ms",
        "max ms",
        "bare p50 ms",
        "bare p99 ms",
        "added p99"
    );
    for l in &latencies {
        println!(
            "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12} {:>10}",
            format!("{}/s linger.ms {}", l.rate, l.linger),
            l.sent,
            l.received,
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
            ms(l.bare.p50),
            ms(l.bare.p99),
            ms(l.p99.saturating_sub(l.bare.p99))
        );
    }
    println!(
        "(bare: a librdkafka consumer with the same settings and no decoding, duplicate check or channel, \
         reading the same messages in the same run; target: the subscriber adds <= 0.2 ms at p99)"
    );
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Per thread of this process: (tid, name, seconds running, seconds runnable
/// but waiting for a CPU), from /proc/self/task/*/schedstat.
fn thread_cpu() -> Vec<(u64, String, f64, f64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let Ok(schedstat) = std::fs::read_to_string(path.join("schedstat")) else {
            continue;
        };
        let mut fields = schedstat
            .split_whitespace()
            .map(|f| f.parse::<f64>().unwrap_or(0.0) / 1e9);
        let run = fields.next().unwrap_or(0.0);
        let wait = fields.next().unwrap_or(0.0);
        out.push((tid, name.trim().to_owned(), run, wait));
    }
    out
}

/// (name, seconds running, seconds waiting for a CPU) per thread name
/// between two snapshots, busiest first.
fn cpu_by_name(
    before: &[(u64, String, f64, f64)],
    after: &[(u64, String, f64, f64)],
) -> Vec<(String, f64, f64)> {
    let mut by_name: Vec<(String, f64, f64)> = Vec::new();
    for (tid, name, run, wait) in after {
        let (run0, wait0) = before
            .iter()
            .find(|(t, ..)| t == tid)
            .map_or((0.0, 0.0), |(_, _, r, w)| (*r, *w));
        let (run, wait) = (run - run0, wait - wait0);
        match by_name.iter_mut().find(|(n, ..)| n == name) {
            Some(entry) => {
                entry.1 += run;
                entry.2 += wait;
            }
            None => by_name.push((name.clone(), run, wait)),
        }
    }
    by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
    by_name
}
