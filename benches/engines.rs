//! Engine figures, printed (not asserted):
//!
//! 1. Replay dispatch lateness at 1x over the 60 s golden session, publishing
//!    to the embedded broker: how late each message left against its
//!    schedule, on a quiet machine and with two CPU-bound processes of
//!    normal priority competing for both cores.
//! 2. Recorder ingest from a backlog on the embedded broker to a file on
//!    disk: events per second from the first to the last event written.
//!
//! 3. The machine's own stalls, for reading the lateness maximum: a thread
//!    that only spins and reads the clock for 10 s, and the longest gaps it
//!    saw between two reads (time it was not running, whatever the code).
//!
//! `cargo bench --bench engines` (add `-- --quick` for a 15 s replay).
//! `BENCH_ENGINES_ONLY=ingest` or `=replay` runs that part alone.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integr8tor::clock::{MonotonicClock, SharedClock};
use integr8tor::engine::{
    PlayerCommand, PlayerConfig, PlayerEvent, Recorder, RecorderConfig, RecorderEvent,
    ReplayConfig, ReplayService,
};
use integr8tor::kafka::{
    Connection, Draft, EmbeddedBroker, Publisher, PublisherConfig, RateLimits, StartFrom,
};
use integr8tor::session::Session;
use integr8tor::Actor;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/v1")
        .join(name)
}

fn clock() -> SharedClock {
    Arc::new(MonotonicClock::new())
}

/// Replays the fixture at 1x into the embedded broker through the replay
/// service (real-time scheduling asked for, as `play` and the app do) and
/// prints how late each message left against its schedule.
fn replay_lateness(conn: &Connection, quick: bool, label: &str) -> f64 {
    let session = Arc::new(Session::open(&fixture("small-60s.msgpack")).expect("fixture"));
    let (first, last) = session.time_range().unwrap();
    let to = if quick { first + 15_000 } else { last };
    let defaults = ReplayConfig::default();
    let replay = ReplayService::start(
        Some(conn),
        Arc::clone(&session),
        ReplayConfig {
            player: PlayerConfig {
                to: Some(to),
                ..defaults.player
            },
            ..defaults
        },
        clock(),
    )
    .unwrap();
    println!(
        "replay at 1x of {:.1} s of small-60s.msgpack to the embedded broker, {label} ...",
        (to - first) as f64 / 1000.0
    );
    let started = Instant::now();
    replay.send(PlayerCommand::Play);
    let mut status = None;
    loop {
        match replay.events().recv_timeout(Duration::from_secs(120)) {
            Ok(PlayerEvent::Status(s)) => status = Some(s),
            Ok(PlayerEvent::Finished) => break,
            Err(_) => panic!("the player stopped reporting"),
        }
    }
    for e in replay.events().try_iter() {
        if let PlayerEvent::Status(s) = e {
            status = Some(s);
        }
    }
    let s = status.unwrap();
    println!(
        "  wall {:.2} s, {} messages dispatched, {}; lateness p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        started.elapsed().as_secs_f64(),
        s.dispatched,
        s.realtime.describe(),
        s.lateness.p50_us / 1000.0,
        s.lateness.p99_us / 1000.0,
        s.lateness.max_us / 1000.0
    );
    replay.stop(Duration::from_secs(10));
    s.lateness.max_us / 1000.0
}

/// Two CPU-bound processes of normal priority, one per core, as a synth and
/// visuals on the same laptop would be; killed when dropped.
struct Load(Vec<std::process::Child>);

impl Load {
    fn start() -> Load {
        let exe = std::env::current_exe().unwrap();
        Load(
            (0..2)
                .map(|_| {
                    std::process::Command::new(&exe)
                        .arg(BURN)
                        .spawn()
                        .expect("starting a CPU-bound process")
                })
                .collect(),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const BURN: &str = "--burn-cpu";

fn recorder_ingest(conn: &Connection, backlog: u64) {
    let publisher = Publisher::new(
        conn,
        PublisherConfig {
            rate_limits: RateLimits::unlimited(),
            linger_ms: 20,
            batch_size: 1 << 20,
            ..PublisherConfig::new("bench.synth", "ingest")
        },
        clock(),
    )
    .unwrap();
    let paths: Vec<String> = (0..24)
        .map(|i| format!("gen.{}.p{}", i / 5 + 1, i % 5))
        .collect();
    for i in 0..backlog {
        let draft = match i % 3 {
            0 | 1 => Draft::param(
                Actor::User,
                paths[(i % 24) as usize].clone(),
                (i % 1000) as f64 / 1000.0,
            ),
            _ => Draft::mod_value(
                (i % 16) as i64,
                (i % 997) as f64 / 997.0,
                Some("lfo".into()),
            ),
        };
        while !matches!(
            publisher.publish(draft.clone()),
            integr8tor::kafka::PublishOutcome::Queued { .. }
        ) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    publisher.flush(Duration::from_secs(60)).unwrap();
    subscriber_drain(conn, backlog);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let recorder = Recorder::start(
        conn,
        RecorderConfig {
            start: StartFrom::Earliest,
            stats_every: Duration::from_millis(5),
            ..RecorderConfig::new(dir.path())
        },
    )
    .unwrap();
    let mut first: Option<(Instant, u64)> = None;
    let mut last = (Instant::now(), 0u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut idle_since = Instant::now();
    while Instant::now() < deadline {
        match recorder.events().recv_timeout(Duration::from_millis(50)) {
            Ok(RecorderEvent::Stats(s)) => {
                if s.events > last.1 {
                    if first.is_none() {
                        first = Some((Instant::now(), s.events));
                    }
                    last = (Instant::now(), s.events);
                    idle_since = Instant::now();
                }
                if s.events >= backlog {
                    break;
                }
            }
            _ => {
                if first.is_some() && idle_since.elapsed() > Duration::from_secs(2) {
                    break; // the broker held less than we sent
                }
            }
        }
    }
    let summary = recorder.stop().unwrap();
    let (t0, n0) = first.expect("the recorder wrote something");
    let rate = (last.1 - n0) as f64 / last.0.duration_since(t0).as_secs_f64();
    println!(
        "recorder ingest from a backlog of {backlog} (broker kept {}): {} events, {:.1} MB written, {:.0} events/s (target >= 585,000/s; a Python recorder does 117,000/s)",
        summary.stats.events,
        summary.stats.events,
        summary.stats.bytes as f64 / 1e6,
        rate
    );
}

/// The subscriber alone on the same backlog, for comparison.
fn subscriber_drain(conn: &Connection, backlog: u64) {
    use integr8tor::kafka::{Subscriber, SubscriberConfig, SubscriberEvent};
    let sub = Subscriber::start(
        conn,
        SubscriberConfig::new(
            format!("drain-{}", std::process::id()),
            &integr8tor::engine::recorder::RECORDED_TOPICS,
        )
        .start_from(StartFrom::Earliest),
    )
    .unwrap();
    let mut n = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    while n < backlog {
        match sub.events().recv_timeout(Duration::from_secs(5)) {
            Ok(SubscriberEvent::Messages(batch)) => {
                if first.is_none() {
                    first = Some((Instant::now(), batch.len() as u64));
                }
                n += batch.len() as u64;
                last = Instant::now();
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let (t0, n0) = first.unwrap();
    println!(
        "subscriber alone on that backlog: {n} messages, {:.0} decoded messages/s",
        (n - n0) as f64 / last.duration_since(t0).as_secs_f64()
    );
}

/// Spins for `seconds` reading the clock and prints the gaps over 0.5 ms:
/// on a virtual machine the hypervisor takes the CPU away now and then, and
/// no scheduling on our side can make a dispatch less late than that.
fn machine_stalls(seconds: u64) -> f64 {
    let steal_before = steal_ms();
    let start = Instant::now();
    let mut last = start;
    let mut gaps = Vec::new();
    while last.duration_since(start) < Duration::from_secs(seconds) {
        let now = Instant::now();
        let gap = now - last;
        if gap > Duration::from_micros(500) {
            gaps.push(gap);
        }
        last = now;
    }
    gaps.sort_unstable_by(|a, b| b.cmp(a));
    let longest: Vec<String> = gaps
        .iter()
        .take(3)
        .map(|g| format!("{:.2}", g.as_secs_f64() * 1000.0))
        .collect();
    let steal = match (steal_before, steal_ms()) {
        (Some(a), Some(b)) => format!(", CPU time stolen by the hypervisor {} ms", b - a),
        _ => String::new(),
    };
    println!(
        "machine: a thread spinning for {seconds} s lost the CPU {} times for over 0.5 ms, longest {} ms{steal}",
        gaps.len(),
        if longest.is_empty() { "-".to_owned() } else { longest.join(", ") }
    );
    gaps.first().map_or(0.0, |g| g.as_secs_f64() * 1000.0)
}

/// Steal time of all CPUs so far, from `/proc/stat` (Linux), in ms.
fn steal_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?;
    // cpu user nice system idle iowait irq softirq steal ...
    let ticks: u64 = cpu.split_whitespace().nth(8)?.parse().ok()?;
    Some(ticks * 10) // USER_HZ is 100 on Linux
}

fn main() {
    if std::env::args().any(|a| a == BURN) {
        // a CPU-bound competitor (see Load)
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let broker = EmbeddedBroker::start(None).expect("embedded broker");
    let conn = Connection::to_embedded(&broker);
    let only = std::env::var("BENCH_ENGINES_ONLY").unwrap_or_default();
    if only != "replay" {
        recorder_ingest(&conn, if quick { 100_000 } else { 300_000 });
    }
    if only != "ingest" {
        let quiet = replay_lateness(&conn, quick, "quiet machine");
        let loaded = {
            let _load = Load::start();
            replay_lateness(
                &conn,
                quick,
                "two CPU-bound processes competing for both cores",
            )
        };
        let stalls = machine_stalls(10);
        println!(
            "targets: p99 <= 0.3 ms quiet and <= 1 ms under load; max <= the machine's own longest stall + 0.5 ms = {:.3} ms (quiet max {quiet:.3} ms, loaded max {loaded:.3} ms)",
            stalls + 0.5
        );
    }
}
