//! The recorder: `noise.params`, `noise.events` and `noise.mod` to a session
//! file, by the writing rules of docs/formats.md section 3.
//!
//! A [`Subscriber`] decodes and drops duplicates; the recorder thread drops
//! what the actor rules exclude (`replay`, `telemetry`) and appends the rest,
//! byte for byte as received, through a [`SessionWriter`] that hands its
//! buffer to the OS every [`FLUSH_INTERVAL`](crate::session::FLUSH_INTERVAL).
//! A killed process therefore loses only what arrived in about the last
//! flush interval, and the file loads as it is. [`Recorder::stop`] stops the
//! subscriber, writes everything it had already handed over, and fsyncs.
//!
//! A recording started at the latest messages is complete from its first
//! instant: before writing anything it reads what `noise.params` retains up
//! to the recording's start offsets, and begins its state with the last value
//! of every path there (and with [`RecorderConfig::initial_state`], what the
//! caller already knows), so the first snapshot holds the whole known state.
//! Keys are stored exactly as received. Messages the broker deleted before
//! they were read are counted as a gap and reported with topic and
//! partition; a recording that received nothing leaves no file.

use crate::thread::NamedThread;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::EngineError;
use crate::kafka::{
    read_retained_params, unix_ms_now, Connection, ConnectionState, StartFrom, Subscriber,
    SubscriberConfig, SubscriberEvent,
};
use crate::session::writer::SessionWriter;
use crate::Topic;

/// The topics a recorder consumes (docs/formats.md section 3, rule 1).
pub const RECORDED_TOPICS: [Topic; 3] = [Topic::Params, Topic::Events, Topic::Mod];

/// Where sessions go unless told otherwise: the platform's data directory
/// plus `integr8tor/sessions` (e.g. `~/.local/share/integr8tor/sessions`).
pub fn default_sessions_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("integr8tor")
        .join("sessions")
}

/// How a recording starts.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Folder for new files named by their start time.
    pub sessions_dir: PathBuf,
    /// An explicit file instead (must not exist).
    pub out: Option<PathBuf>,
    /// Where to start when the group has no committed offset.
    pub start: StartFrom,
    /// Consumer group.
    pub group_id: String,
    /// Snapshot interval (docs/formats.md: 5,000 ms).
    pub snapshot_interval_ms: i64,
    /// How often stats are reported.
    pub stats_every: Duration,
    /// Values the caller already knows (path, value), e.g. the app's live
    /// view: the state starts with them; what `noise.params` retains wins.
    pub initial_state: Vec<(String, f64)>,
    /// Read what `noise.params` retains before a [`StartFrom::Latest`]
    /// recording starts (docs/formats.md section 3, rule 4).
    pub read_retained: bool,
    /// How long reading the retained history may take before the recording
    /// starts with what was read (a warning says so).
    pub retained_timeout: Duration,
}

impl RecorderConfig {
    /// Defaults: a new file in `sessions_dir`, from the latest messages, a
    /// fresh consumer group.
    pub fn new(sessions_dir: impl Into<PathBuf>) -> RecorderConfig {
        RecorderConfig {
            sessions_dir: sessions_dir.into(),
            out: None,
            start: StartFrom::Latest,
            group_id: format!(
                "integr8tor-recorder-{}-{}",
                std::process::id(),
                unix_ms_now()
            ),
            snapshot_interval_ms: crate::session::writer::SNAPSHOT_INTERVAL_MS,
            stats_every: Duration::from_millis(250),
            initial_state: Vec::new(),
            read_retained: true,
            retained_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of a recording.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RecorderStats {
    /// Since the start.
    pub elapsed_ms: u64,
    /// Event records written.
    pub events: u64,
    /// Snapshot records written.
    pub snapshots: u64,
    /// Events per second over the last report interval.
    pub events_per_s: f64,
    /// Bytes written (buffered or on disk).
    pub bytes: u64,
    /// Duplicates dropped by the subscriber.
    pub duplicates: u64,
    /// Undecodable messages skipped.
    pub malformed: u64,
    /// Dropped by the actor rules (`replay`, `telemetry`).
    pub filtered: u64,
    /// Messages the brokers deleted before they were read (see [`crate::kafka::Gap`]).
    pub gap_messages: u64,
    /// Times reading resumed after such a gap.
    pub gaps: u64,
    /// Paths the recording's state started with (retained history and
    /// [`RecorderConfig::initial_state`]).
    pub initial_paths: u64,
}

/// What the recorder reports while running.
#[derive(Debug, Clone, PartialEq)]
pub enum RecorderEvent {
    /// Progress.
    Stats(RecorderStats),
    /// The link to the brokers changed.
    Connection(ConnectionState),
    /// A message was skipped or something failed; the text says what and where.
    Warning(String),
    /// Writing failed: the recording has stopped (everything before is on disk).
    Failed(String),
}

/// How a recording ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderSummary {
    /// The file.
    pub path: PathBuf,
    /// Final counters.
    pub stats: RecorderStats,
    /// False when nothing was received: the empty file was removed.
    pub kept: bool,
}

/// A running recording. Dropping it stops it cleanly (see [`Recorder::stop`]).
pub struct Recorder {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    events: Receiver<RecorderEvent>,
    thread: NamedThread<Result<RecorderSummary, EngineError>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates the file and starts the recorder thread, which reads what
    /// `noise.params` retains (see the module doc) and then consumes. Returns
    /// at once: a slow or unreachable broker never holds up the caller (the
    /// app's control thread); what the history read could not do arrives as
    /// a [`RecorderEvent::Warning`], a failure to start consuming as
    /// [`RecorderEvent::Failed`].
    pub fn start(connection: &Connection, config: RecorderConfig) -> Result<Recorder, EngineError> {
        let path = match &config.out {
            Some(p) => p.clone(),
            None => new_session_path(&config.sessions_dir, unix_ms_now()),
        };
        let writer =
            SessionWriter::create(&path)?.with_snapshot_interval(config.snapshot_interval_ms);
        let (tx, events) = crossbeam_channel::bounded(256);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            writer,
            tx,
            stats: RecorderStats::default(),
            started: Instant::now(),
            stats_every: config.stats_every,
            malformed_lines: LineLimit::new(MALFORMED_LINES_PER_S),
        };
        let thread = {
            let stop = Arc::clone(&stop);
            let connection = connection.clone();
            NamedThread::spawn("recorder", move || {
                worker.start_and_run(&connection, &config, stop)
            })
            .map_err(|e| EngineError::Io {
                context: "starting the recorder thread".to_owned(),
                error: e,
            })?
        };
        Ok(Recorder {
            path,
            stop,
            events,
            thread,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Progress and warnings.
    pub fn events(&self) -> &Receiver<RecorderEvent> {
        &self.events
    }

    /// Whether the recorder thread has ended (after a write failure).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stops consuming, writes what was already received, fsyncs, and
    /// returns the final counters.
    pub fn stop(mut self) -> Result<RecorderSummary, EngineError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<RecorderSummary, EngineError> {
        self.stop.store(true, Ordering::Release);
        self.thread
            .join()
            .unwrap_or_else(|e| Err(EngineError::Stopped(e.to_string())))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.thread.is_joinable() {
            if let Err(e) = self.shutdown() {
                log::error!("recorder: {e}");
            }
        }
    }
}

/// `DIR/session-YYYY-MM-DD-HHMMSS.msgpack` (local time) for a start time, with a
/// `-2`, `-3`, ... suffix if that name is taken.
pub fn new_session_path(dir: &Path, unix_ms: i64) -> PathBuf {
    let stem = format!("session-{}", crate::human::file_stamp(unix_ms));
    let mut path = dir.join(format!("{stem}.msgpack"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{stem}-{n}.msgpack"));
        n += 1;
    }
    path
}

/// At most this many malformed-message warnings a second; the rest are counted.
const MALFORMED_LINES_PER_S: u32 = 5;

/// Lets a few lines a second through and counts the ones it holds back.
#[derive(Debug)]
pub(crate) struct LineLimit {
    per_window: u32,
    window_start: Option<Instant>,
    in_window: u32,
    held_back: u64,
}

impl LineLimit {
    pub(crate) fn new(per_second: u32) -> LineLimit {
        LineLimit {
            per_window: per_second,
            window_start: None,
            in_window: 0,
            held_back: 0,
        }
    }

    /// Whether a line may go out at `now`; when it may, also how many were
    /// held back since the last one that went out.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        let fresh = self
            .window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window < self.per_window {
            self.in_window += 1;
            Some(std::mem::take(&mut self.held_back))
        } else {
            self.held_back += 1;
            None
        }
    }
}

struct Worker {
    writer: SessionWriter,
    tx: Sender<RecorderEvent>,
    stats: RecorderStats,
    started: Instant,
    stats_every: Duration,
    malformed_lines: LineLimit,
}

impl Worker {
    /// The recording's initial state (retained history plus what the caller
    /// knows), then the subscriber from the offsets the history ended at.
    fn start_and_run(
        mut self,
        connection: &Connection,
        config: &RecorderConfig,
        stop: Arc<AtomicBool>,
    ) -> Result<RecorderSummary, EngineError> {
        let mut start_offsets = Vec::new();
        let mut initial = config.initial_state.clone();
        if config.start == StartFrom::Latest && config.read_retained {
            match read_retained_params(connection, config.retained_timeout, &stop) {
                Ok(retained) => {
                    if !retained.complete {
                        self.warn(format!(
                            "read {} retained noise.params messages before giving up after {:.0} s: the first snapshot may miss older paths",
                            retained.messages,
                            config.retained_timeout.as_secs_f64()
                        ));
                    }
                    start_offsets = retained
                        .ends
                        .iter()
                        .map(|&(p, o)| (Topic::Params, p, o))
                        .collect();
                    initial.extend(retained.values);
                }
                Err(e) => self.warn(format!(
                    "could not read what noise.params retains ({e}): the first snapshot holds only what is known"
                )),
            }
        }
        self.stats.initial_paths = {
            let mut paths: Vec<&str> = initial.iter().map(|(p, _)| p.as_str()).collect();
            paths.sort_unstable();
            paths.dedup();
            paths.len() as u64
        };
        self.writer = self
            .writer
            .with_initial_state(initial.iter().map(|(p, v)| (p.as_bytes(), *v)));
        let subscriber = Subscriber::start(
            connection,
            SubscriberConfig {
                thread_name: "recorder-consumer".to_owned(),
                start_offsets,
                ..SubscriberConfig::new(config.group_id.clone(), &RECORDED_TOPICS)
                    .start_from(config.start)
            },
        );
        match subscriber {
            Ok(subscriber) => self.run(subscriber, stop),
            Err(e) => {
                let e = EngineError::from(e);
                // the file holds nothing yet: leave none
                let path = self.writer.path().to_owned();
                drop(self.writer);
                let _ = std::fs::remove_file(&path);
                let _ = self.tx.try_send(RecorderEvent::Failed(e.to_string()));
                Err(e)
            }
        }
    }

    fn warn(&self, warning: String) {
        log::warn!("recorder: {warning}");
        let _ = self.tx.try_send(RecorderEvent::Warning(warning));
    }

    fn run(
        mut self,
        subscriber: Subscriber,
        stop: Arc<AtomicBool>,
    ) -> Result<RecorderSummary, EngineError> {
        let incoming = subscriber.events().clone();
        let mut last_report = Instant::now();
        let mut events_at_report = 0;
        let result = loop {
            if stop.load(Ordering::Acquire) {
                break Ok(());
            }
            match incoming.recv_timeout(Duration::from_millis(20)) {
                Ok(event) => {
                    if let Err(e) = self.apply(event) {
                        break Err(e);
                    }
                    // take whatever else is ready before looking at the clock
                    let mut failed = None;
                    for event in incoming.try_iter().take(64) {
                        if let Err(e) = self.apply(event) {
                            failed = Some(e);
                            break;
                        }
                    }
                    if let Some(e) = failed {
                        break Err(e);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    break Err(EngineError::Stopped("the consumer thread ended".into()))
                }
            }
            // the loop wakes at least every 20 ms, so a quiet bus still
            // gets the buffer on disk within the flush interval
            if let Err(e) = self.writer.flush_if_due(Instant::now()) {
                break Err(e.into());
            }
            if last_report.elapsed() >= self.stats_every {
                let dt = last_report.elapsed().as_secs_f64();
                self.refresh(&subscriber);
                self.stats.events_per_s = (self.stats.events - events_at_report) as f64 / dt;
                events_at_report = self.stats.events;
                last_report = Instant::now();
                let _ = self.tx.try_send(RecorderEvent::Stats(self.stats));
            }
        };
        // stop consuming; what the consumer already handed over is still queued
        let final_counts = subscriber.stop();
        let mut result = result;
        if result.is_ok() {
            for event in incoming.try_iter() {
                if let Err(e) = self.apply(event) {
                    result = Err(e);
                    break;
                }
            }
        }
        self.stats.duplicates = final_counts.duplicates;
        self.stats.malformed = final_counts.malformed;
        self.stats.gap_messages = final_counts.gap_messages;
        self.stats.gaps = final_counts.gaps;
        let path = self.writer.path().to_owned();
        let finished = self.writer.finish();
        // nothing received: no file rather than an empty one no reader takes
        let kept = match &finished {
            Ok(w) if w.events == 0 && w.bytes == 0 => match std::fs::remove_file(&path) {
                Ok(()) => false,
                Err(e) => {
                    log::warn!("recorder: removing the empty {}: {e}", path.display());
                    true
                }
            },
            _ => true,
        };
        let written = match (&finished, &result) {
            (Ok(w), _) => Some(*w),
            _ => None,
        };
        if let Some(w) = written {
            self.stats.events = w.events;
            self.stats.snapshots = w.snapshots;
            self.stats.bytes = w.bytes;
        }
        self.stats.elapsed_ms = self.started.elapsed().as_millis() as u64;
        let outcome = result.and(finished.map_err(EngineError::from));
        match outcome {
            Ok(_) => {
                let _ = self.tx.try_send(RecorderEvent::Stats(self.stats));
                Ok(RecorderSummary {
                    path,
                    stats: self.stats,
                    kept,
                })
            }
            Err(e) => {
                let _ = self.tx.try_send(RecorderEvent::Failed(e.to_string()));
                Err(e)
            }
        }
    }

    fn refresh(&mut self, subscriber: &Subscriber) {
        let s = subscriber.stats();
        self.stats.duplicates = s.duplicates;
        self.stats.malformed = s.malformed;
        self.stats.gap_messages = s.gap_messages;
        self.stats.gaps = s.gaps;
        let w = self.writer.stats();
        self.stats.events = w.events;
        self.stats.snapshots = w.snapshots;
        self.stats.bytes = w.bytes;
        self.stats.elapsed_ms = self.started.elapsed().as_millis() as u64;
    }

    fn apply(&mut self, event: SubscriberEvent) -> Result<(), EngineError> {
        match event {
            SubscriberEvent::Messages(batch) => {
                for m in &batch {
                    if !m.actor.is_recorded() {
                        self.stats.filtered += 1;
                        continue;
                    }
                    // the key exactly as received (docs/formats.md section 3, rule 3)
                    self.writer.append_checked(
                        m.topic,
                        m.key_bytes(),
                        m.payload(),
                        m.ts_ms,
                        m.param(),
                    )?;
                }
            }
            SubscriberEvent::Malformed(m) => {
                if let Some(held_back) = self.malformed_lines.admit(Instant::now()) {
                    let more = if held_back > 0 {
                        format!(" ({held_back} more malformed messages not shown)")
                    } else {
                        String::new()
                    };
                    let _ = self.tx.try_send(RecorderEvent::Warning(format!(
                        "{}[{}]@{}: skipped: {}{more}",
                        crate::human::escape(&m.topic),
                        m.partition,
                        m.offset,
                        crate::human::escape(&m.error)
                    )));
                }
            }
            SubscriberEvent::Gap(gap) => {
                self.stats.gap_messages += gap.missing();
                self.stats.gaps += 1;
                let _ = self.tx.try_send(RecorderEvent::Warning(gap.to_string()));
            }
            SubscriberEvent::Connection(state) => {
                let _ = self.tx.try_send(RecorderEvent::Connection(state));
            }
            SubscriberEvent::ConsumeError { error } => {
                let _ = self.tx.try_send(RecorderEvent::Warning(error));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_name_gets_a_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let first = new_session_path(dir.path(), 0);
        let stem = format!("session-{}", crate::human::file_stamp(0));
        assert!(first.ends_with(format!("{stem}.msgpack")));
        std::fs::write(&first, b"").unwrap();
        let second = new_session_path(dir.path(), 0);
        assert!(second.ends_with(format!("{stem}-2.msgpack")));
    }
}
