//! Settings kept across runs (eframe persistence) and the Settings panel.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use egui::RichText;

use super::model::BusView;
use super::workers::{self, BusSettings, Command, Outbox, Pick, RecordSettings, WorkerMsg};
use crate::kafka::StartFrom;

/// Smallest and largest live-history budgets, MB.
pub const MIN_HISTORY_MB: u32 = 4;
/// See [`MIN_HISTORY_MB`].
pub const MAX_HISTORY_MB: u32 = 4096;
/// Live redraw rates offered, in frames a second. Each frame of the whole
/// window costs a software renderer (no GPU) about as much as building it:
/// at 15 a second the live view is fluid and leaves the synth its CPU.
pub const MIN_LIVE_FPS: u32 = 5;
/// The most: what the eye needs for meters.
pub const MAX_LIVE_FPS: u32 = 30;
/// The default.
pub const DEFAULT_LIVE_FPS: u32 = 15;

/// Most recent files remembered.
pub const RECENT_FILES: usize = 10;

/// What the performer set, saved with the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Bootstrap servers; blank: the embedded broker with the demo engine.
    pub brokers: String,
    /// librdkafka options, one `key=value` per line.
    pub client_options: String,
    /// Consumer-group prefix (clusters often allow groups by prefix only).
    pub group_prefix: String,
    /// A recorder with no committed offset starts at the oldest retained message.
    pub start_earliest: bool,
    /// Where recordings go and what the browser lists.
    pub sessions_dir: PathBuf,
    /// How long a touch pins a path during playback.
    pub pin_ms: i64,
    /// Snapshot interval of recordings.
    pub snapshot_interval_ms: i64,
    /// Recently opened session files, newest first.
    pub recent_files: Vec<PathBuf>,
    /// Memory for the live history (values, mod buses, events), in MB.
    pub history_mb: u32,
    /// How often live data may redraw the window, in frames a second
    /// (playback and scrubbing draw at the display rate whatever this is).
    pub live_fps: u32,
    /// OSC and WebSocket bridges.
    pub bridges: super::bridges::BridgeSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            brokers: String::new(),
            client_options: String::new(),
            group_prefix: "integr8tor".to_owned(),
            start_earliest: false,
            sessions_dir: crate::engine::default_sessions_dir(),
            pin_ms: 3000,
            snapshot_interval_ms: crate::session::SNAPSHOT_INTERVAL_MS,
            recent_files: Vec::new(),
            history_mb: crate::app::history::DEFAULT_BUDGET_MB,
            live_fps: DEFAULT_LIVE_FPS,
            bridges: super::bridges::BridgeSettings::default(),
        }
    }
}

impl Settings {
    /// The librdkafka options, or the first line that is not `key=value`.
    pub fn parsed_options(&self) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for (i, line) in self.client_options.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let opt = crate::kafka::parse_option(line)
                .map_err(|e| format!("client settings line {}: {e}", i + 1))?;
            out.push(opt);
        }
        Ok(out)
    }

    /// The bus to connect to (options that do not parse are left out; the
    /// panel shows why).
    pub fn bus(&self) -> BusSettings {
        BusSettings {
            brokers: Some(self.brokers.trim().to_owned()).filter(|b| !b.is_empty()),
            options: self.parsed_options().unwrap_or_default(),
            group_id: self.group_prefix.clone(),
            start: if self.start_earliest {
                StartFrom::Earliest
            } else {
                StartFrom::Latest
            },
        }
    }

    /// What a new recording uses.
    pub fn record(&self) -> RecordSettings {
        RecordSettings {
            sessions_dir: self.sessions_dir.clone(),
            snapshot_interval_ms: self.snapshot_interval_ms.max(100),
        }
    }

    /// The shortest time between two frames that live data asks for.
    pub fn live_frame(&self) -> std::time::Duration {
        let fps = self.live_fps.clamp(MIN_LIVE_FPS, MAX_LIVE_FPS);
        std::time::Duration::from_micros(1_000_000 / u64::from(fps))
    }

    /// The live history's budget in bytes.
    pub fn history_bytes(&self) -> usize {
        self.history_mb.clamp(MIN_HISTORY_MB, MAX_HISTORY_MB) as usize * 1_000_000
    }

    /// Puts a file at the top of the recent list.
    pub fn remember(&mut self, path: PathBuf) {
        self.recent_files.retain(|p| p != &path);
        self.recent_files.insert(0, path);
        self.recent_files.truncate(RECENT_FILES);
    }
}

/// The Settings tab: edits a draft; Apply saves it and reconnects without a restart.
pub fn settings_ui(
    ui: &mut egui::Ui,
    draft: &mut Settings,
    saved: &mut Settings,
    bus: &BusView,
    bridges: &super::bridges::BridgeStatus,
    outbox: &Outbox,
    commands: &mut Vec<Command>,
) {
    egui::ScrollArea::vertical()
        .id_salt("settings-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            settings_body(ui, draft, saved, bus, bridges, outbox, commands)
        });
}

fn settings_body(
    ui: &mut egui::Ui,
    draft: &mut Settings,
    saved: &mut Settings,
    bus: &BusView,
    bridges: &super::bridges::BridgeStatus,
    outbox: &Outbox,
    commands: &mut Vec<Command>,
) {
    ui.heading("Bus");
    // what the workers actually connected to (a --brokers given at start wins over the setting)
    let in_use = if bus.brokers.is_empty() {
        "not connected yet".to_owned()
    } else if bus.embedded {
        format!("the embedded broker at {}", bus.brokers)
    } else {
        bus.brokers.clone()
    };
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new("In use:").strong());
        ui.label(in_use)
            .on_hover_text("The brokers the live view, recorder and replay use now");
        if bus.demo {
            ui.label(RichText::new("with the demo engine").weak());
        }
    });
    egui::Grid::new("settings-grid")
        .num_columns(2)
        .spacing([12.0, 8.0])
        .show(ui, |ui| {
            let l = ui.label("Brokers");
            ui.add(
                egui::TextEdit::singleline(&mut draft.brokers)
                    .hint_text("blank: embedded broker + demo")
                    .desired_width(320.0),
            )
            .labelled_by(l.id);
            ui.end_row();

            let l = ui.label("Client settings");
            ui.add(
                egui::TextEdit::multiline(&mut draft.client_options)
                    .hint_text("security.protocol=SASL_SSL\nsasl.mechanism=PLAIN")
                    .desired_rows(3)
                    .desired_width(320.0)
                    .code_editor(),
            )
            .labelled_by(l.id);
            ui.end_row();

            let l = ui.label("Consumer group prefix");
            ui.add(egui::TextEdit::singleline(&mut draft.group_prefix).desired_width(200.0))
                .labelled_by(l.id);
            ui.end_row();

            ui.label("Recorder starts at");
            ui.horizontal(|ui| {
                ui.radio_value(&mut draft.start_earliest, false, "Latest");
                ui.radio_value(&mut draft.start_earliest, true, "Earliest retained");
            });
            ui.end_row();
        });
    if let Err(e) = draft.parsed_options() {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }

    ui.add_space(8.0);
    ui.heading("Sessions");
    egui::Grid::new("settings-grid-2")
        .num_columns(2)
        .spacing([12.0, 8.0])
        .show(ui, |ui| {
            let l = ui.label("Sessions folder");
            ui.horizontal(|ui| {
                let mut dir = draft.sessions_dir.display().to_string();
                if ui
                    .add(egui::TextEdit::singleline(&mut dir).desired_width(320.0))
                    .labelled_by(l.id)
                    .changed()
                {
                    draft.sessions_dir = PathBuf::from(dir);
                }
                if ui
                    .button("Choose…")
                    .on_hover_text("Pick the sessions folder in a dialog")
                    .accessible_name("Choose sessions folder")
                    .clicked()
                {
                    let start = Some(draft.sessions_dir.clone());
                    if let Err(e) =
                        workers::spawn_dialog(Pick::SessionsFolder, start, outbox.clone())
                    {
                        outbox.send(WorkerMsg::Notice(format!(
                            "cannot show the folder dialog: {e}"
                        )));
                    }
                }
            });
            ui.end_row();

            ui.label("Pin duration");
            ui.add(
                egui::DragValue::new(&mut draft.pin_ms)
                    .range(100..=60_000)
                    .speed(50)
                    .suffix(" ms"),
            )
            .on_hover_text("Pin duration");
            ui.end_row();

            ui.label("Live history");
            ui.add(
                egui::DragValue::new(&mut draft.history_mb)
                    .range(MIN_HISTORY_MB..=MAX_HISTORY_MB)
                    .speed(1)
                    .suffix(" MB"),
            )
            .on_hover_text(
                "Memory kept for live values, mod buses and events; the oldest go first",
            );
            ui.end_row();

            ui.label("Live redraw rate");
            ui.add(
                egui::DragValue::new(&mut draft.live_fps)
                    .range(MIN_LIVE_FPS..=MAX_LIVE_FPS)
                    .speed(1)
                    .suffix(" frames/s"),
            )
            .on_hover_text(
                "How often live data may redraw the window; fewer frames leave more CPU to the synth",
            );
            ui.end_row();

            ui.label("Snapshot interval");
            ui.add(
                egui::DragValue::new(&mut draft.snapshot_interval_ms)
                    .range(100..=600_000)
                    .speed(100)
                    .suffix(" ms"),
            )
            .on_hover_text("Snapshot interval");
            ui.end_row();
        });

    ui.add_space(8.0);
    super::bridges::bridges_ui(ui, &mut draft.bridges, bridges);

    ui.add_space(12.0);
    let dirty = draft != saved;
    ui.horizontal(|ui| {
        let valid = draft.parsed_options().is_ok();
        if ui
            .add_enabled(dirty && valid, egui::Button::new("Apply"))
            .on_hover_text("Save; reconnect if the bus changed")
            .clicked()
        {
            let reconnect = draft.bus() != saved.bus();
            if draft.pin_ms != saved.pin_ms {
                commands.push(Command::SetPinMs(draft.pin_ms));
            }
            if draft.sessions_dir != saved.sessions_dir {
                commands.push(Command::ScanSessions(draft.sessions_dir.clone()));
            }
            if draft.bridges != saved.bridges {
                commands.push(Command::Bridges(draft.bridges.clone()));
            }
            // the recent list lives in the saved copy only
            let recent = std::mem::take(&mut saved.recent_files);
            *saved = draft.clone();
            saved.recent_files = recent;
            if reconnect {
                commands.push(Command::Connect(saved.bus()));
            }
        }
        if ui.add_enabled(dirty, egui::Button::new("Revert")).clicked() {
            *draft = saved.clone();
        }
        if ui
            .button("Reconnect")
            .on_hover_text("Connect again with the saved settings")
            .clicked()
        {
            commands.push(Command::Connect(saved.bus()));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_line_by_line() {
        let s = Settings {
            client_options: "# comment\nsecurity.protocol=SASL_SSL\n\n sasl.password=a=b \n".into(),
            ..Settings::default()
        };
        assert_eq!(
            s.parsed_options().unwrap(),
            vec![
                ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
                ("sasl.password".to_owned(), "a=b".to_owned())
            ]
        );
        let bad = Settings {
            client_options: "a=1\nnovalue".into(),
            ..Settings::default()
        };
        assert!(bad.parsed_options().unwrap_err().contains("line 2"));
    }

    #[test]
    fn blank_brokers_mean_embedded() {
        let s = Settings {
            brokers: "   ".into(),
            ..Settings::default()
        };
        assert_eq!(s.bus().brokers, None);
        let s = Settings {
            brokers: " h:9092 ".into(),
            start_earliest: true,
            ..Settings::default()
        };
        assert_eq!(s.bus().brokers.as_deref(), Some("h:9092"));
        assert_eq!(s.bus().start, StartFrom::Earliest);
    }

    #[test]
    fn recent_files_are_unique_newest_first_and_bounded() {
        let mut s = Settings::default();
        for i in 0..RECENT_FILES + 3 {
            s.remember(PathBuf::from(format!("/s/{i}.msgpack")));
        }
        s.remember(PathBuf::from("/s/5.msgpack"));
        assert_eq!(s.recent_files.len(), RECENT_FILES);
        assert_eq!(s.recent_files[0], PathBuf::from("/s/5.msgpack"));
        assert_eq!(
            s.recent_files
                .iter()
                .filter(|p| p.ends_with("5.msgpack"))
                .count(),
            1
        );
    }

    #[test]
    fn settings_survive_a_serde_round_trip_and_fill_missing_fields() {
        let s = Settings {
            brokers: "a:1".into(),
            pin_ms: 1234,
            ..Settings::default()
        };
        let text = serde_json::to_string(&s).unwrap();
        let back: Settings = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        let partial: Settings = serde_json::from_str(r#"{"brokers":"b:2"}"#).unwrap();
        assert_eq!(partial.brokers, "b:2");
        assert_eq!(partial.pin_ms, 3000);
    }
}
