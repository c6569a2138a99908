//! The player: republishes a loaded session's parameter changes with
//! `actor = "replay"` at their recorded spacing (FORMATS.md section 4).
//!
//! [`PlayerCore`] holds every playback decision and takes the time as an
//! argument, so tests drive it on a [`VirtualClock`](crate::clock::VirtualClock)
//! and are exact. [`Player`] runs a core on its own thread: it drains
//! commands, dispatches what is due, and waits for the next deadline by
//! sleeping most of the way and spinning the last stretch
//! ([`crate::clock::Clock::sleep_until`]), so dispatch is sub-millisecond accurate.
//!
//! Timing: with the position `p0` at clock time `c0` (the anchor), session
//! instant `t` is due at `c0 + (t - p0) / speed`. Pause, speed changes and
//! seeks re-anchor at the current position, so nothing jumps.
//!
//! Pinning: a touched path (or one a live `actor = "user"` message from
//! another producer moved) is skipped for `pin_ms` after the last touch; when
//! the pin expires the path's session value at that moment is sent, at once
//! or gliding there.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::latency::{LatencyHistogram, Lateness};
use crate::clock::SharedClock;
use crate::envelope::{bus_number, Actor, Body, Topic};
use crate::kafka::{Draft, PublishOutcome, Publisher};
use crate::session::loaded::{NameId, Session};

/// Slowest and fastest playback speeds.
pub const SPEED_RANGE: (f64, f64) = (0.1, 8.0);

/// Where replayed messages go.
pub trait ReplaySink: Send {
    /// Publishes a parameter value with `actor = "replay"`.
    fn param(&mut self, path: &str, value: f64);
    /// Publishes a mod-bus value with `actor = "replay"`.
    fn mod_value(&mut self, bus: i64, value: f64);
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
}

impl ReplaySink for PublisherSink {
    fn param(&mut self, path: &str, value: f64) {
        self.publish(Draft::param(Actor::Replay, path, value));
    }

    fn mod_value(&mut self, bus: i64, value: f64) {
        self.publish(Draft::new(
            Actor::Replay,
            Body::Mod {
                path: format!("bus.{bus}"),
                bus,
                value,
                source_type: None,
            },
        ));
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
    /// How often a playing player reports its status.
    pub status_every: Duration,
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
    /// While paused: dispatch the next event.
    StepForward,
    /// While paused: undo the last event (its path returns to its previous value).
    StepBack,
    /// The performer touched a path: pin it.
    Touch(String),
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
    /// How late dispatches were.
    pub lateness: Lateness,
    /// Pinned paths and the ms left on each.
    pub pins: Vec<(String, i64)>,
    /// Muted group patterns, in the order they were muted.
    pub muted: Vec<String>,
    /// The soloed group pattern, if any.
    pub solo: Option<String>,
}

/// Something from the player thread.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayerEvent {
    /// The current status.
    Status(PlayerStatus),
    /// The end was reached (not looping).
    Finished,
}

struct Pin {
    name: NameId,
    until: Duration,
}

struct Glide {
    name: NameId,
    from: f64,
    to: f64,
    start: Duration,
    next: Duration,
}

/// Every playback decision, driven by explicit times.
pub struct PlayerCore {
    session: Arc<Session>,
    sink: Box<dyn ReplaySink>,
    config: PlayerConfig,
    /// Indices into `session.events()` of what may be replayed, in ts order.
    items: Vec<u32>,
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

impl PlayerCore {
    /// A stopped player at the start of the session.
    pub fn new(session: Arc<Session>, sink: Box<dyn ReplaySink>, config: PlayerConfig) -> Self {
        let items: Vec<u32> = session
            .events()
            .iter()
            .enumerate()
            .filter(|(_, e)| match session.topic_of(e) {
                Some(Topic::Params) => e.actor.is_replayed(),
                Some(Topic::Mod) => e.value.is_finite(),
                _ => false,
            })
            .map(|(i, _)| i as u32)
            .collect();
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
            finished: false,
            config,
        };
        core.loop_range = core.config.loop_range.map(|r| core.clean_range(r));
        core.cursor = core.first_at_or_after(start);
        core
    }

    fn clean_range(&self, (a, b): (i64, i64)) -> (i64, i64) {
        (a.min(b), a.max(b).max(a.min(b) + 1))
    }

    fn ts(&self, item: usize) -> i64 {
        self.session.events()[self.items[item] as usize].ts_ms
    }

    fn first_at_or_after(&self, t: i64) -> usize {
        self.items
            .partition_point(|&i| self.session.events()[i as usize].ts_ms < t)
    }

    fn first_after(&self, t: i64) -> usize {
        self.items
            .partition_point(|&i| self.session.events()[i as usize].ts_ms <= t)
    }

    /// The playhead's session instant at clock time `now`.
    pub fn position(&self, now: Duration) -> f64 {
        match self.state {
            PlayState::Playing => self.pos + ms(now.saturating_sub(self.anchor)) * self.speed,
            _ => self.pos,
        }
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
            PlayerCommand::StepBack => self.step_back(),
            PlayerCommand::Touch(path) => self.touch(&path, now),
            PlayerCommand::LiveUser {
                path,
                producer_id,
                value,
            } => {
                if producer_id != self.config.producer_id {
                    if let Some(name) = self.session.name_id(&path) {
                        self.last_live[name as usize] = Some(value);
                    }
                    self.touch(&path, now);
                }
            }
            PlayerCommand::SetMuted { group, muted } => {
                self.muted_groups.retain(|g| *g != group);
                if muted {
                    self.muted_groups.push(group);
                }
                self.recompute_muted();
            }
            PlayerCommand::SetSolo(group) => {
                self.solo = group;
                self.recompute_muted();
            }
            PlayerCommand::SetReplayMod(on) => self.replay_mod = on,
            PlayerCommand::SetPinMs(pin_ms) => self.config.pin_ms = pin_ms.max(0),
        }
    }

    fn start_point(&self) -> i64 {
        match self.loop_range {
            Some((a, _)) => a,
            None => self.start,
        }
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
                let start = self.start_point();
                // the state just before the start, so the synth is where the
                // session was; empty when starting at the first event
                self.republish_state(start - 1, now);
                self.pos = start as f64;
                self.cursor = self.first_at_or_after(start);
                self.anchor = now;
                self.finished = false;
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

    /// Sends the exact state at `t` for every path not pinned or muted.
    fn republish_state(&mut self, t: i64, now: Duration) {
        let session = Arc::clone(&self.session);
        for (name, value) in session.state_at(t) {
            if self.is_pinned(name, now) {
                self.skipped_pinned += 1;
            } else if self.is_muted(name) {
                self.skipped_muted += 1;
            } else {
                self.sink.param(session.name(name), value);
                self.dispatched += 1;
            }
        }
    }

    fn is_replay_candidate(&self, item: usize) -> bool {
        let e = &self.session.events()[self.items[item] as usize];
        self.replay_mod || self.session.topic_of(e) != Some(Topic::Mod)
    }

    fn step_forward(&mut self, now: Duration) {
        if self.state == PlayState::Playing {
            self.reanchor(now);
            self.state = PlayState::Paused;
        }
        while self.cursor < self.items.len() && !self.is_replay_candidate(self.cursor) {
            self.cursor += 1;
        }
        if self.cursor < self.items.len() {
            let item = self.cursor;
            self.pos = self.ts(item) as f64;
            self.dispatch(item, now, None);
            self.cursor += 1;
            self.state = PlayState::Paused;
        }
    }

    fn step_back(&mut self) {
        if self.state == PlayState::Playing {
            return; // pause first: stepping while the clock runs means nothing
        }
        let mut k = self.cursor;
        while k > 0 && !self.is_replay_candidate(k - 1) {
            k -= 1;
        }
        if k == 0 {
            return;
        }
        let undone = k - 1;
        let mut prev = undone;
        while prev > 0 && !self.is_replay_candidate(prev - 1) {
            prev -= 1;
        }
        let new_pos = if prev > 0 {
            self.ts(prev - 1)
        } else {
            self.ts(undone) - 1
        };
        self.pos = new_pos as f64;
        self.cursor = undone;
        self.state = PlayState::Paused;
        let e = self.session.events()[self.items[undone] as usize];
        if self.session.topic_of(&e) == Some(Topic::Params) {
            if let Some(v) = self.value_before(e.name, undone) {
                let path = self.session.name(e.name).to_owned();
                self.sink.param(&path, v);
                self.dispatched += 1;
            }
        }
    }

    /// The value `name` had just before item `item` was applied.
    fn value_before(&self, name: NameId, item: usize) -> Option<f64> {
        let events = self.session.events();
        let target = self.items[item];
        let lane = self.session.lane(name);
        let at = lane.iter().position(|&i| i == target)?;
        lane[..at]
            .iter()
            .rev()
            .map(|&i| events[i as usize])
            .find(|e| self.session.topic_of(e) == Some(Topic::Params))
            .map(|e| e.value)
    }

    fn touch(&mut self, path: &str, now: Duration) {
        let Some(name) = self.session.name_id(path) else {
            return; // not in this session: replay never sends it anyway
        };
        let until = now + Duration::from_millis(self.config.pin_ms.max(0) as u64);
        self.glides.retain(|g| g.name != name);
        match self.pins.iter_mut().find(|p| p.name == name) {
            Some(pin) => pin.until = pin.until.max(until),
            None => self.pins.push(Pin { name, until }),
        }
    }

    fn is_pinned(&self, name: NameId, now: Duration) -> bool {
        self.pins.iter().any(|p| p.name == name && p.until > now)
    }

    fn is_muted(&self, name: NameId) -> bool {
        self.muted.get(name as usize).copied().unwrap_or(false)
    }

    fn recompute_muted(&mut self) {
        for id in 0..self.muted.len() {
            let path = self.session.name(id as NameId);
            let solo_out = self
                .solo
                .as_deref()
                .is_some_and(|g| !group_matches(g, path));
            self.muted[id] = solo_out || self.muted_groups.iter().any(|g| group_matches(g, path));
        }
    }

    fn dispatch(&mut self, item: usize, now: Duration, due: Option<Duration>) {
        let session = Arc::clone(&self.session);
        let e = session.events()[self.items[item] as usize];
        let is_mod = session.topic_of(&e) == Some(Topic::Mod);
        if is_mod && !self.replay_mod {
            return;
        }
        if let Some(due) = due {
            self.lateness
                .record_us(ms(now.saturating_sub(due)) * 1000.0);
        }
        if self.is_muted(e.name) {
            self.skipped_muted += 1;
            return;
        }
        let path = session.name(e.name);
        if is_mod {
            if let Some(bus) = bus_number(path) {
                self.sink.mod_value(bus, e.value);
                self.dispatched += 1;
            }
            return;
        }
        if self.is_pinned(e.name, now) {
            self.skipped_pinned += 1;
            return;
        }
        self.glides.retain(|g| g.name != e.name);
        self.sink.param(path, e.value);
        self.dispatched += 1;
    }

    /// Dispatches everything due by `now`: events, loop wraps, the end, pin
    /// expiries and glide steps.
    pub fn advance(&mut self, now: Duration) {
        self.expire_pins(now);
        self.step_glides(now);
        if self.state != PlayState::Playing {
            return;
        }
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
        if !self.pins.iter().any(|p| p.until <= now) {
            return;
        }
        let (expired, kept): (Vec<Pin>, Vec<Pin>) = std::mem::take(&mut self.pins)
            .into_iter()
            .partition(|p| p.until <= now);
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
                _ => {
                    let path = self.session.name(pin.name).to_owned();
                    self.sink.param(&path, target);
                    self.dispatched += 1;
                }
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
            let v = if done {
                g.to
            } else {
                g.from + (g.to - g.from) * t
            };
            let path = self.session.name(g.name).to_owned();
            self.sink.param(&path, v);
            self.dispatched += 1;
            g.next = now + step;
            !done
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
        for pin in &self.pins {
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

    /// The status at `now`.
    pub fn status(&self, now: Duration) -> PlayerStatus {
        PlayerStatus {
            state: self.state,
            position_ms: self.position(now).floor() as i64,
            speed: self.speed,
            loop_range: self.loop_range,
            dispatched: self.dispatched,
            skipped_pinned: self.skipped_pinned,
            skipped_muted: self.skipped_muted,
            lateness: self.lateness.summary(),
            pins: self
                .pins
                .iter()
                .map(|p| {
                    (
                        self.session.name(p.name).to_owned(),
                        ms(p.until.saturating_sub(now)).ceil() as i64,
                    )
                })
                .collect(),
            muted: self.muted_groups.clone(),
            solo: self.solo.clone(),
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
    thread: Option<JoinHandle<()>>,
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
        let core = PlayerCore::new(session, sink, config);
        let thread = std::thread::Builder::new()
            .name("player".to_owned())
            .spawn(move || run(core, clock, command_rx, event_tx, status_every))?;
        Ok(Player {
            commands: Some(command_tx),
            events,
            thread: Some(thread),
        })
    }

    /// Sends a command (ignored once the player has stopped).
    pub fn send(&self, command: PlayerCommand) {
        if let Some(c) = &self.commands {
            let _ = c.send(command);
        }
    }

    /// Status reports and the end of playback.
    pub fn events(&self) -> &Receiver<PlayerEvent> {
        &self.events
    }

    /// Stops the thread and joins it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.commands.take();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("player thread panicked");
            }
        }
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
) {
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
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let now = clock.now();
        core.advance(now);
        let finished = core.take_finished();
        let active = core.state() == PlayState::Playing || !core.pins.is_empty();
        if report || finished || (active && now >= next_status) {
            let _ = events.try_send(PlayerEvent::Status(core.status(now)));
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
                Err(_) => return,
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
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                } else {
                    clock.sleep_until(d);
                }
            }
        }
    }
}
