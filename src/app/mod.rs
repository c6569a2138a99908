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
pub mod model;
pub mod settings;
pub mod workers;

mod browser;
mod live;
mod mods;
mod status;
mod timeline;
mod transport;
mod widgets;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

pub use control::{Control, ControlConfig};
pub use model::Model;
pub use settings::Settings;
pub use workers::{Command, PlayerCommand, WorkerMsg};

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

/// Worker messages wake the window at most this often: ~30 frames a second
/// keeps meters and plots fluid without a software renderer (no GPU) eating a
/// whole core.
const LIVE_FRAME: Duration = Duration::from_millis(33);

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
            let waker: workers::Waker =
                std::sync::Arc::new(move || ctx.request_repaint_after(LIVE_FRAME));
            Ok(Box::new(IntegratorApp::start(saved, launch, waker)))
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
#[derive(Debug, Default)]
pub struct UiState {
    /// The middle view.
    pub tab: Tab,
    /// Speed shown on the slider.
    pub speed: f64,
    /// Loop on.
    pub loop_on: bool,
    /// Loop start (session `ts_ms`).
    pub loop_a: Option<i64>,
    /// Loop end (session `ts_ms`).
    pub loop_b: Option<i64>,
    /// Muted groups.
    pub muted: BTreeSet<String>,
    /// The soloed group.
    pub solo: Option<String>,
    /// A value being dragged: (path, value).
    pub dragging: Option<(String, f64)>,
    /// The scrub bar's drag position (session `ts_ms`) and when a seek was last sent.
    pub scrub: Option<(i64, Option<Instant>)>,
    /// Visible time range of the timeline (`None`: the whole session).
    pub timeline_view: Option<(i64, i64)>,
    /// The settings being edited.
    pub settings_draft: Settings,
    /// The last load failure was dismissed.
    pub failure_dismissed: bool,
    /// The mod view shows the loaded session instead of live values.
    pub mods_session: bool,
    /// Cached per-pixel buckets of the timeline and mod plots.
    pub caches: timeline::Caches,
    /// The pin duration in force (for the countdown bar).
    pub pin_ms: i64,
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
            model: Model::new(),
            inbox,
            commands,
            outbox,
            control: None,
            ui: UiState {
                tab: Tab::Mods,
                speed: 1.0,
                settings_draft: settings.clone(),
                ..UiState::default()
            },
            settings,
            started: Instant::now(),
            pending: Vec::new(),
            closing: false,
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
                    self.ui.loop_on = false;
                    self.ui.loop_a = Some(s.range.0);
                    self.ui.loop_b = Some(s.range.1);
                    self.ui.timeline_view = None;
                    self.ui.muted.clear();
                    self.ui.solo = None;
                    self.ui.speed = 1.0;
                    if self.ui.tab != Tab::Settings {
                        self.ui.tab = Tab::Timeline;
                    }
                }
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

    /// Draws one frame: drain, keyboard, panels, commands.
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
        transport::shortcuts(
            &ctx,
            &self.model,
            &mut self.ui,
            &self.settings,
            &mut self.pending,
        );
        let now = self.now();

        egui::Panel::top("transport")
            .frame(
                egui::Frame::side_top_panel(ui.style())
                    .inner_margin(egui::Margin::symmetric(10, 8)),
            )
            .show(ui, |ui| {
                transport::transport_ui(
                    ui,
                    &self.model,
                    &mut self.ui,
                    &self.settings,
                    &mut self.pending,
                );
                ui.add_space(4.0);
                ui.horizontal(|ui| {
                    transport::position_ui(ui, &self.model);
                    timeline::scrub_ui(ui, &self.model, &mut self.ui, &mut self.pending);
                });
            });
        egui::Panel::bottom("status")
            .frame(
                egui::Frame::side_top_panel(ui.style())
                    .inner_margin(egui::Margin::symmetric(10, 4)),
            )
            .show(ui, |ui| status::status_ui(ui, &self.model, now));
        egui::Panel::left("live")
            .resizable(true)
            .default_size(380.0)
            .size_range(280.0..=700.0)
            .show(ui, |ui| {
                live::live_ui(ui, &self.model, &mut self.ui, &mut self.pending, now);
            });
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
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
                Tab::Timeline => {
                    timeline::timeline_ui(ui, &self.model, &mut self.ui, &mut self.pending)
                }
                Tab::Mods => mods::mods_ui(ui, &self.model, &mut self.ui, now),
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
                    &self.model.bridges,
                    &self.outbox,
                    &mut self.pending,
                ),
            }
        });

        self.send_pending();
        if more {
            ctx.request_repaint();
        } else if self.animating(now) {
            ctx.request_repaint_after(Duration::from_millis(33));
        }
    }

    /// Whether something on screen moves by itself (flash, playback, recording, loading).
    fn animating(&self, now: f64) -> bool {
        use workers::PlayState;
        self.model.playback.state == PlayState::Playing
            || self.model.recorder.is_active()
            || matches!(self.model.load, model::LoadView::Loading { .. })
            || self
                .model
                .params
                .values()
                .any(|p| now - p.changed_at < model::FLASH_S)
            || !self.model.playback.pins.is_empty()
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

impl eframe::App for IntegratorApp {
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
