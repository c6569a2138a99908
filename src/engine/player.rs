//! The player: republishes what shaped the sound in a loaded session with
//! `actor = "replay"` at its recorded spacing (docs/formats.md, sections 2 and 4):
//! every `noise.params` change whose actor is `user`, `midi` or `preset`,
//! each with its recorded `value_mapped` and extra fields, and optionally the
//! mod-bus values. `mod`-actor parameter changes are left to the live
//! modulation, which makes them again.
//!
//! [`PlayerCore`] holds every playback decision and takes the time as an
//! argument, so tests drive it on a [`VirtualClock`](crate::clock::VirtualClock)
//! and are exact. [`Player`] runs a core on its own thread: it drains
//! commands, dispatches what is due, and waits for the next deadline by
//! sleeping most of the way and spinning the last stretch
//! ([`crate::clock::Clock::sleep_until`]), so dispatch is sub-millisecond
//! accurate; it asks the OS for real-time scheduling and plays on at normal
//! priority when that is refused.
//!
//! Timing: with the position `p0` at clock time `c0` (the anchor), session
//! instant `t` is due at `c0 + (t - p0) / speed`. Pause, speed changes and
//! seeks re-anchor at the current position, so nothing jumps.
//!
//! The playback invariant: at every instant of playback, for every path that
//! is not pinned, muted or outside a solo, the last value the player sent is
//! the session's exact state at the playhead ([`Session::state_at`], which
//! counts snapshot values). Start, seek and loop wraps send the whole state;
//! a value that a snapshot gives a path no event has set yet is sent like an
//! event; pin expiry and un-muting send the path's current value; stepping
//! back sends the values the undone step had replaced. A path whose latest
//! change is a `mod`-actor one belongs to the live modulation.
//!
//! Pinning: a touched path (or one a live `actor = "user"` message from
//! another producer moved) is skipped for `pin_ms` after the last touch; a
//! held touch pins it until it is released and `pin_ms` after that. When the
//! pin expires the path's session value at that moment is sent, at once or
//! gliding there.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::latency::{LatencyHistogram, Lateness};
use crate::clock::SharedClock;
use crate::envelope::{bus_number, Actor, Body, Envelope, Topic};
use crate::kafka::{Draft, PublishOutcome, Publisher};
use crate::session::loaded::{EventEntry, NameId, Session, SnapshotChange};
use crate::thread::NamedThread;

/// Slowest and fastest playback speeds.
pub const SPEED_RANGE: (f64, f64) = (0.1, 8.0);

/// One value the player sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed<'a> {
    /// The parameter path, or `bus.N` for a mod-bus value.
    pub path: &'a str,
    /// The value to send.
    pub value: f64,
    /// The recorded envelope the value comes from, when one does: its
    /// `value_mapped` and extra fields go out unchanged. `None` for values
    /// no single recorded message carries (a snapshot's, a glide step).
    pub recorded: Option<Envelope>,
}

/// Where replayed messages go.
pub trait ReplaySink: Send {
    /// Publishes a parameter value with `actor = "replay"`.
    fn param(&mut self, m: Replayed<'_>);
    /// Publishes a mod-bus value with `actor = "replay"`.
    fn mod_value(&mut self, bus: i64, m: Replayed<'_>);
}

/// Replays into nothing: a session can still be played and scrubbed on
/// screen while no bus is connected.
pub struct NullSink;

impl ReplaySink for NullSink {
    fn param(&mut self, _m: Replayed<'_>) {}
    fn mod_value(&mut self, _bus: i64, _m: Replayed<'_>) {}
}

/// Publishes replayed values through a [`Publisher`] (replay is never rate limited).
pub struct PublisherSink {
    publisher: Arc<Publisher>,
    /// Messages the publisher did not accept (queue full, rejected).
    pub dropped: u64,
}

impl PublisherSink {
    /// A sink over a shared publisher.
    pub fn new(publisher: Arc<Publisher>) -> PublisherSink {
        PublisherSink {
            publisher,
            dropped: 0,
        }
    }

    fn publish(&mut self, draft: Draft) {
        if !matches!(self.publisher.publish(draft), PublishOutcome::Queued { .. }) {
            self.dropped += 1;
        }
    }

    /// The recorded message under the player's own identity: `actor`,
    /// `session_id`, `producer_id`, `seq`, `ts_ms` and `source` are the
    /// publisher's, everything else is as recorded.
    fn replay_of(recorded: Envelope) -> Draft {
        Draft {
            ts_ms: None,
            source: None,
            ..Draft::from_envelope(recorded, Actor::Replay)
        }
    }
}

impl ReplaySink for PublisherSink {
    fn param(&mut self, m: Replayed<'_>) {
        let draft = match m.recorded {
            Some(e) if e.topic() == Topic::Params => Self::replay_of(e),
            _ => Draft::param(Actor::Replay, m.path, m.value),
        };
        self.publish(draft);
    }

    fn mod_value(&mut self, bus: i64, m: Replayed<'_>) {
        let draft = match m.recorded {
            Some(e) if e.topic() == Topic::Mod => Self::replay_of(e),
            _ => Draft::new(
                Actor::Replay,
                Body::Mod {
                    path: format!("bus.{bus}"),
                    bus,
                    value: m.value,
                    source_type: None,
                },
            ),
        };
        self.publish(draft);
    }
}

/// How a player starts.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// Initial speed (clamped to [`SPEED_RANGE`]).
    pub speed: f64,
    /// How long a touch keeps replay off a path.
    pub pin_ms: i64,
    /// Glide back to the session value over this long when a pin expires (0: jump).
    pub glide_ms: i64,
    /// Spacing of glide steps.
    pub glide_step_ms: i64,
    /// Also replay mod-bus values to `noise.mod`.
    pub replay_mod: bool,
    /// This player's producer id: live messages from it are not touches.
    pub producer_id: String,
    /// Where playback starts (default: the first event).
    pub from: Option<i64>,
    /// Where playback ends (default: the last event).
    pub to: Option<i64>,
    /// Loop between two instants.
    pub loop_range: Option<(i64, i64)>,
    /// How often a playing player reports its position.
    pub status_every: Duration,
    /// Ask the OS to run the player thread with real-time scheduling.
    pub realtime: bool,
}

impl Default for PlayerConfig {
    fn default() -> Self {
        PlayerConfig {
            speed: 1.0,
            pin_ms: 3000,
            glide_ms: 0,
            glide_step_ms: 16,
            replay_mod: false,
            producer_id: "integr8tor.player".to_owned(),
            from: None,
            to: None,
            loop_range: None,
            status_every: Duration::from_millis(50),
            realtime: false,
        }
    }
}

/// What the player is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlayState {
    /// At the start, nothing scheduled.
    #[default]
    Stopped,
    /// Dispatching on schedule.
    Playing,
    /// Holding a position.
    Paused,
}

/// A request to the player.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayerCommand {
    /// Start or resume.
    Play,
    /// Hold the position.
    Pause,
    /// Back to the start, nothing scheduled.
    Stop,
    /// Change speed without a jump in position.
    SetSpeed(f64),
    /// Republish the exact state at this session instant and continue from it.
    Seek(i64),
    /// Loop between two session instants, or stop looping.
    SetLoop(Option<(i64, i64)>),
    /// While paused: dispatch the next instant's changes (a preset load is one step).
    StepForward,
    /// While paused: undo the last instant's changes (their paths return to their values before).
    StepBack,
    /// The performer touched a path: pin it for the pin duration.
    Touch(String),
    /// The performer holds a path (a pointer pressed on it): pinned until [`PlayerCommand::Release`].
    Hold(String),
    /// The performer let go of a held path: the pin runs out a pin duration from now.
    Release(String),
    /// A live `actor = "user"` message arrived on `noise.params`.
    LiveUser {
        /// Its path.
        path: String,
        /// Who sent it (the player's own messages are ignored).
        producer_id: String,
        /// Its value (the start of a glide back).
        value: f64,
    },
    /// Mute or unmute a group (`gen.2.*`, `master.*`, a path, or `*`).
    SetMuted {
        /// The group pattern.
        group: String,
        /// Mute or unmute.
        muted: bool,
    },
    /// Play only this group (or everything again with `None`).
    SetSolo(Option<String>),
    /// Also replay mod-bus values.
    SetReplayMod(bool),
    /// Change the pin duration.
    SetPinMs(i64),
}

/// Whether the player thread runs with real-time scheduling.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Realtime {
    /// Not asked for (a core driven by hand, or the config said no).
    #[default]
    NotRequested,
    /// The OS granted it.
    InForce,
    /// The OS refused; the player runs at normal priority. Why, in words.
    Refused(String),
}

impl Realtime {
    /// One line for the performer.
    pub fn describe(&self) -> String {
        match self {
            Realtime::NotRequested => "replay at normal priority".to_owned(),
            Realtime::InForce => "replay with real-time scheduling".to_owned(),
            Realtime::Refused(why) => format!(
                "real-time scheduling refused ({why}): replay runs at normal priority and may be late under load"
            ),
        }
    }
}

/// A pinned path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinStatus {
    /// The path.
    pub path: String,
    /// Held by the performer's pointer (no countdown yet).
    pub held: bool,
    /// Milliseconds left on the pin once released (the full duration while held).
    pub left_ms: i64,
}

/// What the player reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlayerStatus {
    /// Playing, paused or stopped.
    pub state: PlayState,
    /// Session instant (ms) of the playhead.
    pub position_ms: i64,
    /// Current speed.
    pub speed: f64,
    /// Loop points, if looping.
    pub loop_range: Option<(i64, i64)>,
    /// Messages sent.
    pub dispatched: u64,
    /// Events skipped because their path was pinned.
    pub skipped_pinned: u64,
    /// Events skipped because their path was muted.
    pub skipped_muted: u64,
    /// Recorded messages that could not be read back from the file (sent
    /// with their value only).
    pub read_errors: u64,
    /// How late dispatches were.
    pub lateness: Lateness,
    /// Pinned paths.
    pub pins: Vec<PinStatus>,
    /// Muted groups.
    pub muted: Vec<String>,
    /// The soloed group, if any.
    pub solo: Option<String>,
    /// Whether mod-bus values are replayed.
    pub replay_mod: bool,
    /// Whether the player thread runs with real-time scheduling.
    pub realtime: Realtime,
}

/// Something from the player thread.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayerEvent {
    /// The current status: after every command, and on a bounded cadence while playing.
    Status(Box<PlayerStatus>),
    /// The end was reached (not looping).
    Finished,
}

/// A pin that lasts until `until`; a held one never runs out until released.
struct Pin {
    name: NameId,
    until: Duration,
    held: bool,
}

struct Glide {
    name: NameId,
    from: f64,
    to: f64,
    start: Duration,
    next: Duration,
}

/// Marks an item that is a [`SnapshotChange`] rather than an event.
const SNAPSHOT_ITEM: u32 = 1 << 31;

/// Every playback decision, driven by explicit times.
pub struct PlayerCore {
    session: Arc<Session>,
    sink: Box<dyn ReplaySink>,
    config: PlayerConfig,
    /// What may be replayed, in `ts_ms` order: indices into
    /// `session.events()`, or `SNAPSHOT_ITEM | i` for `snapshot_changes[i]`.
    items: Vec<u32>,
    snapshot_changes: Vec<SnapshotChange>,
    /// Next item to dispatch.
    cursor: usize,
    state: PlayState,
    /// Position when not playing; at `anchor` when playing.
    pos: f64,
    anchor: Duration,
    speed: f64,
    start: i64,
    end: i64,
    loop_range: Option<(i64, i64)>,
    replay_mod: bool,
    pins: Vec<Pin>,
    glides: Vec<Glide>,
    last_live: Vec<Option<f64>>,
    muted_groups: Vec<String>,
    solo: Option<String>,
    muted: Vec<bool>,
    lateness: LatencyHistogram,
    dispatched: u64,
    skipped_pinned: u64,
    skipped_muted: u64,
    read_errors: u64,
    realtime: Realtime,
    finished: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether `path` belongs to `group` (`gen.2.*`, `*`, or an exact path).
pub fn group_matches(group: &str, path: &str) -> bool {
    if group == "*" {
        return true;
    }
    match group.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => group == path,
    }
}

/// What one item is.
enum Item<'a> {
    Event(&'a EventEntry),
    Snapshot(&'a SnapshotChange),
}

impl PlayerCore {
    /// A stopped player at the start of the session.
    pub fn new(session: Arc<Session>, sink: Box<dyn ReplaySink>, config: PlayerConfig) -> Self {
        let snapshot_changes = session.snapshot_changes();
        let events = session.events();
        let replayable = |e: &EventEntry| match session.topic_of(e) {
            Some(Topic::Params) => e.actor.is_replayed(),
            Some(Topic::Mod) => e.value.is_finite(),
            _ => false,
        };
        // merge the events and the snapshot changes, both in ts order
        let mut items = Vec::new();
        let mut snaps = snapshot_changes.iter().enumerate().peekable();
        for (i, e) in events.iter().enumerate() {
            while let Some((k, _)) = snaps.next_if(|(_, c)| c.ts_ms <= e.ts_ms) {
                items.push(SNAPSHOT_ITEM | k as u32);
            }
            if replayable(e) {
                items.push(i as u32);
            }
        }
        items.extend(snaps.map(|(k, _)| SNAPSHOT_ITEM | k as u32));
        let (first, last) = session.time_range().unwrap_or((0, 0));
        let start = config.from.unwrap_or(first);
        let end = config.to.unwrap_or(last).max(start);
        let names = session.name_count();
        let mut core = PlayerCore {
            speed: config.speed.clamp(SPEED_RANGE.0, SPEED_RANGE.1),
            loop_range: None,
            replay_mod: config.replay_mod,
            session,
            sink,
            items,
            snapshot_changes,
            cursor: 0,
            state: PlayState::Stopped,
            pos: start as f64,
            anchor: Duration::ZERO,
            start,
            end,
            pins: Vec::new(),
            glides: Vec::new(),
            last_live: vec![None; names],
            muted_groups: Vec::new(),
            solo: None,
            muted: vec![false; names],
            lateness: LatencyHistogram::default(),
            dispatched: 0,
            skipped_pinned: 0,
            skipped_muted: 0,
            read_errors: 0,
            realtime: Realtime::NotRequested,
            finished: false,
            config,
        };
        core.loop_range = core.config.loop_range.map(|r| core.clean_range(r));
        core.cursor = core.first_at_or_after(start);
        core.skip_unsent();
        core
    }

    fn clean_range(&self, (a, b): (i64, i64)) -> (i64, i64) {
        (a.min(b), a.max(b).max(a.min(b) + 1))
    }

    fn item(&self, k: usize) -> Item<'_> {
        let it = self.items[k];
        if it & SNAPSHOT_ITEM != 0 {
            Item::Snapshot(&self.snapshot_changes[(it & !SNAPSHOT_ITEM) as usize])
        } else {
            Item::Event(&self.session.events()[it as usize])
        }
    }

    fn ts(&self, k: usize) -> i64 {
        match self.item(k) {
            Item::Event(e) => e.ts_ms,
            Item::Snapshot(c) => c.ts_ms,
        }
    }

    fn first_at_or_after(&self, t: i64) -> usize {
        let (mut lo, mut hi) = (0, self.items.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.ts(mid) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn first_after(&self, t: i64) -> usize {
        t.checked_add(1)
            .map_or(self.items.len(), |t| self.first_at_or_after(t))
    }

    /// The playhead's session instant at clock time `now`.
    pub fn position(&self, now: Duration) -> f64 {
        match self.state {
            PlayState::Playing => self.pos + ms(now.saturating_sub(self.anchor)) * self.speed,
            _ => self.pos,
        }
    }

    /// The playhead as a whole session instant: every change at or before it has been sent.
    fn instant(&self, now: Duration) -> i64 {
        self.position(now).floor() as i64
    }

    /// Clock time at which session instant `t` is due (playing only).
    fn due(&self, t: f64) -> Duration {
        let after = ((t - self.pos) / self.speed).max(0.0);
        self.anchor + Duration::from_secs_f64(after / 1000.0)
    }

    /// Where the playhead stops or wraps.
    fn limit(&self) -> i64 {
        match self.loop_range {
            Some((_, b)) => b,
            None => self.end,
        }
    }

    fn reanchor(&mut self, now: Duration) {
        self.pos = self.position(now);
        self.anchor = now;
    }

    /// Applies a command at clock time `now`.
    pub fn handle(&mut self, command: PlayerCommand, now: Duration) {
        self.advance(now);
        self.apply(command, now);
        // what the command made due (a start's first instant) goes out now
        self.advance(now);
        self.skip_unsent();
    }

    fn apply(&mut self, command: PlayerCommand, now: Duration) {
        match command {
            PlayerCommand::Play => self.play(now),
            PlayerCommand::Pause => {
                if self.state == PlayState::Playing {
                    self.reanchor(now);
                    self.state = PlayState::Paused;
                }
            }
            PlayerCommand::Stop => {
                self.state = PlayState::Stopped;
                self.pos = self.start_point() as f64;
                self.cursor = self.first_at_or_after(self.start_point());
                self.glides.clear();
            }
            PlayerCommand::SetSpeed(speed) => {
                self.reanchor(now);
                self.speed = if speed.is_finite() {
                    speed.clamp(SPEED_RANGE.0, SPEED_RANGE.1)
                } else {
                    self.speed
                };
            }
            PlayerCommand::Seek(t) => self.seek(t, now),
            PlayerCommand::SetLoop(range) => {
                self.reanchor(now);
                self.loop_range = range.map(|r| self.clean_range(r));
                if let Some((a, b)) = self.loop_range {
                    let p = self.pos;
                    if p < a as f64 || p > b as f64 {
                        self.seek(a, now);
                    }
                }
            }
            PlayerCommand::StepForward => self.step_forward(now),
            PlayerCommand::StepBack => self.step_back(now),
            PlayerCommand::Touch(path) => self.pin(&path, now, false),
            PlayerCommand::Hold(path) => self.pin(&path, now, true),
            PlayerCommand::Release(path) => self.release(&path, now),
            PlayerCommand::LiveUser {
                path,
                producer_id,
                value,
            } => {
                if producer_id != self.config.producer_id {
                    if let Some(name) = self.session.name_id(&path) {
                        self.last_live[name as usize] = Some(value);
                    }
                    self.pin(&path, now, false);
                }
            }
            PlayerCommand::SetMuted { group, muted } => {
                self.muted_groups.retain(|g| *g != group);
                if muted {
                    self.muted_groups.push(group);
                }
                self.recompute_muted(now);
            }
            PlayerCommand::SetSolo(group) => {
                self.solo = group;
                self.recompute_muted(now);
            }
            PlayerCommand::SetReplayMod(on) => {
                self.replay_mod = on;
                // the cursor skipped the mod values while they were off
                self.cursor = match self.state {
                    PlayState::Stopped => self.first_at_or_after(self.start_point()),
                    _ => self.first_after(self.instant(now)),
                };
            }
            PlayerCommand::SetPinMs(pin_ms) => self.config.pin_ms = pin_ms.max(0),
        }
    }

    fn start_point(&self) -> i64 {
        match self.loop_range {
            Some((a, _)) => a,
            None => self.start,
        }
    }

    /// From stopped to the start: the state just before it goes out, so the
    /// synth is where the session was (nothing when starting at the first event).
    fn leave_stopped(&mut self, now: Duration) {
        let start = self.start_point();
        self.republish_state(start - 1, now);
        self.pos = start as f64;
        self.cursor = self.first_at_or_after(start);
        self.anchor = now;
        self.finished = false;
        self.state = PlayState::Paused;
    }

    fn play(&mut self, now: Duration) {
        match self.state {
            PlayState::Playing => {}
            PlayState::Paused if self.loop_range.is_none() && self.pos >= self.end as f64 => {
                // at the end: play again from the start
                self.state = PlayState::Stopped;
                self.play(now);
            }
            PlayState::Paused => {
                self.anchor = now;
                self.state = PlayState::Playing;
            }
            PlayState::Stopped => {
                self.leave_stopped(now);
                self.state = PlayState::Playing;
            }
        }
    }

    fn seek(&mut self, t: i64, now: Duration) {
        self.pos = t as f64;
        self.anchor = now;
        self.cursor = self.first_after(t);
        self.glides.clear();
        self.finished = false;
        if self.state == PlayState::Stopped {
            self.state = PlayState::Paused;
        }
        self.republish_state(t, now);
    }

    /// Sends the exact state at `t` for every path not pinned or muted, each
    /// as the recorded message that set it where one did.
    fn republish_state(&mut self, t: i64, now: Duration) {
        let session = Arc::clone(&self.session);
        for (name, value) in session.state_at(t) {
            if self.is_pinned(name, now) {
                self.skipped_pinned += 1;
            } else if self.is_muted(name) {
                self.skipped_muted += 1;
            } else {
                self.send_value(name, value, t);
            }
        }
    }

    /// Sends `name`'s value at session instant `t`, as the recorded message
    /// that set it when an event did.
    fn send_value(&mut self, name: NameId, value: f64, t: i64) {
        let session = Arc::clone(&self.session);
        let recorded = session
            .setter_at(name, t)
            .filter(|e| e.value.to_bits() == value.to_bits())
            .and_then(|e| self.read_envelope(e));
        self.sink.param(Replayed {
            path: session.name(name),
            value,
            recorded,
        });
        self.dispatched += 1;
    }

    fn read_envelope(&mut self, e: &EventEntry) -> Option<Envelope> {
        match self.session.envelope(e) {
            Ok(env) => Some(env),
            Err(err) => {
                if self.read_errors == 0 {
                    log::warn!("replay sends values only: {err}");
                }
                self.read_errors += 1;
                None
            }
        }
    }

    fn is_replay_candidate(&self, k: usize) -> bool {
        match self.item(k) {
            Item::Event(e) => self.replay_mod || self.session.topic_of(e) != Some(Topic::Mod),
            Item::Snapshot(_) => true,
        }
    }

    /// The range of candidate items at the next instant from the cursor on.
    fn next_step(&self) -> Option<(usize, usize)> {
        let a = (self.cursor..self.items.len()).find(|&k| self.is_replay_candidate(k))?;
        let t = self.ts(a);
        let b = self.first_after(t);
        Some((a, b))
    }

    fn step_forward(&mut self, now: Duration) {
        match self.state {
            PlayState::Playing => {
                self.reanchor(now);
                self.state = PlayState::Paused;
            }
            PlayState::Stopped => self.leave_stopped(now),
            PlayState::Paused => {}
        }
        if let Some((a, b)) = self.next_step() {
            self.pos = self.ts(a) as f64;
            for k in a..b {
                self.dispatch(k, now, None);
            }
            self.cursor = b;
        }
    }

    fn step_back(&mut self, now: Duration) {
        if self.state != PlayState::Paused {
            return; // pause first: stepping while the clock runs means nothing
        }
        let Some(last) = (0..self.cursor)
            .rev()
            .find(|&k| self.is_replay_candidate(k))
        else {
            return;
        };
        let t = self.ts(last);
        let undone = self.first_at_or_after(t)..self.cursor;
        let before = (0..undone.start)
            .rev()
            .find(|&k| self.is_replay_candidate(k))
            .map_or(t - 1, |k| self.ts(k));
        let was = self.instant(now);
        self.pos = before as f64;
        self.cursor = undone.start;
        // every path that changed after `before`: the undone step's, and any
        // a pin expiry or un-muting had since set from a change replay does
        // not send itself (a `mod` one)
        let session = Arc::clone(&self.session);
        let events = session.events();
        let params = session.param_events();
        let lo = params.partition_point(|&i| events[i as usize].ts_ms <= before);
        let hi = params.partition_point(|&i| events[i as usize].ts_ms <= was.max(t));
        let mut names: Vec<NameId> = params[lo..hi]
            .iter()
            .map(|&i| events[i as usize].name)
            .chain(undone.filter_map(|k| match self.item(k) {
                Item::Snapshot(c) => Some(c.name),
                Item::Event(_) => None,
            }))
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            if self.is_pinned(name, now) || self.is_muted(name) {
                continue;
            }
            if let Some(v) = self.session.value_at(name, before) {
                self.send_value(name, v, before);
            }
        }
    }

    fn pin(&mut self, path: &str, now: Duration, held: bool) {
        let Some(name) = self.session.name_id(path) else {
            return; // not in this session: replay never sends it anyway
        };
        let until = now + Duration::from_millis(self.config.pin_ms.max(0) as u64);
        self.glides.retain(|g| g.name != name);
        match self.pins.iter_mut().find(|p| p.name == name) {
            Some(pin) => {
                pin.until = pin.until.max(until);
                pin.held |= held;
            }
            None => self.pins.push(Pin { name, until, held }),
        }
    }

    fn release(&mut self, path: &str, now: Duration) {
        let Some(name) = self.session.name_id(path) else {
            return;
        };
        let until = now + Duration::from_millis(self.config.pin_ms.max(0) as u64);
        if let Some(pin) = self.pins.iter_mut().find(|p| p.name == name) {
            pin.held = false;
            pin.until = until;
        }
    }

    fn is_pinned(&self, name: NameId, now: Duration) -> bool {
        self.pins
            .iter()
            .any(|p| p.name == name && (p.held || p.until > now))
    }

    fn is_muted(&self, name: NameId) -> bool {
        self.muted.get(name as usize).copied().unwrap_or(false)
    }

    /// Applies the mute and solo groups; a path that comes back gets its
    /// current session value.
    fn recompute_muted(&mut self, now: Duration) {
        let mut back = Vec::new();
        for id in 0..self.muted.len() {
            let path = self.session.name(id as NameId);
            let solo_out = self
                .solo
                .as_deref()
                .is_some_and(|g| !group_matches(g, path));
            let muted = solo_out || self.muted_groups.iter().any(|g| group_matches(g, path));
            if self.muted[id] && !muted {
                back.push(id as NameId);
            }
            self.muted[id] = muted;
        }
        if self.state == PlayState::Stopped {
            return;
        }
        let t = self.instant(now);
        for name in back {
            if self.is_pinned(name, now) {
                continue;
            }
            if let Some(v) = self.session.value_at(name, t) {
                self.send_value(name, v, t);
            }
        }
    }

    fn dispatch(&mut self, k: usize, now: Duration, due: Option<Duration>) {
        if !self.is_replay_candidate(k) {
            return;
        }
        if let Some(due) = due {
            self.lateness
                .record_us(ms(now.saturating_sub(due)) * 1000.0);
        }
        let session = Arc::clone(&self.session);
        let (name, value, event) = match self.item(k) {
            Item::Event(e) => (e.name, e.value, Some(*e)),
            Item::Snapshot(c) => (c.name, c.value, None),
        };
        if self.is_muted(name) {
            self.skipped_muted += 1;
            return;
        }
        let path = session.name(name);
        if let Some(e) = event.filter(|e| session.topic_of(e) == Some(Topic::Mod)) {
            if let Some(bus) = bus_number(path) {
                let recorded = self.read_envelope(&e);
                self.sink.mod_value(
                    bus,
                    Replayed {
                        path,
                        value,
                        recorded,
                    },
                );
                self.dispatched += 1;
            }
            return;
        }
        if self.is_pinned(name, now) {
            self.skipped_pinned += 1;
            return;
        }
        self.glides.retain(|g| g.name != name);
        let recorded = event.and_then(|e| self.read_envelope(&e));
        self.sink.param(Replayed {
            path,
            value,
            recorded,
        });
        self.dispatched += 1;
    }

    /// Moves the cursor past items that are not sent (mod-bus values while
    /// they are off), so the thread never wakes for them.
    fn skip_unsent(&mut self) {
        while self.cursor < self.items.len() && !self.is_replay_candidate(self.cursor) {
            self.cursor += 1;
        }
    }

    /// Dispatches everything due by `now`: events, loop wraps, the end, pin
    /// expiries and glide steps.
    pub fn advance(&mut self, now: Duration) {
        self.expire_pins(now);
        self.step_glides(now);
        if self.state != PlayState::Playing {
            return;
        }
        self.dispatch_due(now);
        self.skip_unsent();
    }

    fn dispatch_due(&mut self, now: Duration) {
        loop {
            let limit = self.limit();
            let pos = self.position(now).min(limit as f64);
            while self.cursor < self.items.len() {
                let ts = self.ts(self.cursor);
                if ts as f64 > pos {
                    break;
                }
                let due = self.due(ts as f64);
                self.dispatch(self.cursor, now, Some(due));
                self.cursor += 1;
            }
            if self.position(now) < limit as f64 {
                return;
            }
            let at = self.due(limit as f64);
            match self.loop_range {
                Some((a, _)) => {
                    // wrap: the state at the loop start, then on from there
                    self.pos = a as f64;
                    self.anchor = at;
                    self.cursor = self.first_after(a);
                    self.republish_state(a, now);
                }
                None => {
                    self.pos = limit as f64;
                    self.state = PlayState::Paused;
                    self.finished = true;
                    return;
                }
            }
        }
    }

    fn expire_pins(&mut self, now: Duration) {
        if !self.pins.iter().any(|p| !p.held && p.until <= now) {
            return;
        }
        let (expired, kept): (Vec<Pin>, Vec<Pin>) = std::mem::take(&mut self.pins)
            .into_iter()
            .partition(|p| !p.held && p.until <= now);
        self.pins = kept;
        if self.state == PlayState::Stopped {
            return;
        }
        for pin in expired {
            // the session's value at the instant the pin ran out
            let at = self.position(pin.until).floor() as i64;
            let Some(target) = self.session.value_at(pin.name, at) else {
                continue;
            };
            if self.is_muted(pin.name) {
                continue;
            }
            let from = self.last_live[pin.name as usize];
            match from {
                Some(from) if self.config.glide_ms > 0 => self.glides.push(Glide {
                    name: pin.name,
                    from,
                    to: target,
                    start: pin.until,
                    next: pin.until,
                }),
                _ => self.send_value(pin.name, target, at),
            }
        }
        self.step_glides(now);
    }

    fn step_glides(&mut self, now: Duration) {
        if self.glides.is_empty() {
            return;
        }
        let glide = Duration::from_millis(self.config.glide_ms.max(1) as u64);
        let step = Duration::from_millis(self.config.glide_step_ms.max(1) as u64);
        let mut glides = std::mem::take(&mut self.glides);
        glides.retain_mut(|g| {
            if g.next > now {
                return true;
            }
            let t = ms(now.saturating_sub(g.start)) / ms(glide);
            let done = t >= 1.0;
            if done {
                // the last step is the session's value itself
                let at = self.instant(now);
                let to = self.session.value_at(g.name, at).unwrap_or(g.to);
                self.send_value(g.name, to, at);
                return false;
            }
            let v = g.from + (g.to - g.from) * t;
            let path = self.session.name(g.name);
            self.sink.param(Replayed {
                path,
                value: v,
                recorded: None,
            });
            self.dispatched += 1;
            g.next = now + step;
            true
        });
        self.glides = glides;
    }

    /// When something next needs doing, if anything does.
    pub fn next_deadline(&self) -> Option<Duration> {
        let mut next: Option<Duration> = None;
        let mut consider = |d: Duration| next = Some(next.map_or(d, |n: Duration| n.min(d)));
        if self.state == PlayState::Playing {
            let limit = self.limit();
            match (self.cursor < self.items.len()).then(|| self.ts(self.cursor)) {
                Some(ts) if ts <= limit => consider(self.due(ts as f64)),
                _ => consider(self.due(limit as f64)),
            }
        }
        for pin in self.pins.iter().filter(|p| !p.held) {
            consider(pin.until);
        }
        for g in &self.glides {
            consider(g.next);
        }
        next
    }

    /// Whether the end was reached since the last call.
    pub fn take_finished(&mut self) -> bool {
        std::mem::take(&mut self.finished)
    }

    /// The state.
    pub fn state(&self) -> PlayState {
        self.state
    }

    /// Whether pins or glides still need the clock while not playing.
    fn has_timers(&self) -> bool {
        !self.pins.is_empty() || !self.glides.is_empty()
    }

    /// Records whether the thread got real-time scheduling, for the status.
    pub fn set_realtime(&mut self, realtime: Realtime) {
        self.realtime = realtime;
    }

    /// The status at `now`.
    pub fn status(&self, now: Duration) -> PlayerStatus {
        let full = self.config.pin_ms.max(0);
        PlayerStatus {
            state: self.state,
            position_ms: self.instant(now),
            speed: self.speed,
            loop_range: self.loop_range,
            dispatched: self.dispatched,
            skipped_pinned: self.skipped_pinned,
            skipped_muted: self.skipped_muted,
            read_errors: self.read_errors,
            lateness: self.lateness.summary(),
            pins: self
                .pins
                .iter()
                .map(|p| PinStatus {
                    path: self.session.name(p.name).to_owned(),
                    held: p.held,
                    left_ms: if p.held {
                        full
                    } else {
                        ms(p.until.saturating_sub(now)).ceil() as i64
                    },
                })
                .collect(),
            muted: self.muted_groups.clone(),
            solo: self.solo.clone(),
            replay_mod: self.replay_mod,
            realtime: self.realtime.clone(),
        }
    }

    /// The session being played.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

/// A player on its own thread. Dropping it stops and joins the thread.
pub struct Player {
    commands: Option<Sender<PlayerCommand>>,
    events: Receiver<PlayerEvent>,
    thread: NamedThread<PlayerStatus>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player").finish_non_exhaustive()
    }
}

/// Below this, the thread stops listening for commands and sleeps/spins to
/// the deadline itself.
const SPIN_AHEAD: Duration = Duration::from_millis(2);

impl Player {
    /// Starts a stopped player; send [`PlayerCommand::Play`] to begin.
    pub fn start(
        session: Arc<Session>,
        sink: Box<dyn ReplaySink>,
        clock: SharedClock,
        config: PlayerConfig,
    ) -> std::io::Result<Player> {
        let (command_tx, command_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::bounded(256);
        let status_every = config.status_every;
        let realtime = config.realtime;
        let core = PlayerCore::new(session, sink, config);
        let thread = NamedThread::spawn("player", move || {
            let mut core = core;
            // kept for the thread's life: dropping it returns to normal priority
            let _guard = if realtime {
                let (granted, guard) = super::realtime::promote_current_thread();
                core.set_realtime(granted);
                guard
            } else {
                None
            };
            run(core, clock, command_rx, event_tx, status_every)
        })?;
        Ok(Player {
            commands: Some(command_tx),
            events,
            thread,
        })
    }

    /// Sends a command (ignored once the player has stopped).
    pub fn send(&self, command: PlayerCommand) {
        if let Some(c) = &self.commands {
            let _ = c.send(command);
        }
    }

    /// A sender of commands, for another thread (dead once the player has stopped).
    pub fn commands(&self) -> Sender<PlayerCommand> {
        // only `stop` and drop take the sender, so it is always here
        self.commands
            .clone()
            .unwrap_or_else(|| crossbeam_channel::unbounded().0)
    }

    /// Status reports and the end of playback.
    pub fn events(&self) -> &Receiver<PlayerEvent> {
        &self.events
    }

    /// Stops the thread, joins it and returns where playback was then
    /// (`None` if the thread had panicked), so a new player can go on from
    /// there.
    pub fn stop(mut self) -> Option<PlayerStatus> {
        self.commands.take();
        self.thread.join().ok()
    }

    fn shutdown(&mut self) {
        self.commands.take();
        self.thread.join_quietly();
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(
    mut core: PlayerCore,
    clock: SharedClock,
    commands: Receiver<PlayerCommand>,
    events: Sender<PlayerEvent>,
    status_every: Duration,
) -> PlayerStatus {
    let mut next_status = Duration::ZERO;
    let mut report = true;
    loop {
        // commands first, so a pause or seek is never late
        loop {
            match commands.try_recv() {
                Ok(command) => {
                    core.handle(command, clock.now());
                    report = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return core.status(clock.now()),
            }
        }
        let now = clock.now();
        core.advance(now);
        let finished = core.take_finished();
        let active = core.state() == PlayState::Playing || core.has_timers();
        if report || finished || (active && now >= next_status) {
            let _ = events.try_send(PlayerEvent::Status(Box::new(core.status(now))));
            next_status = now + status_every;
            report = false;
        }
        if finished {
            let _ = events.try_send(PlayerEvent::Finished);
        }
        let mut deadline = core.next_deadline();
        if active {
            deadline = Some(deadline.map_or(next_status, |d| d.min(next_status)));
        }
        match deadline {
            None => match commands.recv() {
                Ok(command) => {
                    core.handle(command, clock.now());
                    report = true;
                }
                Err(_) => return core.status(clock.now()),
            },
            Some(d) => {
                let left = d.saturating_sub(clock.now());
                if left > SPIN_AHEAD {
                    match commands.recv_timeout(left - SPIN_AHEAD) {
                        Ok(command) => {
                            core.handle(command, clock.now());
                            report = true;
                        }
                        Err(RecvTimeoutError::Timeout) => clock.sleep_until(d),
                        Err(RecvTimeoutError::Disconnected) => return core.status(clock.now()),
                    }
                } else {
                    clock.sleep_until(d);
                }
            }
        }
    }
}
