//! The control thread: owns the bus endpoint, the live subscriber, the
//! publisher, the demo, the recorder and the player, and is the only place
//! that calls into Kafka or stops an engine (which may block for a moment).
//!
//! It waits on the window's [`Command`]s and on every engine's channel at
//! once, turns what it hears into [`WorkerMsg`]s, and on
//! [`Command::Shutdown`] (or when the window is gone) finalizes a recording
//! in progress before it ends.

use crate::thread::NamedThread;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender};

use super::timeline::markers::{describe_fields, Marker};
use super::workers::{
    self, BusCounters, BusSettings, Command, LinkState, LiveMsg, LoadedSession, Outbox, PlayState,
    RecordSettings, RecordingStats, ScanCache, WorkerMsg,
};
use crate::clock::{MonotonicClock, SharedClock};
use crate::engine::{
    self, new_session_id, Demo, DemoConfig, PlayerCommand, PlayerConfig, PlayerEvent, PlayerStatus,
    Recorder, RecorderConfig, RecorderEvent, RecorderStats, ReplayConfig, ReplayService, Route,
};
use crate::kafka::{
    Assignment, ConnectionState, Endpoint, Publisher, PublisherConfig, PublisherEvent, Received,
    Subscriber, SubscriberConfig, SubscriberEvent,
};
use crate::{Actor, Body, Topic};

/// How often counters are reported and quiet channels are checked.
const TICK: Duration = Duration::from_millis(250);
/// Repeated warnings of one kind are shown at most this often.
const NOTICE_EVERY: Duration = Duration::from_secs(5);

/// How long a replaced player's queued messages may take to reach the broker.
const PLAYER_FLUSH: Duration = Duration::from_secs(2);

/// Handle to the control thread. Dropping it shuts the thread down (joining it).
pub struct Control {
    commands: Sender<Command>,
    thread: NamedThread<()>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

/// How the control thread starts.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Pin duration for players.
    pub pin_ms: i64,
    /// Connect at once with these settings (`None`: stay off the bus until told).
    pub connect: Option<BusSettings>,
    /// Start the demo engine when the embedded broker is started.
    pub demo: bool,
}

impl Control {
    /// Starts the thread; it reports through `outbox`.
    pub fn start(outbox: Outbox, config: ControlConfig) -> std::io::Result<Control> {
        let (commands, rx) = crossbeam_channel::unbounded();
        if let Some(bus) = config.connect.clone() {
            let _ = commands.send(Command::Connect(bus));
        }
        let thread = NamedThread::spawn("app-control", move || Ctl::new(outbox, config).run(rx))?;
        Ok(Control { commands, thread })
    }

    /// Where the window sends commands.
    pub fn sender(&self) -> Sender<Command> {
        self.commands.clone()
    }

    /// Asks the thread to stop (finalizing a recording) and waits for it.
    pub fn shutdown(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        self.thread.join_quietly();
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A connected bus and its clients.
struct Bus {
    subscriber: Option<Subscriber>,
    publisher: Option<Arc<Publisher>>,
    demo: Option<Demo>,
    /// Kept last: dropping it stops an embedded broker.
    endpoint: Endpoint,
    settings: BusSettings,
}

struct Loading {
    cancel: Arc<AtomicBool>,
}

struct Ctl {
    outbox: Outbox,
    clock: SharedClock,
    pin_ms: i64,
    demo_enabled: bool,
    bus: Option<Bus>,
    recorder: Option<Recorder>,
    /// The loaded session's replay (on the bus when connected, into nothing otherwise).
    player: Option<ReplayService>,
    session: Option<Arc<Session>>,
    loading: Option<Loading>,
    /// What the folder scans have read, so a rescan reads only changed files.
    scan_cache: Arc<std::sync::Mutex<ScanCache>>,
    /// The counters last sent (unchanged counters are not sent: the window rests).
    last_counters: Option<BusCounters>,
    /// The bridges' status last sent (sent again only when it changes).
    last_bridges: Option<super::bridges::BridgeStatus>,
    load_tx: Sender<Result<LoadedSession, WorkerMsg>>,
    load_rx: Receiver<Result<LoadedSession, WorkerMsg>>,
    producer_id: String,
    last_notice: Vec<(&'static str, Instant)>,
    /// The last value of every path the live view has seen: a recording
    /// starts with them (docs/formats.md section 3, rule 4).
    known: hashbrown::HashMap<String, f64>,
    /// Says when the live link is lost and when it is back.
    outage: Option<crate::kafka::Outage>,
    bridges: super::bridges::Bridges,
    /// Whether the performer was told that real-time scheduling was refused.
    realtime_said: bool,
}

use crate::session::Session;

impl Ctl {
    fn new(outbox: Outbox, config: ControlConfig) -> Ctl {
        let (load_tx, load_rx) = crossbeam_channel::unbounded();
        Ctl {
            outbox,
            clock: Arc::new(MonotonicClock::new()),
            pin_ms: config.pin_ms,
            demo_enabled: config.demo,
            bus: None,
            recorder: None,
            player: None,
            session: None,
            loading: None,
            scan_cache: Arc::default(),
            last_counters: None,
            last_bridges: None,
            load_tx,
            load_rx,
            producer_id: format!("integr8tor.app.{}", std::process::id()),
            last_notice: Vec::new(),
            known: hashbrown::HashMap::new(),
            outage: None,
            bridges: super::bridges::Bridges::default(),
            realtime_said: false,
        }
    }

    fn run(mut self, commands: Receiver<Command>) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            // clones are cheap handles; they let the select borrow while `self` changes
            let sub = self
                .bus
                .as_ref()
                .and_then(|b| b.subscriber.as_ref())
                .map(|s| s.events().clone());
            let publ = self
                .bus
                .as_ref()
                .and_then(|b| b.publisher.as_ref())
                .map(|p| p.events().clone());
            let rec = self.recorder.as_ref().map(|r| r.events().clone());
            let play = self.player.as_ref().map(|p| p.events().clone());
            let load = self.load_rx.clone();

            let mut sel = Select::new();
            let i_cmd = sel.recv(&commands);
            let i_load = sel.recv(&load);
            let i_sub = sub.as_ref().map(|r| sel.recv(r));
            let i_pub = publ.as_ref().map(|r| sel.recv(r));
            let i_rec = rec.as_ref().map(|r| sel.recv(r));
            let i_play = play.as_ref().map(|r| sel.recv(r));
            let timeout = next_tick.saturating_duration_since(Instant::now());
            let op = match sel.select_timeout(timeout) {
                Ok(op) => op,
                Err(_) => {
                    drop(sel);
                    self.tick();
                    next_tick = Instant::now() + TICK;
                    continue;
                }
            };
            let i = op.index();
            if i == i_cmd {
                match op.recv(&commands) {
                    Ok(Command::Shutdown) | Err(_) => {
                        drop(sel);
                        self.shutdown();
                        return;
                    }
                    Ok(cmd) => {
                        drop(sel);
                        self.command(cmd);
                    }
                }
            } else if i == i_load {
                let r = op.recv(&load);
                drop(sel);
                if let Ok(r) = r {
                    self.loaded(r);
                }
            } else if Some(i) == i_sub {
                let r = op.recv(sub.as_ref().expect("selected"));
                drop(sel);
                match r {
                    Ok(ev) => self.subscriber_event(ev),
                    Err(_) => self.subscriber_gone(),
                }
            } else if Some(i) == i_pub {
                let r = op.recv(publ.as_ref().expect("selected"));
                drop(sel);
                if let Ok(ev) = r {
                    self.publisher_event(ev);
                }
            } else if Some(i) == i_rec {
                let r = op.recv(rec.as_ref().expect("selected"));
                drop(sel);
                match r {
                    Ok(ev) => self.recorder_event(ev),
                    Err(_) => self.recorder_gone(),
                }
            } else if Some(i) == i_play {
                let r = op.recv(play.as_ref().expect("selected"));
                drop(sel);
                match r {
                    Ok(ev) => self.player_event(ev),
                    Err(_) => {
                        // the player thread ended on its own
                        self.player = None;
                    }
                }
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
    }

    fn send(&self, msg: WorkerMsg) {
        self.outbox.send(msg);
    }

    /// A warning of some kind, at most once per [`NOTICE_EVERY`].
    fn notice_limited(&mut self, kind: &'static str, text: String) {
        let now = Instant::now();
        match self.last_notice.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, at)) if now.duration_since(*at) < NOTICE_EVERY => return,
            Some((_, at)) => *at = now,
            None => self.last_notice.push((kind, now)),
        }
        self.send(WorkerMsg::Notice(text));
    }

    /// Sends the bridges' status when it differs from the last one sent:
    /// an unchanged status would only wake the window for nothing.
    fn send_bridges(&mut self) {
        let status = self.bridges.status();
        if self.last_bridges.as_ref() != Some(&status) {
            self.last_bridges = Some(status.clone());
            self.send(WorkerMsg::Bridges(status));
        }
    }

    fn tick(&mut self) {
        self.send_bridges();
        let Some(bus) = &self.bus else { return };
        let mut c = BusCounters::default();
        if let Some(s) = &bus.subscriber {
            let st = s.stats();
            c.received = st.received;
            c.duplicates = st.duplicates;
            c.malformed = st.malformed;
        }
        if let Some(p) = &bus.publisher {
            let st = p.stats();
            c.delivery_failed = st.delivery_failed;
            c.delivered = st.delivered;
        }
        if self.last_counters != Some(c) {
            self.last_counters = Some(c);
            self.send(WorkerMsg::Counters(c));
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Connect(settings) => self.connect(settings),
            Command::StartRecording(rs) => self.start_recording(rs),
            Command::StopRecording => self.stop_recording(),
            Command::Open { path, recover } => self.open(path, recover),
            Command::CancelLoad => {
                if let Some(l) = self.loading.take() {
                    l.cancel.store(true, Ordering::Relaxed);
                }
            }
            Command::Transport(t) => self.transport(t),
            Command::Touch { path, value, held } => self.touch(path, value, held),
            Command::Release { path } => {
                if let Some(p) = &self.player {
                    p.send(PlayerCommand::Release(path));
                }
            }
            Command::SetPinMs(ms) => {
                self.pin_ms = ms;
                if let Some(p) = &self.player {
                    p.send(PlayerCommand::SetPinMs(ms));
                }
            }
            Command::ScanSessions(dir) => {
                let cache = Arc::clone(&self.scan_cache);
                if let Err(e) = workers::spawn_scanner(dir, cache, self.outbox.clone()) {
                    self.send(WorkerMsg::Notice(format!(
                        "cannot start the folder scan: {e}"
                    )));
                }
            }
            Command::Bridges(settings) => {
                let connection = self.bus.as_ref().map(|b| b.endpoint.connection().clone());
                self.bridges.apply(settings, connection.as_ref());
                self.send_bridges();
            }
            Command::Shutdown => {} // handled in run
        }
    }

    fn disconnect(&mut self) {
        if self.recorder.is_some() {
            self.stop_recording();
        }
        self.bridges.stop();
        if let Some(mut bus) = self.bus.take() {
            if let Some(d) = bus.demo.take() {
                d.stop();
            }
            if let Some(s) = bus.subscriber.take() {
                s.stop();
            }
            bus.publisher.take();
            drop(bus);
        }
    }

    fn connect(&mut self, settings: BusSettings) {
        // the player's sink holds the old publisher: rebuilt below, where
        // the old one stopped
        let resume = self.stop_player();
        self.disconnect();
        let external = settings.external_brokers().map(str::to_owned);
        self.send(WorkerMsg::Connecting {
            brokers: external.clone().unwrap_or_default(),
            embedded: external.is_none(),
        });
        let (endpoint, route) = match engine::connect(external.as_deref(), settings.options.clone())
        {
            Ok(r) => r,
            Err(e) => {
                self.send(WorkerMsg::Link(LinkState::Failed(e.to_string())));
                if let Some(at) = resume {
                    self.start_player(at);
                }
                return;
            }
        };
        let connection = endpoint.connection().clone();
        let brokers = connection.brokers().to_owned();
        self.send(WorkerMsg::Notice(route.describe(&brokers)));
        let mut bus = Bus {
            subscriber: None,
            publisher: None,
            demo: None,
            endpoint,
            settings: settings.clone(),
        };
        match Publisher::new(
            &connection,
            PublisherConfig {
                source: "integr8tor".to_owned(),
                ..PublisherConfig::new(self.producer_id.clone(), new_session_id())
            },
            Arc::clone(&self.clock),
        ) {
            Ok(p) => bus.publisher = Some(Arc::new(p)),
            Err(e) => self.send(WorkerMsg::Notice(format!("publisher: {e}"))),
        }
        let group = format!(
            "{}-live-{}-{}",
            group_prefix(&settings.group_id),
            std::process::id(),
            crate::kafka::unix_ms_now()
        );
        let live = SubscriberConfig {
            thread_name: "live-consumer".to_owned(),
            assignment: Assignment::Direct,
            ..SubscriberConfig::new(group, &Topic::ALL)
        };
        match Subscriber::start(&connection, live) {
            Ok(s) => bus.subscriber = Some(s),
            Err(e) => {
                self.send(WorkerMsg::Link(LinkState::Failed(e.to_string())));
            }
        }
        let start_demo = self.demo_enabled && route == Route::EmbeddedStarted;
        if start_demo {
            match Demo::start(&connection, DemoConfig::default()) {
                Ok(d) => bus.demo = Some(d),
                Err(e) => self.send(WorkerMsg::Notice(format!("demo: {e}"))),
            }
        }
        self.send(WorkerMsg::Connected {
            brokers,
            embedded: route == Route::EmbeddedStarted,
            demo: bus.demo.is_some(),
        });
        self.bus = Some(bus);
        self.bridges.reconnect(Some(&connection));
        if let Some(at) = resume {
            self.start_player(at);
        }
    }

    fn start_recording(&mut self, rs: RecordSettings) {
        if self.recorder.is_some() {
            return;
        }
        let Some(bus) = &self.bus else {
            self.send(WorkerMsg::RecordingFailed(
                "not connected to a bus: check Settings".to_owned(),
            ));
            return;
        };
        if let Err(e) = std::fs::create_dir_all(&rs.sessions_dir) {
            self.send(WorkerMsg::RecordingFailed(format!(
                "cannot create {}: {e}",
                rs.sessions_dir.display()
            )));
            return;
        }
        let mut config = RecorderConfig::new(rs.sessions_dir);
        config.snapshot_interval_ms = rs.snapshot_interval_ms.max(1);
        config.start = bus.settings.start;
        config.initial_state = self.known.iter().map(|(p, v)| (p.clone(), *v)).collect();
        config.group_id = format!(
            "{}-recorder-{}-{}",
            group_prefix(&bus.settings.group_id),
            std::process::id(),
            crate::kafka::unix_ms_now()
        );
        match Recorder::start(bus.endpoint.connection(), config) {
            Ok(r) => {
                self.send(WorkerMsg::RecordingStarted(r.path().to_path_buf()));
                self.recorder = Some(r);
            }
            Err(e) => self.send(WorkerMsg::RecordingFailed(e.to_string())),
        }
    }

    fn stop_recording(&mut self) {
        let Some(r) = self.recorder.take() else {
            return;
        };
        let path = r.path().to_path_buf();
        match r.stop() {
            Ok(summary) => self.send(WorkerMsg::RecordingStopped {
                path: summary.path,
                events: summary.stats.events,
                bytes: summary.stats.bytes,
            }),
            Err(e) => self.send(WorkerMsg::RecordingFailed(format!(
                "{}: {e}",
                path.display()
            ))),
        }
    }

    fn open(&mut self, path: PathBuf, recover: bool) {
        if let Some(l) = self.loading.take() {
            l.cancel.store(true, Ordering::Relaxed);
        }
        let cancel = workers::cancel_flag();
        match workers::spawn_loader(
            path.clone(),
            recover,
            Arc::clone(&cancel),
            self.outbox.clone(),
            self.load_tx.clone(),
        ) {
            Ok(_) => self.loading = Some(Loading { cancel }),
            Err(e) => self.send(WorkerMsg::LoadFailed(workers::LoadFailure {
                path,
                message: format!("cannot start loading: {e}"),
                offset: None,
                recoverable: false,
            })),
        }
    }

    fn loaded(&mut self, result: Result<LoadedSession, WorkerMsg>) {
        match result {
            Ok(loaded) => {
                // a later Open may have superseded this load
                if self
                    .loading
                    .as_ref()
                    .is_none_or(|l| l.cancel.load(Ordering::Relaxed))
                {
                    return;
                }
                self.loading = None;
                self.player.take();
                self.session = Some(Arc::clone(&loaded.session));
                let start = PlayerStatus {
                    position_ms: loaded.range.0,
                    speed: 1.0,
                    ..PlayerStatus::default()
                };
                self.send(WorkerMsg::Loaded(loaded));
                self.start_player(start);
            }
            Err(WorkerMsg::LoadCancelled) => {
                self.loading = None;
                self.send(WorkerMsg::LoadCancelled);
            }
            Err(msg) => {
                self.loading = None;
                self.send(msg);
            }
        }
    }

    /// Stops the player and says where it was (the player's own last
    /// status: nothing here keeps a copy), so a new one can go on from there.
    fn stop_player(&mut self) -> Option<PlayerStatus> {
        let player = self.player.take()?;
        let status = player.stop(PLAYER_FLUSH).status;
        // a player whose thread failed starts over from the session's start
        Some(status.unwrap_or_else(|| PlayerStatus {
            speed: 1.0,
            ..PlayerStatus::default()
        }))
    }

    /// Starts a player for the loaded session on the current bus, where
    /// `prev` says (position, speed, loop, and playing or not).
    fn start_player(&mut self, prev: PlayerStatus) {
        debug_assert!(self.player.is_none(), "stop the old player first");
        self.player.take();
        let Some(session) = self.session.clone() else {
            return;
        };
        let defaults = ReplayConfig::default();
        let config = ReplayConfig {
            player: PlayerConfig {
                pin_ms: self.pin_ms,
                speed: if prev.speed > 0.0 { prev.speed } else { 1.0 },
                loop_range: prev.loop_range,
                ..defaults.player
            },
            // the window pins its own touches, for as long as the pointer holds them
            own_producers: vec![self.producer_id.clone()],
            group_prefix: self
                .bus
                .as_ref()
                .map_or("integr8tor", |b| group_prefix(&b.settings.group_id))
                .to_owned(),
        };
        let bus = self.bus.as_ref().map(|b| b.endpoint.connection().clone());
        match ReplayService::start(
            bus.as_ref(),
            session.clone(),
            config,
            Arc::clone(&self.clock),
        ) {
            Ok(p) => {
                let first = session.time_range().map_or(0, |r| r.0);
                if prev.position_ms > first && prev.state != PlayState::Stopped {
                    p.send(PlayerCommand::Seek(prev.position_ms));
                }
                if prev.state == PlayState::Playing {
                    p.send(PlayerCommand::Play);
                }
                self.player = Some(p);
            }
            Err(e) => self.send(WorkerMsg::PlaybackError(format!(
                "cannot start the player: {e}"
            ))),
        }
    }

    fn transport(&mut self, t: PlayerCommand) {
        let Some(p) = &self.player else {
            let text = if self.loading.is_some() {
                "still loading the session"
            } else {
                "no session loaded: open one in Sessions"
            };
            self.notice_limited("transport", text.to_owned());
            return;
        };
        p.send(t);
    }

    fn touch(&mut self, path: String, value: f64, held: bool) {
        if let Some(p) = &self.player {
            p.send(if held {
                PlayerCommand::Hold(path.clone())
            } else {
                PlayerCommand::Touch(path.clone())
            });
        }
        let Some(publisher) = self.bus.as_ref().and_then(|b| b.publisher.clone()) else {
            self.notice_limited("touch", "not connected: the value was not sent".to_owned());
            return;
        };
        let value = if value.is_finite() {
            value.clamp(0.0, 1.0)
        } else {
            return;
        };
        use crate::kafka::PublishOutcome;
        match publisher.publish(crate::kafka::Draft::param(Actor::User, path, value)) {
            PublishOutcome::Queued { .. } | PublishOutcome::RateLimited { .. } => {}
            PublishOutcome::QueueFull => self.notice_limited(
                "touch",
                "the bus is not keeping up: value dropped".to_owned(),
            ),
            PublishOutcome::Rejected { error } => {
                self.notice_limited("touch", format!("value rejected: {error}"))
            }
        }
    }

    fn subscriber_event(&mut self, ev: SubscriberEvent) {
        match ev {
            SubscriberEvent::Messages(batch) => {
                let mut out = Vec::with_capacity(batch.len());
                for r in batch {
                    if let Some(m) = self.live_msg(r) {
                        out.push(m);
                    }
                }
                if !out.is_empty() {
                    self.send(WorkerMsg::Live(out));
                }
            }
            SubscriberEvent::Malformed(m) => self.notice_limited(
                "malformed",
                format!(
                    "skipped a malformed message on {} (partition {}, offset {}): {}",
                    m.topic, m.partition, m.offset, m.error
                ),
            ),
            SubscriberEvent::Connection(state) => {
                let brokers = self
                    .bus
                    .as_ref()
                    .map(|b| b.endpoint.connection().brokers().to_owned())
                    .unwrap_or_default();
                let outage = self
                    .outage
                    .get_or_insert_with(|| crate::kafka::Outage::new(brokers));
                if let Some(line) = outage.on_state(&state, Instant::now()) {
                    self.send(WorkerMsg::Notice(line));
                }
                self.send(WorkerMsg::Link(match state {
                    ConnectionState::Connected => LinkState::Connected,
                    ConnectionState::Retrying { error } => LinkState::Retrying(error),
                }))
            }
            SubscriberEvent::ConsumeError { error } => {
                self.notice_limited("consume", format!("consuming: {error}"))
            }
            SubscriberEvent::Gap(gap) => self.notice_limited("gap", format!("live view: {gap}")),
        }
    }

    fn subscriber_gone(&mut self) {
        if let Some(bus) = &mut self.bus {
            bus.subscriber = None;
        }
        self.send(WorkerMsg::Link(LinkState::Failed(
            "the live consumer stopped".to_owned(),
        )));
    }

    /// Reduces a received message for the window (the replay service
    /// follows the bus for the performer's touches itself).
    fn live_msg(&mut self, r: Received) -> Option<LiveMsg> {
        let env = r.envelope();
        let actor = env
            .actor
            .as_ref()
            .map_or_else(|| "?".to_owned(), |a| a.as_str().to_owned());
        Some(match env.body {
            Body::Param {
                path,
                value,
                value_mapped,
                ..
            } => {
                if r.actor.is_recorded() {
                    match self.known.get_mut(path.as_str()) {
                        Some(v) => *v = value,
                        None => {
                            self.known.insert(path.clone(), value);
                        }
                    }
                }
                LiveMsg::Param {
                    path,
                    value,
                    value_mapped,
                    actor,
                    producer: env.producer_id,
                    ts_ms: env.ts_ms,
                }
            }
            Body::Mod { bus, value, .. } => LiveMsg::Mod {
                bus,
                value,
                ts_ms: env.ts_ms,
            },
            Body::Audio {
                path, peak, rms, ..
            } => LiveMsg::Audio {
                source: path,
                peak,
                rms,
            },
            Body::Event { event_type } => LiveMsg::Event {
                ts_ms: env.ts_ms,
                marker: Marker::from_event(env.ts_ms, &event_type, &env.extra),
                event_type,
                detail: describe_fields(&env.extra),
                actor,
            },
            Body::State { key, .. } => LiveMsg::State {
                key,
                ts_ms: env.ts_ms,
            },
        })
    }

    fn publisher_event(&mut self, ev: PublisherEvent) {
        match ev {
            PublisherEvent::DeliveryFailed {
                topic, key, error, ..
            } => self.notice_limited(
                "delivery",
                format!(
                    "not delivered to {topic} ({}): {error}",
                    key.unwrap_or_default()
                ),
            ),
            PublisherEvent::BrokerError { .. } => {} // the subscriber reports the link
        }
    }

    fn recorder_event(&mut self, ev: RecorderEvent) {
        match ev {
            RecorderEvent::Stats(s) => self.send(WorkerMsg::RecordingStats(recording_stats(&s))),
            RecorderEvent::Connection(_) => {}
            RecorderEvent::Warning(w) => self.notice_limited("recorder", format!("recorder: {w}")),
            RecorderEvent::Failed(e) => {
                if let Some(r) = self.recorder.take() {
                    let _ = r.stop();
                }
                self.send(WorkerMsg::RecordingFailed(e));
            }
        }
    }

    fn recorder_gone(&mut self) {
        if let Some(r) = self.recorder.take() {
            match r.stop() {
                Ok(summary) => self.send(WorkerMsg::RecordingStopped {
                    path: summary.path,
                    events: summary.stats.events,
                    bytes: summary.stats.bytes,
                }),
                Err(e) => self.send(WorkerMsg::RecordingFailed(e.to_string())),
            }
        }
    }

    fn player_event(&mut self, ev: PlayerEvent) {
        match ev {
            PlayerEvent::Status(s) => {
                let s = *s;
                if !self.realtime_said {
                    self.realtime_said = true;
                    if let engine::Realtime::Refused(_) = s.realtime {
                        self.send(WorkerMsg::Notice(s.realtime.describe()));
                    }
                }
                self.send(WorkerMsg::Playback(s));
            }
            PlayerEvent::Finished => self.send(WorkerMsg::PlaybackFinished),
        }
    }

    fn shutdown(&mut self) {
        if let Some(l) = self.loading.take() {
            l.cancel.store(true, Ordering::Relaxed);
        }
        self.player.take();
        self.disconnect();
    }
}

/// The consumer-group prefix from the settings (a default when blank).
fn group_prefix(setting: &str) -> &str {
    let s = setting.trim();
    if s.is_empty() {
        "integr8tor"
    } else {
        s
    }
}

fn recording_stats(s: &RecorderStats) -> RecordingStats {
    RecordingStats {
        elapsed_ms: i64::try_from(s.elapsed_ms).unwrap_or(i64::MAX),
        events: s.events,
        events_per_s: s.events_per_s,
        bytes: s.bytes,
        duplicates: s.duplicates,
        malformed: s.malformed,
        filtered: s.filtered,
        gap_messages: s.gap_messages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_prefix_defaults() {
        assert_eq!(group_prefix("  "), "integr8tor");
        assert_eq!(group_prefix("team-a"), "team-a");
    }
}
