//! The messages between the window and its workers, and the small workers
//! (session loader, sessions-folder scanner, file dialog, signal watcher).
//!
//! Every worker is a named thread that owns what it touches and reports on
//! one channel of [`WorkerMsg`]; the window sends [`Command`]s to the control
//! thread (`control.rs`). Nothing here knows about egui: a worker wakes the
//! window through a [`Waker`], a plain callback.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;

use super::timeline::lod::{Series, Summary};
use super::timeline::markers::{session_markers, Marker};
pub use crate::engine::{PlayState, PlayerCommand, PlayerStatus};
use crate::kafka::StartFrom;
use crate::session::loaded::EventEntry;
use crate::session::{
    LoadError, LoadProgress, ReadError, ReadOptions, ReadReport, Reader, RecordRef, Session,
};

/// Asks the window to draw a new frame soon (a worker has news for it).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// A waker that does nothing (tests, and before the window exists).
pub fn no_waker() -> Waker {
    Arc::new(|| {})
}

/// Where the live view and recorder connect, as the performer set it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BusSettings {
    /// Bootstrap servers; `None` or blank starts the embedded broker and the demo.
    pub brokers: Option<String>,
    /// librdkafka pass-through options (`-X key=value`).
    pub options: Vec<(String, String)>,
    /// Consumer group of the recorder (the live view derives its own from it).
    pub group_id: String,
    /// Where a group with no committed offset starts.
    pub start: StartFrom,
}

impl BusSettings {
    /// The brokers if a real cluster is configured.
    pub fn external_brokers(&self) -> Option<&str> {
        self.brokers
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
    }
}

/// What a recording is set up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    /// Folder new sessions are written to.
    pub sessions_dir: PathBuf,
    /// Interval between snapshot records.
    pub snapshot_interval_ms: i64,
}

/// What the window asks the control thread to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// (Re)connect the live view, publisher and recorder; replaces the current bus.
    Connect(BusSettings),
    /// Start recording the bus into a new session file.
    StartRecording(RecordSettings),
    /// Finalize the recording in progress.
    StopRecording,
    /// Load a session file for playback (replacing the loaded one).
    Open {
        /// The file.
        path: PathBuf,
        /// Keep what is readable before a corrupt offset.
        recover: bool,
    },
    /// Cancel a load in progress.
    CancelLoad,
    /// A command for the player of the loaded session: transport, mute and
    /// solo (a touch goes as [`Command::Touch`], which also publishes the value).
    Transport(PlayerCommand),
    /// The performer moved a value: pin it (during playback) and publish it with actor `user`.
    Touch {
        /// Parameter path.
        path: String,
        /// New normalized value.
        value: f64,
        /// The pointer still holds it (a drag): pinned until [`Command::Release`].
        held: bool,
    },
    /// The performer let go of a held path: its pin runs out a pin duration from now.
    Release {
        /// Parameter path.
        path: String,
    },
    /// How long a touch pins a path during playback (applies to the next loaded player too).
    SetPinMs(i64),
    /// List the session files of a folder (in the background).
    ScanSessions(PathBuf),
    /// Start, change or stop the OSC and WebSocket bridges.
    Bridges(super::bridges::BridgeSettings),
    /// Stop everything cleanly (finalize a recording) and end the thread.
    Shutdown,
}

/// How the link to the brokers is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected and not trying.
    Idle,
    /// Opening the endpoint (starting the embedded broker, creating clients).
    Connecting,
    /// Talking to the brokers.
    Connected,
    /// The brokers are away; the clients keep retrying.
    Retrying(String),
    /// The clients could not even be created (bad settings).
    Failed(String),
}

/// One live message, reduced to what the window shows.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveMsg {
    /// A parameter change.
    Param {
        /// Path.
        path: String,
        /// Normalized value.
        value: f64,
        /// The value in real units, if the producer sent one.
        value_mapped: Option<f64>,
        /// Actor name (`user`, `replay`, ...).
        actor: String,
        /// Producer id.
        producer: String,
        /// Envelope time.
        ts_ms: i64,
    },
    /// A mod bus value.
    Mod {
        /// Bus number (0..16).
        bus: i64,
        /// Value.
        value: f64,
        /// Envelope time.
        ts_ms: i64,
    },
    /// A level meter.
    Audio {
        /// Source (`gen.1`, `master`).
        source: String,
        /// Peak.
        peak: f64,
        /// RMS, if sent.
        rms: Option<f64>,
    },
    /// A sparse event.
    Event {
        /// Envelope time.
        ts_ms: i64,
        /// Event type.
        event_type: String,
        /// Its other fields, in words (`note=60 velocity=100`).
        detail: String,
        /// Actor name.
        actor: String,
        /// The event as a timeline marker.
        marker: Marker,
    },
    /// A full state (preset, routing).
    State {
        /// State key.
        key: String,
        /// Envelope time.
        ts_ms: i64,
    },
}

/// Counters of the bus clients since they connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusCounters {
    /// Messages read from Kafka by the live view.
    pub received: u64,
    /// Duplicates dropped by the live view.
    pub duplicates: u64,
    /// Undecodable messages skipped.
    pub malformed: u64,
    /// Published messages that were never delivered.
    pub delivery_failed: u64,
    /// Published messages acknowledged.
    pub delivered: u64,
}

/// Recorder figures while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RecordingStats {
    /// Time since the recording started.
    pub elapsed_ms: i64,
    /// Events written.
    pub events: u64,
    /// Recent write rate.
    pub events_per_s: f64,
    /// File size.
    pub bytes: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Malformed messages skipped.
    pub malformed: u64,
    /// Messages not recorded by the actor rules (`replay`, `telemetry`).
    pub filtered: u64,
    /// Messages the broker deleted before the recorder read them.
    pub gap_messages: u64,
}

/// A session loaded for playback: its facts, the loaded tables, and what
/// the timeline draws from (a min/max pyramid per lane, the markers), all
/// made on the loader thread.
#[derive(Debug, Clone)]
pub struct LoadedSession {
    /// Unique per load (caches are keyed by it, never by an address).
    pub id: u64,
    /// The file.
    pub path: PathBuf,
    /// The loaded session (events, lanes, state at any instant).
    pub session: Arc<Session>,
    /// Parameter paths, sorted.
    pub param_paths: Vec<String>,
    /// First and last `ts_ms` (equal when there is one event; `(0, 0)` when none).
    pub range: (i64, i64),
    /// Event records.
    pub events: u64,
    /// Snapshot instants, in file order.
    pub snapshots: Vec<i64>,
    /// File size when loaded.
    pub bytes: u64,
    /// What the reader met (dropped tail, recovered corruption).
    pub report: ReadReport,
    /// Whether it was loaded with recovery.
    pub recovered: bool,
    /// Per lane (by name id): the pyramid of its values.
    pub summaries: Arc<Vec<Summary>>,
    /// Every `noise.events` record as a marker, in time order.
    pub markers: Arc<Vec<Marker>>,
}

impl LoadedSession {
    /// Gathers the facts of a loaded session.
    pub fn new(session: Arc<Session>, recovered: bool) -> LoadedSession {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let range = session.time_range().unwrap_or((0, 0));
        let ev = session.events();
        let summaries = (0..session.name_count() as u32)
            .map(|id| {
                let lane = session.lane(id);
                Summary::build(lane.len(), |i| ev[lane[i] as usize].value)
            })
            .collect();
        LoadedSession {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            summaries: Arc::new(summaries),
            markers: Arc::new(session_markers(&session)),
            path: session.path().to_path_buf(),
            param_paths: session.param_paths().map(str::to_owned).collect(),
            range,
            events: session.events().len() as u64,
            snapshots: session.snapshots().iter().map(|s| s.ts_ms).collect(),
            bytes: session.file_bytes(),
            report: session.read_report().clone(),
            recovered,
            session,
        }
    }

    /// Duration from the first to the last event.
    pub fn duration_ms(&self) -> i64 {
        self.range.1 - self.range.0
    }

    /// The lane of a path as a series for drawing.
    pub fn lane(&self, path: &str) -> Option<SessionLane<'_>> {
        let id = self.session.name_id(path)?;
        Some(SessionLane {
            events: self.session.events(),
            lane: self.session.lane(id),
            summary: self.summaries.get(id as usize)?,
        })
    }
}

/// One lane of a loaded session as a [`Series`].
#[derive(Debug, Clone, Copy)]
pub struct SessionLane<'a> {
    events: &'a [EventEntry],
    /// Indices into the session's events.
    pub lane: &'a [u32],
    summary: &'a Summary,
}

impl SessionLane<'_> {
    /// The session event behind lane index `i`.
    pub fn entry(&self, i: usize) -> &EventEntry {
        &self.events[self.lane[i] as usize]
    }
}

impl Series for SessionLane<'_> {
    fn first(&self) -> usize {
        0
    }
    fn end(&self) -> usize {
        self.lane.len()
    }
    fn ts(&self, i: usize) -> i64 {
        self.events[self.lane[i] as usize].ts_ms
    }
    fn value(&self, i: usize) -> f64 {
        self.events[self.lane[i] as usize].value
    }
    fn summary(&self) -> &Summary {
        self.summary
    }
}

/// Why a load failed, for the performer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// The file.
    pub path: PathBuf,
    /// The reader's message.
    pub message: String,
    /// The corrupt byte offset, when the file is damaged there.
    pub offset: Option<u64>,
    /// Whether loading with recovery would keep something.
    pub recoverable: bool,
}

/// One file of the sessions folder.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFileInfo {
    /// The file.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// Last modification (Unix ms), if known.
    pub modified_ms: Option<i64>,
    /// First event's `ts_ms`, if any.
    pub first_ts_ms: Option<i64>,
    /// From first to last event.
    pub duration_ms: i64,
    /// Event records.
    pub events: u64,
    /// What is wrong with it, if anything (it is listed anyway).
    pub problem: Option<String>,
}

/// What workers tell the window.
#[derive(Debug, Clone)]
pub enum WorkerMsg {
    /// Opening a bus endpoint.
    Connecting {
        /// Bootstrap servers (empty while an embedded broker starts).
        brokers: String,
        /// Whether the embedded broker is being started.
        embedded: bool,
    },
    /// The clients are created; the link state follows.
    Connected {
        /// Bootstrap servers.
        brokers: String,
        /// The embedded broker is in use.
        embedded: bool,
        /// The demo engine runs.
        demo: bool,
    },
    /// The link changed.
    Link(LinkState),
    /// New live messages.
    Live(Vec<LiveMsg>),
    /// The bus counters now.
    Counters(BusCounters),
    /// A problem worth showing (non-fatal).
    Notice(String),
    /// A recording started, into this file.
    RecordingStarted(PathBuf),
    /// Recorder figures.
    RecordingStats(RecordingStats),
    /// A recording was finalized.
    RecordingStopped {
        /// The file.
        path: PathBuf,
        /// Events written.
        events: u64,
        /// File size.
        bytes: u64,
    },
    /// The recorder failed (it has stopped).
    RecordingFailed(String),
    /// A load began.
    LoadStarted(PathBuf),
    /// Load progress.
    LoadProgress {
        /// Bytes read.
        bytes_read: u64,
        /// File size.
        total_bytes: u64,
    },
    /// A session is loaded and its player is ready.
    Loaded(LoadedSession),
    /// The load failed.
    LoadFailed(LoadFailure),
    /// The load was cancelled.
    LoadCancelled,
    /// The player's state, as the engine reports it on every change.
    Playback(PlayerStatus),
    /// The player reported an error.
    PlaybackError(String),
    /// Playback reached the end.
    PlaybackFinished,
    /// A folder scan began.
    ScanStarted(PathBuf),
    /// One file of the folder.
    SessionListed(SessionFileInfo),
    /// The scan is done.
    ScanDone,
    /// The file dialog returned a file.
    FileChosen(PathBuf),
    /// The performer chose a sessions folder in the folder dialog (Settings).
    FolderChosen(PathBuf),
    /// No system dialog could be shown (why): the window offers a path field instead.
    DialogUnavailable(String),
    /// SIGTERM or SIGINT: close the window (finalizing any recording).
    Terminate,
    /// The bridges' counters and errors.
    Bridges(super::bridges::BridgeStatus),
}

/// Sends to the window and wakes it. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: Sender<WorkerMsg>,
    waker: Waker,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox over a channel and a waker.
    pub fn new(tx: Sender<WorkerMsg>, waker: Waker) -> Outbox {
        Outbox { tx, waker }
    }

    /// Sends a message; false when the window is gone.
    pub fn send(&self, msg: WorkerMsg) -> bool {
        let ok = self.tx.send(msg).is_ok();
        (self.waker)();
        ok
    }
}

/// Loads a session on a named thread, reporting progress; `cancel` stops it.
/// The result goes to `done` (the control thread, which starts the player).
pub fn spawn_loader(
    path: PathBuf,
    recover: bool,
    cancel: Arc<AtomicBool>,
    outbox: Outbox,
    done: Sender<Result<LoadedSession, WorkerMsg>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("session-loader".to_owned())
        .spawn(move || {
            outbox.send(WorkerMsg::LoadStarted(path.clone()));
            let result = load_session(&path, recover, &cancel, &outbox);
            let _ = done.send(result);
        })
}

/// Progress messages are sent at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

// one result per load, sent once over a channel: its size does not matter
#[allow(clippy::result_large_err)]
fn load_session(
    path: &Path,
    recover: bool,
    cancel: &AtomicBool,
    outbox: &Outbox,
) -> Result<LoadedSession, WorkerMsg> {
    let mut last = Instant::now() - PROGRESS_EVERY;
    let progress = |p: LoadProgress| {
        if cancel.load(Ordering::Relaxed) {
            return ControlFlow::Break(());
        }
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            outbox.send(WorkerMsg::LoadProgress {
                bytes_read: p.bytes_read,
                total_bytes: p.total_bytes,
            });
        }
        ControlFlow::Continue(())
    };
    match Session::open_with(path, ReadOptions { recover }, progress) {
        Ok(session) => Ok(LoadedSession::new(Arc::new(session), recover)),
        Err(LoadError::Cancelled) => Err(WorkerMsg::LoadCancelled),
        Err(e) => Err(WorkerMsg::LoadFailed(describe_load_error(path, &e))),
    }
}

/// Words and offset for a load error; corrupt and truncated files are recoverable.
pub fn describe_load_error(path: &Path, e: &LoadError) -> LoadFailure {
    let (offset, recoverable) = match e {
        LoadError::Read(ReadError::Corrupt { corruption, .. }) => (Some(corruption.offset), true),
        LoadError::Record { offset, .. } => (Some(*offset), true),
        _ => (None, false),
    };
    LoadFailure {
        path: path.to_path_buf(),
        message: e.to_string(),
        offset,
        recoverable,
    }
}

/// What folder scans have read: a file's summary with the size and
/// modification time it had, so a rescan reads only new or changed files.
#[derive(Debug, Default)]
pub struct ScanCache {
    files: std::collections::HashMap<PathBuf, SessionFileInfo>,
    /// Files read through so far (a cached file is not read again).
    pub reads: u64,
}

impl ScanCache {
    /// The summary of a file: from the cache when its size and modification
    /// time are unchanged, else read through (and remembered).
    pub fn summary(
        &mut self,
        path: &Path,
        bytes: u64,
        modified_ms: Option<i64>,
    ) -> SessionFileInfo {
        if let Some(k) = self.files.get(path) {
            if k.bytes == bytes && k.modified_ms == modified_ms && modified_ms.is_some() {
                return k.clone();
            }
        }
        self.reads += 1;
        let info = summarize_file(path, bytes, modified_ms);
        self.files.insert(path.to_path_buf(), info.clone());
        info
    }
}

/// Lists the `.msgpack` files of `dir`, newest first, handing each file's
/// summary to `found` as soon as it is known; stops early when `found`
/// returns false.
pub fn scan_folder(
    dir: &Path,
    cache: &std::sync::Mutex<ScanCache>,
    mut found: impl FnMut(SessionFileInfo) -> bool,
) -> std::io::Result<()> {
    let mut files = list_session_files(dir)?;
    files.sort_by_key(|f| std::cmp::Reverse(f.1));
    for (path, modified_ms, bytes) in files {
        // the lock is held per file only, so two scans interleave
        let info = match cache.lock() {
            Ok(mut c) => c.summary(&path, bytes, modified_ms),
            Err(_) => summarize_file(&path, bytes, modified_ms),
        };
        if !found(info) {
            break;
        }
    }
    Ok(())
}

/// Lists the `.msgpack` files of `dir` on a named thread, newest first, one
/// message per file as soon as it is read. Files the `cache` has read
/// before (same size and modification time) are not read again.
pub fn spawn_scanner(
    dir: PathBuf,
    cache: Arc<std::sync::Mutex<ScanCache>>,
    outbox: Outbox,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("session-scanner".to_owned())
        .spawn(move || {
            outbox.send(WorkerMsg::ScanStarted(dir.clone()));
            let listed = scan_folder(&dir, &cache, |info| {
                outbox.send(WorkerMsg::SessionListed(info))
            });
            if let Err(e) = listed {
                outbox.send(WorkerMsg::Notice(format!(
                    "cannot list sessions in {}: {e}",
                    dir.display()
                )));
            }
            outbox.send(WorkerMsg::ScanDone);
        })
}

fn list_session_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, Option<i64>, u64)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        // the folder is made by the first recording: until then it is empty
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        other => other?,
    };
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("msgpack") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().ok().and_then(|m| {
            m.duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as i64)
        });
        out.push((path, modified, meta.len()));
    }
    Ok(out)
}

/// Reads a session file through once for its event count and time range.
pub fn summarize_file(path: &Path, bytes: u64, modified_ms: Option<i64>) -> SessionFileInfo {
    let mut info = SessionFileInfo {
        path: path.to_path_buf(),
        bytes,
        modified_ms,
        first_ts_ms: None,
        duration_ms: 0,
        events: 0,
        problem: None,
    };
    let mut reader = match Reader::open(path, ReadOptions { recover: true }) {
        Ok(r) => r,
        Err(e) => {
            info.problem = Some(e.to_string());
            return info;
        }
    };
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    loop {
        match reader.next() {
            Ok(Some(located)) => {
                if let RecordRef::Event { fields, .. } = located.record {
                    lo = lo.min(fields.ts_ms);
                    hi = hi.max(fields.ts_ms);
                    info.events += 1;
                }
            }
            Ok(None) => break,
            Err(e) => {
                info.problem = Some(e.to_string());
                break;
            }
        }
    }
    let report = reader.report();
    if let Some(c) = &report.corrupt {
        info.problem = Some(format!("corrupt at byte {}: {}", c.offset, c.reason));
    } else if report.dropped_bytes > 0 {
        info.problem = Some(format!(
            "truncated ({} bytes dropped)",
            report.dropped_bytes
        ));
    }
    if info.events > 0 {
        info.first_ts_ms = Some(lo);
        info.duration_ms = hi - lo;
    }
    info
}

/// What a system dialog asks the performer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// A session file to open ([`WorkerMsg::FileChosen`]).
    SessionFile,
    /// The folder sessions are recorded to and listed from ([`WorkerMsg::FolderChosen`]).
    SessionsFolder,
}

/// Shows a system dialog on its own thread (it blocks until the performer
/// chooses) and reports the choice; cancelling reports nothing.
pub fn spawn_dialog(
    pick: Pick,
    start_dir: Option<PathBuf>,
    outbox: Outbox,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("file-dialog".to_owned())
        .spawn(move || {
            if let Some(why) = no_dialog_reason() {
                outbox.send(WorkerMsg::DialogUnavailable(why));
                return;
            }
            let mut dialog = rfd::FileDialog::new();
            if let Some(dir) = start_dir.filter(|d| d.is_dir()) {
                dialog = dialog.set_directory(dir);
            }
            let shown = Instant::now();
            let chosen = match pick {
                Pick::SessionFile => dialog
                    .set_title("Open a session")
                    .add_filter("Integr8tor session", &["msgpack"])
                    .pick_file()
                    .map(WorkerMsg::FileChosen),
                Pick::SessionsFolder => dialog
                    .set_title("Sessions folder")
                    .pick_folder()
                    .map(WorkerMsg::FolderChosen),
            };
            match chosen {
                Some(msg) => {
                    outbox.send(msg);
                }
                // nobody cancels a dialog this fast: it never appeared
                None if shown.elapsed() < DIALOG_MIN_LIFE => {
                    outbox.send(WorkerMsg::DialogUnavailable(
                        "the system file dialog did not open (no desktop portal answered)"
                            .to_owned(),
                    ));
                }
                None => {}
            }
        })
}

/// A dialog that returns sooner than this without a choice did not open.
const DIALOG_MIN_LIFE: Duration = Duration::from_millis(300);

/// Why no system dialog can be shown here, if that is known beforehand.
fn no_dialog_reason() -> Option<String> {
    #[cfg(all(unix, not(target_os = "macos")))]
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|v| v.is_empty()) {
        return Some(
            "no system file dialog here (no D-Bus session bus for the desktop portal)".to_owned(),
        );
    }
    None
}

/// Turns SIGTERM and SIGINT into [`WorkerMsg::Terminate`] so the window closes
/// cleanly (and a recording is finalized) instead of dying mid-write.
pub fn spawn_signal_watcher(outbox: Outbox) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signal-watcher".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                log::info!("signal {signal}: closing the window");
                outbox.send(WorkerMsg::Terminate);
            }
        })?;
    Ok(())
}

/// Whether a `Cancelled` flag should stop a running loader (helper for the control thread).
pub fn cancel_flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_folder_that_does_not_exist_yet_lists_empty() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-yet");
        assert!(list_session_files(&missing).unwrap().is_empty());
        std::fs::write(dir.path().join("a.msgpack"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let listed = list_session_files(dir.path()).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].0.ends_with("a.msgpack"));
        assert_eq!(listed[0].2, 1);
        // a file where a folder should be is still an error
        assert!(list_session_files(&dir.path().join("a.msgpack")).is_err());
    }

    #[test]
    fn a_rescan_does_not_read_unchanged_files_again() {
        let dir = tempfile::tempdir().unwrap();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/v1/small-60s.msgpack");
        for name in ["a.msgpack", "b.msgpack", "c.msgpack"] {
            std::fs::copy(&src, dir.path().join(name)).unwrap();
        }
        let cache = std::sync::Mutex::new(ScanCache::default());
        let scan = || {
            let mut seen = Vec::new();
            scan_folder(dir.path(), &cache, |i| {
                seen.push(i);
                true
            })
            .unwrap();
            seen
        };
        let first = scan();
        assert_eq!(first.len(), 3);
        assert_eq!(cache.lock().unwrap().reads, 3);
        let second = scan();
        assert_eq!(second, first, "the same listing");
        assert_eq!(cache.lock().unwrap().reads, 3, "nothing read again");
        // a changed file is read again, and only it
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("b.msgpack"))
            .unwrap();
        f.set_len(1000).unwrap();
        f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        drop(f);
        let third = scan();
        assert_eq!(cache.lock().unwrap().reads, 4);
        let b = third
            .iter()
            .find(|i| i.path.ends_with("b.msgpack"))
            .unwrap();
        assert_eq!(b.bytes, 1000);
        assert!(b.problem.is_some(), "a cut file says so");
    }
}
