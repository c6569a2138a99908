//! Engine commands: `record`, `play` and `demo`. Each reaches the bus with
//! [`engine::connect`] (the local broker when no `--brokers` is given),
//! reports progress on stderr, stops cleanly on Ctrl-C / SIGTERM and prints
//! a summary on stdout.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use integr8tor::clock::{MonotonicClock, SharedClock};
use integr8tor::engine::{
    self, default_sessions_dir, replay, Demo, DemoConfig, PlayerCommand, PlayerConfig, PlayerEvent,
    Recorder, RecorderConfig, RecorderEvent, ReplayConfig, ReplayService,
};
use integr8tor::human::escape;
use integr8tor::kafka::{Endpoint, Outage, StartFrom};
use integr8tor::session::{LoadProgress, ReadOptions, Session};

use super::bus::ConnectArgs;
use super::Outcome;

/// `integr8tor record`
#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The file to write (must not exist). Default: a new file named by the
    /// start time in the sessions folder.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The sessions folder for new files.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Start from the oldest messages the brokers hold instead of new ones.
    #[arg(long)]
    from_beginning: bool,
}

/// `integr8tor play`: republishes the session's `user`, `midi` and `preset`
/// parameter changes as actor `replay`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// The session file.
    file: PathBuf,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Playback speed, 0.1 to 8.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start at this session instant (the state there is sent first).
    #[arg(long, value_name = "TS_MS", allow_negative_numbers = true)]
    from: Option<i64>,
    /// End at this session instant.
    #[arg(long, value_name = "TS_MS", allow_negative_numbers = true)]
    to: Option<i64>,
    /// Loop between --from and --to (default: the whole session).
    #[arg(long = "loop")]
    looping: bool,
    /// How long a performer's touch on the synth keeps replay off that path.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pin_ms: i64,
    /// Also replay the mod-bus values to noise.mod.
    #[arg(long)]
    replay_mod: bool,
}

/// `integr8tor demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
}

pub(crate) fn open_bus(connect: &ConnectArgs) -> anyhow::Result<Endpoint> {
    let (endpoint, route) = engine::connect(connect.brokers.as_deref(), connect.options.clone())?;
    eprintln!("{}", route.describe(endpoint.connection().brokers()));
    Ok(endpoint)
}

/// Set by SIGINT or SIGTERM.
pub(crate) fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .context("installing the signal handlers")?;
    }
    Ok(flag)
}

fn seconds(s: Option<f64>, what: &str) -> anyhow::Result<Option<Duration>> {
    match s {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => anyhow::bail!("{what} must be a number of seconds >= 0, not {s}"),
    }
}

/// A progress line on stderr: rewritten in place on a terminal, one line per
/// report otherwise (so logs stay readable).
pub(crate) struct Progress {
    tty: bool,
    last: Instant,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            last: Instant::now() - Duration::from_secs(10),
        }
    }

    pub(crate) fn due(&self) -> bool {
        self.last.elapsed()
            >= if self.tty {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(2)
            }
    }

    pub(crate) fn show(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.last = Instant::now();
    }

    /// Ends a line rewritten in place so that another line can be printed.
    fn interrupt(&mut self) {
        if self.tty {
            eprintln!();
        }
    }

    pub(crate) fn done(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

/// Runs `record`.
pub fn record(args: RecordArgs) -> anyhow::Result<Outcome> {
    let stop = stop_flag()?;
    let duration = seconds(args.duration, "--duration")?;
    let endpoint = open_bus(&args.connect)?;
    args.connect.reach(&endpoint)?;
    let mut outage = Outage::new(endpoint.connection().brokers());
    let mut config = RecorderConfig::new(args.dir.unwrap_or_else(default_sessions_dir));
    config.out = args.out;
    if args.from_beginning {
        config.start = StartFrom::Earliest;
    }
    let recorder = Recorder::start(endpoint.connection(), config)?;
    eprintln!(
        "recording noise.params, noise.events and noise.mod to {} (Ctrl-C stops)",
        escape(&recorder.path().display().to_string())
    );
    let started = Instant::now();
    let mut progress = Progress::new();
    let mut failed = None;
    while !stop.load(Ordering::Relaxed) && duration.is_none_or(|d| started.elapsed() < d) {
        match recorder.events().recv_timeout(Duration::from_millis(100)) {
            Ok(RecorderEvent::Stats(s)) if progress.due() => progress.show(&format!(
                "{:>6.1} s  {} events  {:.0}/s  {}  dup {}  filtered {}  malformed {}",
                s.elapsed_ms as f64 / 1000.0,
                s.events,
                s.events_per_s,
                integr8tor::human::bytes(s.bytes),
                s.duplicates,
                s.filtered,
                s.malformed
            )),
            Ok(RecorderEvent::Warning(w)) => {
                progress.interrupt();
                eprintln!("warning: {}", escape(&w));
            }
            Ok(RecorderEvent::Connection(state)) => {
                log::debug!("bus: {state:?}");
                if let Some(line) = outage.on_state(&state, Instant::now()) {
                    progress.interrupt();
                    eprintln!("{}", escape(&line));
                }
            }
            Ok(RecorderEvent::Failed(why)) => {
                failed = Some(why);
                break;
            }
            Ok(_) | Err(_) => {}
        }
        if recorder.is_finished() {
            break;
        }
    }
    progress.done();
    let summary = recorder.stop();
    let summary = match (summary, failed) {
        (Ok(s), None) => s,
        (Ok(_), Some(why)) => anyhow::bail!("recording failed: {why}"),
        (Err(e), _) => return Err(e).context("recording failed (everything before is on disk)"),
    };
    let s = summary.stats;
    if summary.kept {
        println!("file: {}", escape(&summary.path.display().to_string()));
    } else {
        println!("file: none (nothing was received, so no file was left)");
    }
    println!("events: {}", s.events);
    println!("snapshots: {}", s.snapshots);
    println!("initial state paths: {}", s.initial_paths);
    println!("duplicates dropped: {}", s.duplicates);
    println!("filtered (replay, telemetry): {}", s.filtered);
    println!("malformed skipped: {}", s.malformed);
    println!(
        "deleted by the broker before read: {} messages in {} gaps",
        s.gap_messages, s.gaps
    );
    println!("bytes: {}", s.bytes);
    println!("seconds: {:.1}", s.elapsed_ms as f64 / 1000.0);
    Ok(Outcome::Ok)
}

/// Loads a session with a progress line for big files.
pub fn load_session(path: &std::path::Path) -> anyhow::Result<Session> {
    let mut progress = Progress::new();
    let started = Instant::now();
    let session = Session::open_with(path, ReadOptions::default(), |p: LoadProgress| {
        if started.elapsed() > Duration::from_millis(300) && progress.due() {
            progress.show(&format!(
                "loading {}: {:.0}%",
                path.display(),
                p.bytes_read as f64 * 100.0 / p.total_bytes.max(1) as f64
            ));
        }
        ControlFlow::Continue(())
    });
    if started.elapsed() > Duration::from_millis(300) {
        progress.done();
    }
    Ok(session?)
}

/// Runs `play`.
pub fn play(args: PlayArgs) -> anyhow::Result<Outcome> {
    let stop = stop_flag()?;
    if !replay::speed_in_range(args.speed) {
        anyhow::bail!("--speed must be between 0.1 and 8, not {}", args.speed);
    }
    let session = Arc::new(load_session(&args.file)?);
    let Some((first, last)) = session.time_range() else {
        anyhow::bail!("{}: no events to play", args.file.display());
    };
    let from = args.from.unwrap_or(first);
    let to = args.to.unwrap_or(last);
    if to < from {
        anyhow::bail!("--to ({to}) is before --from ({from})");
    }
    let endpoint = open_bus(&args.connect)?;
    args.connect.reach(&endpoint)?;
    let clock: SharedClock = Arc::new(MonotonicClock::new());
    let defaults = ReplayConfig::default();
    let config = ReplayConfig {
        player: PlayerConfig {
            speed: args.speed,
            pin_ms: args.pin_ms,
            replay_mod: args.replay_mod,
            from: Some(from),
            to: Some(to),
            loop_range: args.looping.then_some((from, to)),
            ..defaults.player
        },
        ..defaults
    };
    let replay = ReplayService::start(Some(endpoint.connection()), session, config, clock)?;
    replay.send(PlayerCommand::Play);
    eprintln!(
        "playing {} ({:.1} s) at {}x{} (Ctrl-C stops)",
        args.file.display(),
        (to - from) as f64 / 1000.0,
        args.speed,
        if args.looping { ", looping" } else { "" }
    );
    let mut progress = Progress::new();
    let mut last = None;
    let mut finished = false;
    while !stop.load(Ordering::Relaxed) && !finished {
        match replay.events().recv_timeout(Duration::from_millis(100)) {
            Ok(PlayerEvent::Status(s)) => {
                if last.is_none() {
                    eprintln!("{}", s.realtime.describe());
                }
                if progress.due() {
                    let pins = if s.pins.is_empty() {
                        String::new()
                    } else {
                        format!("  pinned {}", s.pins.len())
                    };
                    progress.show(&format!(
                        "{:>7.1} / {:.1} s  sent {}  skipped (pinned) {}  late p99 {:.2} ms{pins}",
                        (s.position_ms - from) as f64 / 1000.0,
                        (to - from) as f64 / 1000.0,
                        s.dispatched,
                        s.skipped_pinned,
                        s.lateness.p99_us / 1000.0
                    ));
                }
                last = Some(s);
            }
            Ok(PlayerEvent::Finished) => finished = true,
            Err(_) => {}
        }
    }
    replay.send(PlayerCommand::Pause);
    progress.done();
    let summary = replay.stop(Duration::from_secs(5));
    if let Some(s) = &last {
        let state = if finished { "finished" } else { "stopped" };
        println!("{state} at {} ms", s.position_ms);
        println!("sent: {}", s.dispatched);
        println!("skipped (pinned): {}", s.skipped_pinned);
        println!(
            "lateness: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            s.lateness.p50_us / 1000.0,
            s.lateness.p99_us / 1000.0,
            s.lateness.max_us / 1000.0
        );
    }
    println!(
        "delivered: {}, not delivered: {}",
        summary.delivered(),
        summary.not_delivered()
    );
    let sent = last.as_ref().map_or(0, |s| s.dispatched);
    if sent > 0 && summary.delivered() == 0 {
        anyhow::bail!(
            "none of the {sent} replayed messages reached the broker at {}",
            endpoint.connection().brokers()
        );
    }
    Ok(Outcome::Ok)
}

/// Runs `demo`.
pub fn demo(args: DemoArgs) -> anyhow::Result<Outcome> {
    let stop = stop_flag()?;
    let duration = seconds(args.duration, "--duration")?;
    let endpoint = open_bus(&args.connect)?;
    args.connect.reach(&endpoint)?;
    let demo = Demo::start(
        endpoint.connection(),
        DemoConfig {
            duration,
            ..DemoConfig::default()
        },
    )?;
    eprintln!("demo synth publishing on all five topics (Ctrl-C stops)");
    let mut progress = Progress::new();
    while !stop.load(Ordering::Relaxed) && !demo.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if progress.due() {
            let s = demo.stats();
            progress.show(&format!(
                "params {} (preset {})  mod {}  levels {}  events {}",
                s.user_params + s.preset_params,
                s.preset_params,
                s.mod_values,
                s.levels,
                s.events
            ));
        }
    }
    progress.done();
    let s = demo.stop();
    println!("user params: {}", s.user_params);
    println!("preset params: {}", s.preset_params);
    println!("mod values: {}", s.mod_values);
    println!("levels: {}", s.levels);
    println!("events: {}", s.events);
    println!("states: {}", s.states);
    println!("not queued: {}", s.not_queued);
    Ok(Outcome::Ok)
}
