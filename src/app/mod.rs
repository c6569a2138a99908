//! The desktop app: live view, transport, recording, playback with pinning,
//! session browser and settings, in one eframe/egui window.
//!
//! Shape (see ARCHITECTURE.md): workers ([`workers`], [`control`]) do every
//! slow thing and report [`WorkerMsg`]s on one channel; each frame drains
//! that channel within [`DRAIN_BUDGET`], applies the messages to the plain
//! [`Model`], draws the panels from it and sends [`Command`]s back. The window
//! itself never touches Kafka or a file.

pub mod bridges;
pub mod control;
pub mod export;
pub mod history;
pub mod model;
pub mod settings;
pub mod timeline;
pub mod workers;

mod browser;
mod live;
pub mod mods;
mod status;
pub mod transport;
mod widgets;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

pub use control::{Control, ControlConfig};
pub use model::Model;
pub use settings::Settings;
pub use workers::{Command, PlayerCommand, WorkerMsg};

use timeline::view::{ViewCommand, ViewResponse};
use workers::Outbox;

/// The window title.
pub const TITLE: &str = "Integr8tor";
/// Longest time a frame spends applying worker messages.
pub const DRAIN_BUDGET: Duration = Duration::from_millis(4);
/// Key under which eframe stores the settings.
const SETTINGS_KEY: &str = "integr8tor-settings";

/// How the app was started from the command line.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// `--brokers` (overrides the saved setting for this run).
    pub brokers: Option<String>,
    /// `-X key=value` options (added to the saved ones for this run).
    pub options: Vec<(String, String)>,
    /// A session file to load at start (`--open`).
    pub open: Option<PathBuf>,
    /// The live history budget to set, in MB (`--history-mb`).
    pub history_mb: Option<u32>,
}

/// Why the window could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No display to open a window on.
    #[error(
        "no display to open the window on ({0}); use the command line instead: `integr8tor --help`"
    )]
    NoDisplay(String),
    /// The windowing system or OpenGL failed.
    #[error(
        "cannot open the window: {0}; the command line works without one: `integr8tor --help`"
    )]
    Window(String),
}

/// Worker messages wake the window at most once per this many microseconds
/// (the Live redraw rate of the settings), shared with the waker.
pub type LiveFrame = std::sync::Arc<std::sync::atomic::AtomicU64>;

fn live_frame(cell: &LiveFrame) -> Duration {
    Duration::from_micros(cell.load(std::sync::atomic::Ordering::Relaxed))
}

/// Below this width the Live panel starts folded.
const NARROW: f32 = 900.0;

/// The playhead moves at about the display rate.
const DISPLAY_FRAME: Duration = Duration::from_millis(16);

/// Opens the window and runs until it is closed (or SIGTERM/SIGINT).
pub fn run(launch: Launch) -> Result<(), AppError> {
    #[cfg(all(unix, not(target_os = "macos")))]
    if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        return Err(AppError::NoDisplay("DISPLAY is not set".to_owned()));
    }
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title(TITLE)
            .with_app_id("integr8tor")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([800.0, 500.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        TITLE,
        options,
        Box::new(move |cc| {
            let saved: Settings = cc
                .storage
                .and_then(|s| eframe::get_value(s, SETTINGS_KEY))
                .unwrap_or_default();
            let ctx = cc.egui_ctx.clone();
            let frame: LiveFrame = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(
                saved.live_frame().as_micros() as u64,
            ));
            let cell = std::sync::Arc::clone(&frame);
            let waker: workers::Waker =
                std::sync::Arc::new(move || ctx.request_repaint_after(live_frame(&cell)));
            let mut app = IntegratorApp::start(saved, launch, waker);
            app.live_frame = frame;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| AppError::Window(e.to_string()))
}

/// Which view fills the middle of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    /// Lanes of events and the playhead.
    #[default]
    Timeline,
    /// The 16 mod buses.
    Mods,
    /// The sessions folder, open, recent files.
    Sessions,
    /// Bus and recording settings.
    Settings,
}

/// Window-only state: what the performer is doing with the controls.
/// Playback state is not here: it is the player's, in [`Model::playback`].
#[derive(Debug, Default)]
pub struct UiState {
    /// The middle view.
    pub tab: Tab,
    /// A value being dragged: (path, value).
    pub dragging: Option<(String, f64)>,
    /// A scrub of the scrub bar in progress.
    pub scrub: Option<timeline::scrub::Scrub>,
    /// While scrubbing: the instant and the session's exact state there (the Live panel shows it).
    pub scrub_state: Option<(i64, BTreeMap<String, f64>)>,
    /// The view of the loaded session (timeline and mod buses).
    pub session_view: timeline::view::TimeView,
    /// The view of the live history.
    pub live_view: timeline::view::TimeView,
    /// The timeline and mod buses show the live history instead of the session.
    pub show_live: bool,
    /// Lanes: collapsed groups, caches, hover readout.
    pub timeline: timeline::TimelineState,
    /// The mod buses' cache.
    pub mods_cache: timeline::LaneCache,
    /// The scrub bar's density cache.
    pub density: timeline::scrub::DensityCache,
    /// The settings being edited.
    pub settings_draft: Settings,
    /// The last load failure was dismissed.
    pub failure_dismissed: bool,
    /// The pin duration in force (for the countdown bar).
    pub pin_ms: i64,
    /// The path typed in the Sessions view's path field.
    pub open_path: String,
    /// The system file dialog could not be shown (why), so the path field is offered.
    pub dialog_failed: Option<String>,
    /// The Live side panel: shown or folded by the performer (`None`: folded
    /// when the window is narrow).
    pub side_shown: Option<bool>,
    /// The Sessions view's export job.
    pub export: export::ExportPanel,
}

impl UiState {
    fn new(settings: &Settings) -> UiState {
        UiState {
            tab: Tab::Timeline,
            settings_draft: settings.clone(),
            session_view: timeline::view::TimeView::session(),
            live_view: timeline::view::TimeView::live(),
            show_live: true,
            ..UiState::default()
        }
    }
}

/// The app: model, channels, settings, and the panels that draw them.
pub struct IntegratorApp {
    model: Model,
    inbox: Receiver<WorkerMsg>,
    commands: Sender<Command>,
    outbox: Outbox,
    control: Option<Control>,
    settings: Settings,
    ui: UiState,
    started: Instant,
    pending: Vec<Command>,
    closing: bool,
    /// The Live redraw rate in force (the waker reads it too).
    live_frame: LiveFrame,
}

impl std::fmt::Debug for IntegratorApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegratorApp").finish_non_exhaustive()
    }
}

impl IntegratorApp {
    /// Starts the workers (connecting to the bus of `launch` or the saved
    /// settings) and watches for SIGTERM.
    pub fn start(saved: Settings, launch: Launch, waker: workers::Waker) -> IntegratorApp {
        let (tx, inbox) = crossbeam_channel::unbounded();
        let outbox = Outbox::new(tx, waker);
        let mut bus = saved.bus();
        if let Some(b) = launch.brokers.filter(|b| !b.trim().is_empty()) {
            bus.brokers = Some(b);
        }
        bus.options.extend(launch.options);
        let open = launch.open;
        let mut saved = saved;
        if let Some(mb) = launch.history_mb {
            saved.history_mb = mb;
        }
        if let Err(e) = workers::spawn_signal_watcher(outbox.clone()) {
            log::warn!("cannot watch for SIGTERM: {e}");
        }
        let config = ControlConfig {
            pin_ms: saved.pin_ms,
            connect: Some(bus),
            demo: true,
        };
        let (control, commands) = match Control::start(outbox.clone(), config) {
            Ok(c) => {
                let s = c.sender();
                (Some(c), s)
            }
            Err(e) => {
                outbox.send(WorkerMsg::Notice(format!("cannot start the workers: {e}")));
                (None, crossbeam_channel::unbounded().0)
            }
        };
        let mut app = IntegratorApp::with_channels(saved, commands, inbox, outbox);
        app.control = control;
        app.pending
            .push(Command::ScanSessions(app.settings.sessions_dir.clone()));
        app.pending
            .push(Command::Bridges(app.settings.bridges.clone()));
        if let Some(path) = open {
            app.open(path, false);
        }
        app
    }

    /// An app over given channels and no workers of its own: tests drive it
    /// by reading `commands` and sending [`WorkerMsg`]s into `inbox`.
    pub fn with_channels(
        settings: Settings,
        commands: Sender<Command>,
        inbox: Receiver<WorkerMsg>,
        outbox: Outbox,
    ) -> IntegratorApp {
        IntegratorApp {
            inbox,
            commands,
            outbox,
            control: None,
            ui: UiState::new(&settings),
            model: {
                let mut m = Model::new();
                m.history.set_budget(settings.history_bytes());
                m
            },
            started: Instant::now(),
            pending: Vec::new(),
            closing: false,
            live_frame: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(
                settings.live_frame().as_micros() as u64,
            )),
            settings,
        }
    }

    /// An app whose control thread is real but stays off the bus (tests of
    /// loading and playback without a broker).
    pub fn offline(settings: Settings) -> IntegratorApp {
        let (tx, inbox) = crossbeam_channel::unbounded();
        let outbox = Outbox::new(tx, workers::no_waker());
        let control = Control::start(
            outbox.clone(),
            ControlConfig {
                pin_ms: settings.pin_ms,
                connect: None,
                demo: false,
            },
        )
        .expect("starting the control thread");
        let mut app = IntegratorApp::with_channels(settings, control.sender(), inbox, outbox);
        app.control = Some(control);
        app
    }

    /// The model (for tests and the status bar).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The saved settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The window-only state.
    pub fn ui_state(&self) -> &UiState {
        &self.ui
    }

    /// The window-only state, to set a view up (tests and benches).
    pub fn ui_state_mut(&mut self) -> &mut UiState {
        &mut self.ui
    }

    /// Whether every worker message has been applied.
    pub fn inbox_is_empty(&self) -> bool {
        self.inbox.is_empty()
    }

    /// Seconds since the app started (the model's clock).
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Applies worker messages for at most [`DRAIN_BUDGET`]; true when some are left.
    fn drain(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < DRAIN_BUDGET {
            let Ok(msg) = self.inbox.try_recv() else {
                return false;
            };
            match &msg {
                WorkerMsg::FileChosen(path) => self.open(path.clone(), false),
                WorkerMsg::FolderChosen(path) => {
                    // lands in the draft: Apply saves it and lists the folder
                    self.ui.settings_draft.sessions_dir = path.clone();
                    self.ui.tab = Tab::Settings;
                }
                WorkerMsg::Loaded(s) => {
                    self.settings.remember(s.path.clone());
                    self.ui.session_view.reset();
                    self.ui.show_live = false;
                    self.ui.scrub = None;
                    self.ui.scrub_state = None;
                    self.ui.timeline.hover = None;
                    // the timeline and mod buses now show the session
                    if !matches!(self.ui.tab, Tab::Settings | Tab::Mods) {
                        self.ui.tab = Tab::Timeline;
                    }
                }
                WorkerMsg::DialogUnavailable(why) => self.ui.dialog_failed = Some(why.clone()),
                WorkerMsg::LoadFailed(_) => {
                    self.ui.failure_dismissed = false;
                    self.ui.tab = Tab::Sessions;
                }
                WorkerMsg::LoadStarted(_) => self.ui.tab = Tab::Sessions,
                WorkerMsg::RecordingStopped { .. } => {
                    // the new file belongs in the listing
                    self.pending
                        .push(Command::ScanSessions(self.settings.sessions_dir.clone()));
                }
                _ => {}
            }
            let now = self.now();
            self.model.apply(msg, now);
        }
        true
    }

    /// Asks for a session to be loaded (and shows the Sessions view while it loads).
    fn open(&mut self, path: PathBuf, recover: bool) {
        self.pending.push(Command::Open { path, recover });
    }

    fn send_pending(&mut self) {
        for cmd in self.pending.drain(..) {
            if self.commands.send(cmd).is_err() {
                log::warn!("the control thread is gone; command dropped");
            }
        }
    }

    /// The source the timeline and mod buses show.
    fn source(&self) -> Option<timeline::Source<'_>> {
        match (&self.model.session, self.ui.show_live) {
            (Some(s), false) => Some(timeline::Source::Session(s)),
            _ => Some(timeline::Source::Live(
                &self.model.history,
                self.model.live_generation,
            )),
        }
    }

    /// Draws one frame: drain, keyboard, panels, view commands, worker commands, repaint.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        let more = self.drain();
        if self.model.terminate && !self.closing {
            self.closing = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if let Some(path) = dropped.into_iter().next() {
            self.open(path, false);
        }
        self.ui.pin_ms = self.settings.pin_ms;
        let now = self.now();
        let playhead = self.model.playhead_ms(now);
        let bounds = self.model.session.as_ref().map(|s| s.range);
        let record = self.settings.record();
        let mut view_cmds = Vec::new();
        let showing_session = self.model.session.is_some() && !self.ui.show_live;

        {
            let view = if showing_session {
                &self.ui.session_view
            } else {
                &self.ui.live_view
            };
            let input = transport::TransportIn {
                recorder: &self.model.recorder,
                playback: &self.model.playback,
                bounds,
                playhead,
                view: &self.ui.session_view,
                record: &record,
            };
            let zoom_at = matches!(self.ui.tab, Tab::Timeline | Tab::Mods)
                .then(|| self.source().and_then(|s| s.bounds()))
                .flatten()
                .map(|b| {
                    let (a, z) = view.visible(b);
                    if showing_session && (a..=z).contains(&playhead) {
                        playhead
                    } else {
                        a + (z - a) / 2
                    }
                });
            transport::shortcuts(&ctx, &input, zoom_at, &mut self.pending, &mut view_cmds);

            egui::Panel::top("transport")
                .frame(
                    unfilled(egui::Frame::side_top_panel(ui.style()))
                        .inner_margin(egui::Margin::symmetric(10, 8)),
                )
                .show(ui, |ui| {
                    transport::transport_ui(ui, &input, &mut self.pending, &mut view_cmds);
                    ui.add_space(4.0);
                    ui.horizontal(|ui| {
                        transport::position_ui(
                            ui,
                            &self.model,
                            self.ui.scrub.map_or(playhead, |d| d.t),
                        );
                        match &self.model.session {
                            Some(s) => {
                                let visible = self
                                    .ui
                                    .session_view
                                    .zoomed()
                                    .then(|| self.ui.session_view.visible(s.range));
                                timeline::scrub::scrub_ui(
                                    ui,
                                    timeline::scrub::ScrubIn {
                                        session: s,
                                        playhead,
                                        playing: self.model.playback.state
                                            == workers::PlayState::Playing,
                                        loop_range: self.model.playback.loop_range,
                                        visible,
                                    },
                                    &mut self.ui.scrub,
                                    &mut self.ui.density,
                                    &mut self.pending,
                                );
                            }
                            None => timeline::scrub::empty_ui(ui),
                        }
                    });
                });
        }
        egui::Panel::bottom("status")
            .frame(
                unfilled(egui::Frame::side_top_panel(ui.style()))
                    .inner_margin(egui::Margin::symmetric(10, 4)),
            )
            .show(ui, |ui| status::status_ui(ui, &self.model, now));
        // the scrubbed instant's exact state, for the Live panel
        self.update_scrub_state();
        let narrow = ui.available_width() < NARROW;
        let side_shown = self.ui.side_shown.unwrap_or(!narrow);
        if side_shown {
            egui::Panel::left("live")
                .frame(unfilled(egui::Frame::side_top_panel(ui.style())))
                .resizable(true)
                .default_size(if narrow { 280.0 } else { 380.0 })
                .size_range(240.0..=700.0)
                .show(ui, |ui| {
                    live::live_ui(ui, &self.model, &mut self.ui, &mut self.pending, now);
                });
        }
        egui::CentralPanel::default()
            .frame(unfilled(egui::Frame::central_panel(ui.style())))
            .show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    let (icon, hover) = if side_shown {
                        ("◀", "Hide the Live panel")
                    } else {
                        ("▶", "Show the Live panel")
                    };
                    if ui
                        .button(icon)
                        .on_hover_text(hover)
                        .accessible_name("Live panel")
                        .clicked()
                    {
                        self.ui.side_shown = Some(!side_shown);
                    }
                    for (tab, name) in [
                        (Tab::Timeline, "Timeline"),
                        (Tab::Mods, "Mod buses"),
                        (Tab::Sessions, "Sessions"),
                        (Tab::Settings, "Settings"),
                    ] {
                        ui.selectable_value(
                            &mut self.ui.tab,
                            tab,
                            egui::RichText::new(name).size(15.0),
                        );
                    }
                });
                ui.separator();
                match self.ui.tab {
                    Tab::Timeline | Tab::Mods => self.time_views_ui(ui, playhead, &mut view_cmds),
                    Tab::Sessions => browser::browser_ui(
                        ui,
                        &self.model,
                        &mut self.ui,
                        &mut self.settings,
                        &self.outbox,
                        &mut self.pending,
                    ),
                    Tab::Settings => settings::settings_ui(
                        ui,
                        &mut self.ui.settings_draft,
                        &mut self.settings,
                        &self.model.bus,
                        &self.model.bridges,
                        &self.outbox,
                        &mut self.pending,
                    ),
                }
            });
        // the budget and redraw rate may have changed in Settings
        if self.model.history.budget() != self.settings.history_bytes() {
            self.model.history.set_budget(self.settings.history_bytes());
        }
        self.live_frame.store(
            self.settings.live_frame().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );

        let mut changed = self.apply_view(view_cmds);
        if showing_session && self.model.playback.state == workers::PlayState::Playing {
            let b = bounds.unwrap_or_default();
            changed = changed.or(self.ui.session_view.follow_playhead(playhead, b));
        }
        self.send_pending();
        if more || changed.range_changed {
            ctx.request_repaint();
        } else if let Some(after) = self.next_frame(now) {
            ctx.request_repaint_after(after);
        }
    }

    /// The Timeline or Mod buses tab with its toolbar.
    fn time_views_ui(
        &mut self,
        ui: &mut egui::Ui,
        playhead: i64,
        view_cmds: &mut Vec<ViewCommand>,
    ) {
        let has_session = self.model.session.is_some();
        if !has_session {
            self.ui.show_live = true;
        }
        let showing_session = has_session && !self.ui.show_live;
        let source = match (&self.model.session, showing_session) {
            (Some(s), true) => timeline::Source::Session(s),
            _ => timeline::Source::Live(&self.model.history, self.model.live_generation),
        };
        let view = if showing_session {
            &self.ui.session_view
        } else {
            &self.ui.live_view
        };
        timeline::toolbar_ui(
            ui,
            source,
            view,
            has_session,
            &mut self.ui.show_live,
            view_cmds,
        );
        let playhead = showing_session.then(|| self.ui.scrub.map_or(playhead, |d| d.t));
        if self.ui.tab == Tab::Timeline {
            timeline::timeline_ui(
                ui,
                timeline::TimelineIn {
                    source,
                    view,
                    playhead,
                    loop_range: if showing_session {
                        self.model.playback.loop_range
                    } else {
                        None
                    },
                    pins: &self.model.playback.pins,
                },
                &mut self.ui.timeline,
                &mut self.pending,
                view_cmds,
            );
        } else {
            mods::mods_ui(
                ui,
                mods::ModsIn {
                    source,
                    view,
                    playhead,
                    live: &self.model.mods,
                },
                &mut self.ui.mods_cache,
                view_cmds,
            );
        }
    }

    /// Applies the frame's view commands to the view shown; a changed loop
    /// selection goes to the player while it loops.
    fn apply_view(&mut self, cmds: Vec<ViewCommand>) -> ViewResponse {
        let mut all = ViewResponse::default();
        let showing_session = self.model.session.is_some() && !self.ui.show_live;
        for cmd in cmds {
            let loop_cmd = matches!(cmd, ViewCommand::SetLoopA(_) | ViewCommand::SetLoopB(_));
            let (view, bounds) = if showing_session || loop_cmd {
                let Some(s) = &self.model.session else {
                    continue;
                };
                (&mut self.ui.session_view, s.range)
            } else {
                let Some(b) = self.model.history.range() else {
                    continue;
                };
                (&mut self.ui.live_view, b)
            };
            let resp = view.apply(cmd, bounds);
            if let Some(range) = resp.loop_changed {
                if self.model.playback.loop_range.is_some() {
                    self.pending
                        .push(Command::Transport(PlayerCommand::SetLoop(Some(range))));
                }
            }
            all = all.or(resp);
        }
        all
    }

    /// While scrubbing: the session's exact state at the scrubbed instant.
    fn update_scrub_state(&mut self) {
        let (Some(d), Some(s)) = (self.ui.scrub, &self.model.session) else {
            self.ui.scrub_state = None;
            return;
        };
        if self.ui.scrub_state.as_ref().is_some_and(|(t, _)| *t == d.t) {
            return;
        }
        let values = s
            .session
            .state_at(d.t)
            .into_iter()
            .map(|(id, v)| (s.session.name(id).to_owned(), v))
            .collect();
        self.ui.scrub_state = Some((d.t, values));
    }

    /// When the next frame is due with no new message: at the display rate
    /// while playing or scrubbing, at 30 Hz while something flashes, at 10 Hz
    /// for pin countdowns and recording clocks, and never when at rest.
    fn next_frame(&self, now: f64) -> Option<Duration> {
        use workers::PlayState;
        if self.model.playback.state == PlayState::Playing || self.ui.scrub.is_some() {
            return Some(DISPLAY_FRAME);
        }
        let flashing = self
            .model
            .params
            .values()
            .any(|p| now - p.changed_at < model::FLASH_S);
        if flashing || matches!(self.model.load, model::LoadView::Loading { .. }) {
            return Some(self.settings.live_frame());
        }
        if self.model.recorder.is_active()
            || self
                .model
                .playback
                .pins
                .iter()
                .any(|p| p.held || p.left_ms > 0)
        {
            return Some(Duration::from_millis(100));
        }
        None
    }

    /// Stops the workers (finalizing a recording). Called on exit; also on drop.
    pub fn shutdown(&mut self) {
        if let Some(mut c) = self.control.take() {
            c.shutdown();
        }
    }
}

impl Drop for IntegratorApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A panel's frame without its fill: the window is cleared to the panel
/// colour before each frame ([`eframe::App::clear_color`]), so filling the
/// panels again only repaints every pixel of the window once more (work a
/// software renderer does for each of them, every frame).
fn unfilled(frame: egui::Frame) -> egui::Frame {
    frame.fill(egui::Color32::TRANSPARENT)
}

impl eframe::App for IntegratorApp {
    fn clear_color(&self, visuals: &egui::Visuals) -> [f32; 4] {
        visuals.panel_fill.to_normalized_gamma_f32()
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        IntegratorApp::ui(self, ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shutdown();
    }
}
