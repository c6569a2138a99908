//! The window's model: plain data, changed only by [`Model::apply`] with the
//! workers' messages, so it is tested without a window.
//!
//! Time is passed in (`now`, seconds since the window opened) rather than
//! read, so flashing, rates and ageing are exact in tests.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use super::history::LiveHistory;
use super::workers::{
    BusCounters, LinkState, LiveMsg, LoadFailure, LoadedSession, PlayState, PlayerStatus,
    RecordingStats, SessionFileInfo, WorkerMsg,
};

/// Number of mod buses (`bus.0` .. `bus.15`).
pub const MOD_BUSES: usize = 16;
/// Recent events kept for the list.
pub const RECENT_EVENTS: usize = 200;
/// Notices kept.
pub const NOTICES: usize = 20;
/// How long a changed value flashes.
pub const FLASH_S: f64 = 0.6;
/// How long a meter holds its last reading before it is shown as silent.
pub const METER_STALE_S: f64 = 1.0;

/// The bus link as the status bar shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BusView {
    /// Bootstrap servers (empty before the first connect).
    pub brokers: String,
    /// The embedded broker is in use.
    pub embedded: bool,
    /// The demo engine runs.
    pub demo: bool,
    /// Link state.
    pub link: LinkState,
    /// Counters from the clients.
    pub counters: BusCounters,
    /// Messages per second consumed by the live view (over the last counter interval).
    pub consume_rate: f64,
    /// When `counters` was last updated (model time), for the rate.
    counters_at: Option<f64>,
}

impl Default for BusView {
    fn default() -> Self {
        BusView {
            brokers: String::new(),
            embedded: false,
            demo: false,
            link: LinkState::Idle,
            counters: BusCounters::default(),
            consume_rate: 0.0,
            counters_at: None,
        }
    }
}

/// A parameter's current value.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamView {
    /// Normalized value.
    pub value: f64,
    /// When it last changed (model time).
    pub changed_at: f64,
    /// Who changed it last.
    pub actor: String,
    /// Which producer.
    pub producer: String,
}

/// A level meter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Meter {
    /// Peak.
    pub peak: f64,
    /// RMS, if sent.
    pub rms: Option<f64>,
    /// When it was read (model time).
    pub at: f64,
}

/// One mod bus, live (its past is in the [`LiveHistory`] as lane `bus.N`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModBus {
    /// Latest value.
    pub value: Option<f64>,
}

/// An event in the recent list.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLine {
    /// Envelope time.
    pub ts_ms: i64,
    /// Event type, or `state:<key>` for a state message.
    pub kind: String,
    /// Its fields in words.
    pub detail: String,
    /// Actor.
    pub actor: String,
}

/// The recorder as the transport bar shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RecorderView {
    /// Not recording.
    #[default]
    Idle,
    /// Start asked for, not confirmed yet.
    Starting,
    /// Writing.
    Recording {
        /// The file.
        path: PathBuf,
        /// Latest figures.
        stats: RecordingStats,
    },
    /// Stop asked for, file being finalized.
    Stopping {
        /// The file.
        path: PathBuf,
        /// Last figures.
        stats: RecordingStats,
    },
}

impl RecorderView {
    /// True while a recording runs or is being finalized.
    pub fn is_active(&self) -> bool {
        !matches!(self, RecorderView::Idle)
    }
}

/// The last finished recording.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedRecording {
    /// The file.
    pub path: PathBuf,
    /// Events written.
    pub events: u64,
    /// Size.
    pub bytes: u64,
}

/// Loading state.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LoadView {
    /// Nothing loading.
    #[default]
    Idle,
    /// A load runs.
    Loading {
        /// The file.
        path: PathBuf,
        /// Bytes read.
        bytes_read: u64,
        /// File size (0 until known).
        total_bytes: u64,
    },
    /// The last load failed.
    Failed(LoadFailure),
}

/// The sessions folder listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrowserView {
    /// The folder listed.
    pub dir: Option<PathBuf>,
    /// A scan runs.
    pub scanning: bool,
    /// Files, newest first.
    pub files: Vec<SessionFileInfo>,
}

/// A message for the performer, with when it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The words.
    pub text: String,
    /// Model time.
    pub at: f64,
}

/// Everything the window shows that workers tell it.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Model time of the last apply (seconds).
    pub now: f64,
    /// The bus link.
    pub bus: BusView,
    /// Current value per parameter path.
    pub params: BTreeMap<String, ParamView>,
    /// Level meters per source.
    pub meters: BTreeMap<String, Meter>,
    /// The 16 mod buses.
    pub mods: Vec<ModBus>,
    /// Recent events, newest last.
    pub events: VecDeque<EventLine>,
    /// The recorder.
    pub recorder: RecorderView,
    /// The last finalized recording.
    pub last_recording: Option<SavedRecording>,
    /// Session load state.
    pub load: LoadView,
    /// The loaded session, if any.
    pub session: Option<LoadedSession>,
    /// The player, as the engine last reported it (the only copy the window has).
    pub playback: PlayerStatus,
    /// Model time of that report (the playhead moves on from it while playing).
    pub playback_at: f64,
    /// Everything seen live, within its memory budget.
    pub history: LiveHistory,
    /// Bumped whenever something the live timeline draws changes.
    pub live_generation: u64,
    /// The sessions folder.
    pub browser: BrowserView,
    /// Messages for the performer, newest last.
    pub notices: VecDeque<Notice>,
    /// The app was asked to terminate (SIGTERM).
    pub terminate: bool,
    /// The OSC and WebSocket bridges.
    pub bridges: super::bridges::BridgeStatus,
}

impl Model {
    /// An empty model.
    pub fn new() -> Model {
        Model {
            mods: vec![ModBus::default(); MOD_BUSES],
            playback: PlayerStatus {
                speed: 1.0,
                ..PlayerStatus::default()
            },
            ..Model::default()
        }
    }

    /// Applies one worker message at model time `now` (seconds).
    pub fn apply(&mut self, msg: WorkerMsg, now: f64) {
        self.now = self.now.max(now);
        let now = self.now;
        match msg {
            WorkerMsg::Connecting { brokers, embedded } => {
                self.bus.brokers = brokers;
                self.bus.embedded = embedded;
                self.bus.demo = false;
                self.bus.link = LinkState::Connecting;
                self.bus.counters = BusCounters::default();
                self.bus.counters_at = None;
                self.bus.consume_rate = 0.0;
            }
            WorkerMsg::Connected {
                brokers,
                embedded,
                demo,
            } => {
                self.bus.brokers = brokers;
                self.bus.embedded = embedded;
                self.bus.demo = demo;
                if matches!(self.bus.link, LinkState::Connecting | LinkState::Idle) {
                    // created; the subscriber says when it really talks to the brokers
                    self.bus.link = LinkState::Connecting;
                }
            }
            WorkerMsg::Link(state) => {
                if let LinkState::Failed(e) = &state {
                    self.notice(format!("bus: {e}"), now);
                }
                self.bus.link = state;
            }
            WorkerMsg::Live(batch) => {
                for m in batch {
                    self.apply_live(m, now);
                }
            }
            WorkerMsg::Counters(c) => {
                if let Some(at) = self.bus.counters_at {
                    let dt = now - at;
                    if dt > 0.0 {
                        let n = c.received.saturating_sub(self.bus.counters.received);
                        self.bus.consume_rate = n as f64 / dt;
                    }
                }
                self.bus.counters = c;
                self.bus.counters_at = Some(now);
            }
            WorkerMsg::Notice(text) => self.notice(text, now),
            WorkerMsg::Bridges(status) => self.bridges = status,
            WorkerMsg::RecordingStarted(path) => {
                self.recorder = RecorderView::Recording {
                    path,
                    stats: RecordingStats::default(),
                };
            }
            WorkerMsg::RecordingStats(s) => match &mut self.recorder {
                RecorderView::Recording { stats, .. } | RecorderView::Stopping { stats, .. } => {
                    *stats = s;
                }
                _ => {}
            },
            WorkerMsg::RecordingStopped {
                path,
                events,
                bytes,
            } => {
                self.notice(format!("saved {} ({events} events)", path.display()), now);
                self.last_recording = Some(SavedRecording {
                    path,
                    events,
                    bytes,
                });
                self.recorder = RecorderView::Idle;
            }
            WorkerMsg::RecordingFailed(e) => {
                self.notice(format!("recording failed: {e}"), now);
                self.recorder = RecorderView::Idle;
            }
            WorkerMsg::LoadStarted(path) => {
                self.load = LoadView::Loading {
                    path,
                    bytes_read: 0,
                    total_bytes: 0,
                };
            }
            WorkerMsg::LoadProgress {
                bytes_read,
                total_bytes,
            } => {
                if let LoadView::Loading {
                    bytes_read: b,
                    total_bytes: t,
                    ..
                } = &mut self.load
                {
                    *b = bytes_read;
                    *t = total_bytes;
                }
            }
            WorkerMsg::Loaded(session) => {
                self.load = LoadView::Idle;
                self.playback = PlayerStatus {
                    position_ms: session.range.0,
                    speed: 1.0,
                    ..PlayerStatus::default()
                };
                self.playback_at = now;
                self.session = Some(session);
            }
            WorkerMsg::LoadFailed(f) => self.load = LoadView::Failed(f),
            WorkerMsg::LoadCancelled => {
                self.load = LoadView::Idle;
                self.notice("loading cancelled".to_owned(), now);
            }
            WorkerMsg::Playback(status) => {
                self.playback = status;
                self.playback_at = now;
            }
            WorkerMsg::PlaybackError(e) => self.notice(format!("playback: {e}"), now),
            WorkerMsg::PlaybackFinished => {
                if self.playback.state == PlayState::Playing {
                    self.playback.state = PlayState::Paused;
                }
            }
            WorkerMsg::ScanStarted(dir) => {
                if self.browser.dir.as_ref() != Some(&dir) {
                    self.browser.files.clear();
                }
                self.browser.dir = Some(dir);
                self.browser.scanning = true;
            }
            WorkerMsg::SessionListed(info) => {
                match self.browser.files.iter_mut().find(|f| f.path == info.path) {
                    Some(f) => *f = info,
                    None => self.browser.files.push(info),
                }
                self.browser
                    .files
                    .sort_by(|a, b| b.modified_ms.cmp(&a.modified_ms).then(a.path.cmp(&b.path)));
            }
            WorkerMsg::ScanDone => self.browser.scanning = false,
            // acted on by the window: it sends Open, or edits the settings draft
            WorkerMsg::FileChosen(_) | WorkerMsg::FolderChosen(_) => {}
            WorkerMsg::DialogUnavailable(why) => self.notice(why, now),
            WorkerMsg::Terminate => self.terminate = true,
        }
    }

    fn apply_live(&mut self, m: LiveMsg, now: f64) {
        match m {
            LiveMsg::Param {
                path,
                value,
                value_mapped,
                actor,
                producer,
                ts_ms,
            } => {
                self.history
                    .push_value(&path, ts_ms, value, value_mapped, &actor, &producer);
                self.live_generation += 1;
                self.set_param(path, value, actor, producer, now);
            }
            LiveMsg::Mod { bus, value, ts_ms } => {
                let Some(slot) = usize::try_from(bus).ok().and_then(|b| self.mods.get_mut(b))
                else {
                    return;
                };
                slot.value = Some(value);
                self.history
                    .push_value(&format!("bus.{bus}"), ts_ms, value, None, "mod", "");
                self.live_generation += 1;
            }
            LiveMsg::Audio { source, peak, rms } => {
                self.meters.insert(source, Meter { peak, rms, at: now });
            }
            LiveMsg::Event {
                ts_ms,
                event_type,
                detail,
                actor,
                marker,
            } => {
                self.history.push_marker(marker);
                self.live_generation += 1;
                self.push_event(EventLine {
                    ts_ms,
                    kind: event_type,
                    detail,
                    actor,
                });
            }
            LiveMsg::State { key, ts_ms } => self.push_event(EventLine {
                ts_ms,
                kind: format!("state:{key}"),
                detail: String::new(),
                actor: "preset".to_owned(),
            }),
        }
    }

    fn set_param(&mut self, path: String, value: f64, actor: String, producer: String, now: f64) {
        match self.params.get_mut(&path) {
            Some(p) => {
                if p.value != value {
                    p.changed_at = now;
                }
                p.value = value;
                p.actor = actor;
                p.producer = producer;
            }
            None => {
                self.params.insert(
                    path,
                    ParamView {
                        value,
                        changed_at: now,
                        actor,
                        producer,
                    },
                );
            }
        }
    }

    fn push_event(&mut self, line: EventLine) {
        self.events.push_back(line);
        while self.events.len() > RECENT_EVENTS {
            self.events.pop_front();
        }
    }

    fn notice(&mut self, text: String, now: f64) {
        log::info!("{text}");
        self.notices.push_back(Notice { text, at: now });
        while self.notices.len() > NOTICES {
            self.notices.pop_front();
        }
    }

    /// How strongly a path flashes now (1 just changed, 0 settled).
    pub fn flash(&self, path: &str, now: f64) -> f32 {
        self.params.get(path).map_or(0.0, |p| {
            let age = now - p.changed_at;
            if (0.0..FLASH_S).contains(&age) {
                (1.0 - age / FLASH_S) as f32
            } else {
                0.0
            }
        })
    }

    /// The milliseconds left on a path's pin, if it is pinned.
    pub fn pin_left_ms(&self, path: &str) -> Option<i64> {
        self.playback
            .pins
            .iter()
            .find(|p| p.path == path)
            .map(|p| p.left_ms)
            .filter(|ms| *ms > 0)
    }

    /// Parameter paths by group, groups in display order (gen.N by N, then
    /// mod, master, others); includes the loaded session's paths so they are
    /// listed before any value arrives.
    pub fn grouped_paths(&self) -> Vec<(String, Vec<String>)> {
        let session_paths = self.session.iter().flat_map(|s| s.param_paths.iter());
        group_paths(self.params.keys().chain(session_paths).map(String::as_str))
    }

    /// The playhead (session `ts_ms`) at model time `now`: the last report,
    /// moved on by the time since at the reported speed while playing (the
    /// player reports on a bounded cadence; this keeps the playhead smooth
    /// between reports), kept inside the loop and the session.
    pub fn playhead_ms(&self, now: f64) -> i64 {
        let p = &self.playback;
        let mut pos = p.position_ms;
        if p.state == PlayState::Playing {
            let ahead =
                ((now - self.playback_at).clamp(0.0, 0.25) * 1000.0 * p.speed).round() as i64;
            pos += ahead;
            if let Some((a, b)) = p.loop_range {
                if pos > b && p.position_ms <= b {
                    pos = a + (pos - b).min(b - a);
                }
            }
        }
        match &self.session {
            Some(s) => pos.clamp(s.range.0, s.range.1),
            None => pos,
        }
    }

    /// The playhead relative to the loaded session's start, in ms.
    pub fn position_rel_ms(&self) -> i64 {
        self.session.as_ref().map_or(0, |s| {
            (self.playback.position_ms - s.range.0).clamp(0, s.duration_ms())
        })
    }
}

/// Paths by group, groups in display order (gen.N by N, then mod, master,
/// others), each group's paths sorted and unique.
pub fn group_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<(String, Vec<String>)> {
    let mut all: Vec<&str> = paths.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    let mut groups: BTreeMap<GroupKey, Vec<String>> = BTreeMap::new();
    for path in all {
        groups
            .entry(GroupKey::of(path))
            .or_default()
            .push(path.to_owned());
    }
    groups
        .into_iter()
        .map(|(k, paths)| (k.name(), paths))
        .collect()
}

/// Orders parameter groups for display.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum GroupKey {
    Gen(u32),
    Mod,
    Master,
    Other(String),
}

impl GroupKey {
    fn of(path: &str) -> GroupKey {
        let mut parts = path.split('.');
        match (parts.next(), parts.next()) {
            (Some("gen"), Some(n)) => match n.parse() {
                Ok(n) => GroupKey::Gen(n),
                Err(_) => GroupKey::Other(format!("gen.{n}")),
            },
            (Some("mod"), _) => GroupKey::Mod,
            (Some("master"), _) => GroupKey::Master,
            (Some(first), _) => GroupKey::Other(first.to_owned()),
            _ => GroupKey::Other(String::new()),
        }
    }

    fn name(&self) -> String {
        match self {
            GroupKey::Gen(n) => format!("gen.{n}"),
            GroupKey::Mod => "mod".to_owned(),
            GroupKey::Master => "master".to_owned(),
            GroupKey::Other(s) => s.clone(),
        }
    }
}

/// The group a path belongs to (`gen.2`, `mod`, `master`, ...).
pub fn group_of(path: &str) -> String {
    GroupKey::of(path).name()
}

/// The player's pattern for a group (`gen.2` → `gen.2.*`).
pub fn group_pattern(group: &str) -> String {
    format!("{group}.*")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::timeline::lod::Series;
    use crate::app::timeline::markers::Marker;
    use crate::app::workers::RecordingStats;
    use crate::engine::player::PinStatus;
    use crate::engine::Lateness;
    use std::sync::Arc;

    fn param(path: &str, value: f64) -> LiveMsg {
        LiveMsg::Param {
            path: path.to_owned(),
            value,
            value_mapped: None,
            actor: "user".to_owned(),
            producer: "python.gui".to_owned(),
            ts_ms: 1,
        }
    }

    #[test]
    fn connecting_then_connected_then_link_states() {
        let mut m = Model::new();
        m.apply(
            WorkerMsg::Connecting {
                brokers: String::new(),
                embedded: true,
            },
            0.0,
        );
        assert_eq!(m.bus.link, LinkState::Connecting);
        assert!(m.bus.embedded);
        m.apply(
            WorkerMsg::Connected {
                brokers: "127.0.0.1:5555".into(),
                embedded: true,
                demo: true,
            },
            0.1,
        );
        assert_eq!(m.bus.brokers, "127.0.0.1:5555");
        assert!(m.bus.demo);
        assert_eq!(m.bus.link, LinkState::Connecting);
        m.apply(WorkerMsg::Link(LinkState::Connected), 0.2);
        assert_eq!(m.bus.link, LinkState::Connected);
        m.apply(WorkerMsg::Link(LinkState::Retrying("refused".into())), 0.3);
        assert_eq!(m.bus.link, LinkState::Retrying("refused".into()));
        m.apply(WorkerMsg::Link(LinkState::Failed("bad option".into())), 0.4);
        assert!(m.notices.back().unwrap().text.contains("bad option"));
        // a new connect resets counters and rate
        m.apply(
            WorkerMsg::Counters(BusCounters {
                received: 10,
                ..Default::default()
            }),
            1.0,
        );
        m.apply(
            WorkerMsg::Connecting {
                brokers: "h:9092".into(),
                embedded: false,
            },
            2.0,
        );
        assert_eq!(m.bus.counters, BusCounters::default());
        assert!(!m.bus.demo);
    }

    #[test]
    fn params_flash_on_change_only() {
        let mut m = Model::new();
        m.apply(WorkerMsg::Live(vec![param("gen.1.cutoff", 0.5)]), 1.0);
        assert_eq!(m.params["gen.1.cutoff"].value, 0.5);
        assert!(m.flash("gen.1.cutoff", 1.0) > 0.99);
        assert_eq!(m.flash("gen.1.cutoff", 1.0 + FLASH_S), 0.0);
        // same value later: no new flash
        m.apply(WorkerMsg::Live(vec![param("gen.1.cutoff", 0.5)]), 5.0);
        assert_eq!(m.flash("gen.1.cutoff", 5.0), 0.0);
        m.apply(WorkerMsg::Live(vec![param("gen.1.cutoff", 0.7)]), 6.0);
        assert!(m.flash("gen.1.cutoff", 6.1) > 0.5);
        assert_eq!(m.flash("unknown", 6.1), 0.0);
    }

    #[test]
    fn mod_audio_event_and_state_messages() {
        let mut m = Model::new();
        let mut batch = Vec::new();
        for i in 0..40 {
            batch.push(LiveMsg::Mod {
                bus: 3,
                value: i as f64,
                ts_ms: i,
            });
        }
        batch.push(LiveMsg::Mod {
            bus: 99,
            value: 1.0,
            ts_ms: 0,
        });
        batch.push(LiveMsg::Mod {
            bus: -1,
            value: 1.0,
            ts_ms: 0,
        });
        batch.push(LiveMsg::Audio {
            source: "master".into(),
            peak: 0.8,
            rms: Some(0.3),
        });
        batch.push(LiveMsg::Event {
            ts_ms: 5,
            event_type: "note_on".into(),
            detail: "note=60".into(),
            actor: "midi".into(),
            marker: Marker::from_event(5, "note_on", &[]),
        });
        batch.push(LiveMsg::State {
            key: "preset".into(),
            ts_ms: 6,
        });
        m.apply(WorkerMsg::Live(batch), 0.0);
        assert_eq!(m.mods[3].value, Some(39.0));
        let lane = m.history.lane("bus.3").unwrap();
        assert_eq!(lane.len(), 40, "the bus's past is in the live history");
        assert_eq!(lane.value(lane.end() - 1), 39.0);
        assert!(m.history.lane("bus.99").is_none());
        assert_eq!(m.mods.len(), MOD_BUSES);
        assert_eq!(m.meters["master"].peak, 0.8);
        assert_eq!(m.events.len(), 2);
        assert_eq!(m.events[0].kind, "note_on");
        assert_eq!(m.events[1].kind, "state:preset");
        assert_eq!(m.history.markers().len(), 1);
        // the event list is bounded
        let many = (0..RECENT_EVENTS + 10)
            .map(|i| LiveMsg::Event {
                ts_ms: i as i64,
                event_type: "x".into(),
                detail: String::new(),
                actor: "user".into(),
                marker: Marker::from_event(i as i64, "x", &[]),
            })
            .collect();
        m.apply(WorkerMsg::Live(many), 20.0);
        assert_eq!(m.events.len(), RECENT_EVENTS);
        assert_eq!(m.events.back().unwrap().ts_ms, (RECENT_EVENTS + 9) as i64);
    }

    #[test]
    fn counters_give_a_consume_rate() {
        let mut m = Model::new();
        m.apply(
            WorkerMsg::Counters(BusCounters {
                received: 100,
                ..Default::default()
            }),
            1.0,
        );
        assert_eq!(m.bus.consume_rate, 0.0);
        m.apply(
            WorkerMsg::Counters(BusCounters {
                received: 600,
                duplicates: 2,
                malformed: 1,
                delivery_failed: 3,
                delivered: 9,
            }),
            1.5,
        );
        assert!((m.bus.consume_rate - 1000.0).abs() < 1e-9);
        assert_eq!(m.bus.counters.duplicates, 2);
        assert_eq!(m.bus.counters.delivery_failed, 3);
    }

    #[test]
    fn recorder_lifecycle() {
        let mut m = Model::new();
        m.recorder = RecorderView::Starting;
        m.apply(WorkerMsg::RecordingStarted("/s/a.msgpack".into()), 0.0);
        let stats = RecordingStats {
            elapsed_ms: 1500,
            events: 42,
            bytes: 4096,
            ..Default::default()
        };
        m.apply(WorkerMsg::RecordingStats(stats), 1.5);
        match &m.recorder {
            RecorderView::Recording { path, stats: s } => {
                assert_eq!(path, &PathBuf::from("/s/a.msgpack"));
                assert_eq!(s.events, 42);
            }
            other => panic!("{other:?}"),
        }
        m.apply(
            WorkerMsg::RecordingStopped {
                path: "/s/a.msgpack".into(),
                events: 43,
                bytes: 5000,
            },
            2.0,
        );
        assert_eq!(m.recorder, RecorderView::Idle);
        assert_eq!(m.last_recording.as_ref().unwrap().events, 43);
        m.recorder = RecorderView::Starting;
        m.apply(WorkerMsg::RecordingFailed("disk full".into()), 3.0);
        assert_eq!(m.recorder, RecorderView::Idle);
        assert!(m.notices.back().unwrap().text.contains("disk full"));
        // stats while idle are ignored
        m.apply(WorkerMsg::RecordingStats(stats), 4.0);
        assert_eq!(m.recorder, RecorderView::Idle);
    }

    fn fixture() -> LoadedSession {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/v1/small-60s.msgpack");
        let s = crate::session::Session::open(&path).expect("fixture loads");
        LoadedSession::new(Arc::new(s), false)
    }

    #[test]
    fn loading_lifecycle_and_session_paths_grouped() {
        let mut m = Model::new();
        m.apply(WorkerMsg::LoadStarted("/x.msgpack".into()), 0.0);
        m.apply(
            WorkerMsg::LoadProgress {
                bytes_read: 10,
                total_bytes: 100,
            },
            0.1,
        );
        assert_eq!(
            m.load,
            LoadView::Loading {
                path: "/x.msgpack".into(),
                bytes_read: 10,
                total_bytes: 100
            }
        );
        let loaded = fixture();
        let first = loaded.range.0;
        m.apply(WorkerMsg::Loaded(loaded), 0.2);
        assert_eq!(m.load, LoadView::Idle);
        assert_eq!(m.playback.position_ms, first);
        let groups = m.grouped_paths();
        let names: Vec<&str> = groups.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(
            names,
            ["gen.1", "gen.2", "gen.3", "gen.4", "gen.5", "mod", "master"]
        );
        let total: usize = groups.iter().map(|(_, p)| p.len()).sum();
        assert_eq!(total, 24);

        let failure = LoadFailure {
            path: "/c.msgpack".into(),
            message: "corrupt at byte 7".into(),
            offset: Some(7),
            recoverable: true,
        };
        m.apply(WorkerMsg::LoadFailed(failure.clone()), 1.0);
        assert_eq!(m.load, LoadView::Failed(failure));
        assert!(
            m.session.is_some(),
            "a failed load keeps the loaded session"
        );
        m.apply(WorkerMsg::LoadStarted("/y.msgpack".into()), 2.0);
        m.apply(WorkerMsg::LoadCancelled, 2.5);
        assert_eq!(m.load, LoadView::Idle);
    }

    #[test]
    fn playback_status_pins_and_finish() {
        let mut m = Model::new();
        let status = PlayerStatus {
            state: PlayState::Playing,
            position_ms: 1234,
            speed: 2.0,
            loop_range: Some((1000, 2000)),
            dispatched: 5,
            skipped_pinned: 1,
            lateness: Lateness {
                p50_us: 100.0,
                p99_us: 900.0,
                max_us: 1500.0,
                count: 5,
            },
            pins: vec![
                PinStatus {
                    path: "gen.1.cutoff".into(),
                    held: false,
                    left_ms: 2500,
                },
                PinStatus {
                    path: "gen.2.drive".into(),
                    held: false,
                    left_ms: 0,
                },
            ],
            ..PlayerStatus::default()
        };
        m.apply(WorkerMsg::Playback(status.clone()), 10.0);
        assert_eq!(m.playback, status, "the engine's own status, as sent");
        assert_eq!(m.pin_left_ms("gen.1.cutoff"), Some(2500));
        assert_eq!(
            m.pin_left_ms("gen.2.drive"),
            None,
            "an expired pin is not shown"
        );
        assert_eq!(m.pin_left_ms("master.volume"), None);
        // the playhead moves on between reports at the reported speed, and wraps in the loop
        assert_eq!(m.playhead_ms(10.0), 1234);
        assert_eq!(m.playhead_ms(10.1), 1434);
        assert_eq!(m.playhead_ms(10.25), 1734);
        assert_eq!(
            m.playhead_ms(99.0),
            1734,
            "never more than 250 ms ahead of a report"
        );
        m.apply(
            WorkerMsg::Playback(PlayerStatus {
                position_ms: 1900,
                ..status.clone()
            }),
            20.0,
        );
        assert_eq!(m.playhead_ms(20.1), 1100, "wrapped to the loop start");
        m.apply(WorkerMsg::PlaybackError("sink gone".into()), 20.1);
        assert!(m.notices.back().unwrap().text.contains("sink gone"));
        m.apply(WorkerMsg::PlaybackFinished, 20.2);
        assert_eq!(m.playback.state, PlayState::Paused);
        assert_eq!(m.playhead_ms(30.0), 1900, "paused: it stays");
    }

    #[test]
    fn browser_scan_merges_and_sorts_newest_first() {
        let mut m = Model::new();
        let info = |name: &str, modified: i64| SessionFileInfo {
            path: PathBuf::from(name),
            bytes: 10,
            modified_ms: Some(modified),
            first_ts_ms: Some(1),
            duration_ms: 1000,
            events: 3,
            problem: None,
        };
        m.apply(WorkerMsg::ScanStarted("/s".into()), 0.0);
        assert!(m.browser.scanning);
        m.apply(WorkerMsg::SessionListed(info("/s/old.msgpack", 1)), 0.0);
        m.apply(WorkerMsg::SessionListed(info("/s/new.msgpack", 5)), 0.0);
        m.apply(WorkerMsg::SessionListed(info("/s/old.msgpack", 9)), 0.0);
        m.apply(WorkerMsg::ScanDone, 0.0);
        assert!(!m.browser.scanning);
        let names: Vec<_> = m.browser.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(
            names,
            [
                PathBuf::from("/s/old.msgpack"),
                PathBuf::from("/s/new.msgpack")
            ]
        );
        // another folder starts a fresh list
        m.apply(WorkerMsg::ScanStarted("/t".into()), 1.0);
        assert!(m.browser.files.is_empty());
    }

    #[test]
    fn notices_file_chosen_and_terminate() {
        let mut m = Model::new();
        for i in 0..NOTICES + 5 {
            m.apply(WorkerMsg::Notice(format!("n{i}")), i as f64);
        }
        assert_eq!(m.notices.len(), NOTICES);
        assert_eq!(m.notices.back().unwrap().text, format!("n{}", NOTICES + 4));
        m.apply(WorkerMsg::FileChosen("/a.msgpack".into()), 100.0);
        assert!(!m.terminate);
        m.apply(WorkerMsg::Terminate, 100.0);
        assert!(m.terminate);
        // time never goes backwards
        m.apply(WorkerMsg::ScanDone, 1.0);
        assert_eq!(m.now, 100.0);
    }

    #[test]
    fn groups_of_paths() {
        assert_eq!(group_of("gen.12.cutoff"), "gen.12");
        assert_eq!(group_of("mod.2.rate"), "mod");
        assert_eq!(group_of("master.compressor.ratio"), "master");
        assert_eq!(group_of("fx.delay"), "fx");
        assert_eq!(group_pattern("gen.2"), "gen.2.*");
        let mut m = Model::new();
        m.apply(
            WorkerMsg::Live(vec![
                param("master.volume", 0.1),
                param("gen.10.cutoff", 0.1),
                param("gen.2.cutoff", 0.1),
                param("fx.delay", 0.1),
                param("mod.1.rate", 0.1),
            ]),
            0.0,
        );
        let names: Vec<String> = m.grouped_paths().into_iter().map(|(g, _)| g).collect();
        assert_eq!(names, ["gen.2", "gen.10", "mod", "master", "fx"]);
    }
}
