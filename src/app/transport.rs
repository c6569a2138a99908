//! The transport bar (record, play/pause, stop, steps, speed, loop A–B,
//! position) and its keyboard shortcuts.

use egui::{Button, Key, Modifiers, RichText, Vec2};

use super::model::{Model, RecorderView};
use super::timeline::view::{TimeView, ViewCommand, KEY_ZOOM};
use super::widgets::{fmt_bytes, fmt_clock, fmt_count, PLAYHEAD, REC_RED};
use super::workers::{Command, PlayState, PlayerCommand, PlayerStatus, RecordSettings};
use crate::engine::player::SPEED_RANGE;

/// Accessible names of the transport controls (tests click them by these).
pub mod names {
    /// Start recording.
    pub const RECORD: &str = "Record";
    /// Stop the recording.
    pub const STOP_RECORDING: &str = "Stop recording";
    /// Play.
    pub const PLAY: &str = "Play";
    /// Pause.
    pub const PAUSE: &str = "Pause";
    /// Stop playback.
    pub const STOP: &str = "Stop";
    /// One event back.
    pub const STEP_BACK: &str = "Step back";
    /// One event forward.
    pub const STEP_FORWARD: &str = "Step forward";
    /// To the start.
    pub const TO_START: &str = "Go to start";
    /// To the end.
    pub const TO_END: &str = "Go to end";
    /// Speed slider.
    pub const SPEED: &str = "Speed";
    /// Loop toggle.
    pub const LOOP: &str = "Loop";
    /// Set loop start at the playhead.
    pub const SET_A: &str = "Set loop start A";
    /// Set loop end at the playhead.
    pub const SET_B: &str = "Set loop end B";
}

/// What the transport reads: the recorder, the player's own status, the
/// session's bounds, the playhead and the loop selection.
#[derive(Debug, Clone, Copy)]
pub struct TransportIn<'a> {
    /// The recorder.
    pub recorder: &'a RecorderView,
    /// The player, as it reported itself.
    pub playback: &'a PlayerStatus,
    /// The loaded session's first and last instants.
    pub bounds: Option<(i64, i64)>,
    /// The playhead now.
    pub playhead: i64,
    /// The loop selection.
    pub view: &'a TimeView,
    /// Settings for a new recording.
    pub record: &'a RecordSettings,
}

impl TransportIn<'_> {
    fn playing(&self) -> bool {
        self.playback.state == PlayState::Playing
    }
}

/// Toggles recording.
fn toggle_record(input: &TransportIn<'_>, cmds: &mut Vec<Command>) {
    match input.recorder {
        RecorderView::Idle => cmds.push(Command::StartRecording(input.record.clone())),
        RecorderView::Recording { .. } => cmds.push(Command::StopRecording),
        RecorderView::Starting | RecorderView::Stopping { .. } => {}
    }
}

fn play_pause(input: &TransportIn<'_>, cmds: &mut Vec<Command>) {
    cmds.push(Command::Transport(if input.playing() {
        PlayerCommand::Pause
    } else {
        PlayerCommand::Play
    }));
}

/// Loop on (over the selection) or off: the player says which it is.
fn toggle_loop(input: &TransportIn<'_>, cmds: &mut Vec<Command>) {
    let range = match input.playback.loop_range {
        Some(_) => None,
        None => match input.bounds.and_then(|b| input.view.loop_range(b)) {
            Some(r) => Some(r),
            None => return,
        },
    };
    cmds.push(Command::Transport(PlayerCommand::SetLoop(range)));
}

/// Space play/pause, R record, Left/Right one event, Shift+Left/Right one
/// second, Home/End, L loop, +/- zoom. Keys are consumed so a focused
/// button does not also react to them; nothing happens while a text field
/// has the keyboard.
pub fn shortcuts(
    ctx: &egui::Context,
    input: &TransportIn<'_>,
    zoom_at: Option<i64>,
    cmds: &mut Vec<Command>,
    view_cmds: &mut Vec<ViewCommand>,
) {
    if ctx.text_edit_focused() {
        return;
    }
    let pressed = |m: Modifiers, key: Key| ctx.input_mut(|i| i.consume_key(m, key));
    if pressed(Modifiers::NONE, Key::Space) {
        play_pause(input, cmds);
    }
    if pressed(Modifiers::NONE, Key::R) {
        toggle_record(input, cmds);
    }
    if let Some((first, last)) = input.bounds {
        if pressed(Modifiers::SHIFT, Key::ArrowLeft) {
            let t = (input.playhead - 1000).max(first);
            cmds.push(Command::Transport(PlayerCommand::Seek(t)));
        }
        if pressed(Modifiers::SHIFT, Key::ArrowRight) {
            let t = (input.playhead + 1000).min(last);
            cmds.push(Command::Transport(PlayerCommand::Seek(t)));
        }
    }
    if pressed(Modifiers::NONE, Key::ArrowLeft) {
        cmds.push(Command::Transport(PlayerCommand::StepBack));
    }
    if pressed(Modifiers::NONE, Key::ArrowRight) {
        cmds.push(Command::Transport(PlayerCommand::StepForward));
    }
    if let Some((first, last)) = input.bounds {
        if pressed(Modifiers::NONE, Key::Home) {
            cmds.push(Command::Transport(PlayerCommand::Seek(first)));
        }
        if pressed(Modifiers::NONE, Key::End) {
            cmds.push(Command::Transport(PlayerCommand::Seek(last)));
        }
    }
    if pressed(Modifiers::NONE, Key::L) {
        toggle_loop(input, cmds);
    }
    if let Some(at) = zoom_at {
        let zoom_in = pressed(Modifiers::NONE, Key::Plus)
            || pressed(Modifiers::NONE, Key::Equals)
            || pressed(Modifiers::SHIFT, Key::Equals);
        if zoom_in {
            view_cmds.push(ViewCommand::Zoom {
                factor: KEY_ZOOM,
                at,
            });
        }
        if pressed(Modifiers::NONE, Key::Minus) {
            view_cmds.push(ViewCommand::Zoom {
                factor: 1.0 / KEY_ZOOM,
                at,
            });
        }
    }
}

fn big(text: &str) -> RichText {
    RichText::new(text).size(16.0)
}

/// Width of the speed label and slider.
const SPEED_W: f32 = 230.0;

/// Width kept for the recorder's figures, so nothing moves when a recording starts.
const RECORDER_W: f32 = 250.0;

/// The transport bar; wraps onto more rows in a narrow window.
pub fn transport_ui(
    ui: &mut egui::Ui,
    input: &TransportIn<'_>,
    cmds: &mut Vec<Command>,
    view_cmds: &mut Vec<ViewCommand>,
) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 6.0;
        recorder_ui(ui, input, cmds);
        ui.separator();
        // not in a child scope: a scope would wrap within its own start column
        player_ui(ui, input, cmds, view_cmds);
    });
}

/// Record / stop, and the recording's figures in a fixed-width box.
fn recorder_ui(ui: &mut egui::Ui, input: &TransportIn<'_>, cmds: &mut Vec<Command>) {
    ui.allocate_ui_with_layout(
        Vec2::new(96.0 + RECORDER_W, 34.0),
        egui::Layout::left_to_right(egui::Align::Center),
        |ui| {
            ui.set_min_size(Vec2::new(96.0 + RECORDER_W, 34.0));
            match input.recorder {
                RecorderView::Idle => {
                    let b =
                        Button::new(big("⏺ Record").color(REC_RED)).min_size([96.0, 30.0].into());
                    if ui
                        .add(b)
                        .on_hover_text("Record the bus into a new session file (R)")
                        .accessible_name(names::RECORD)
                        .clicked()
                    {
                        toggle_record(input, cmds);
                    }
                }
                RecorderView::Starting => {
                    ui.add_enabled(
                        false,
                        Button::new(big("⏺ Starting…")).min_size([96.0, 30.0].into()),
                    )
                    .accessible_name(names::RECORD);
                }
                RecorderView::Recording { path, stats }
                | RecorderView::Stopping { path, stats } => {
                    let b = Button::new(big("⏹ Stop rec").color(egui::Color32::WHITE))
                        .fill(REC_RED)
                        .min_size([96.0, 30.0].into());
                    if ui
                        .add(b)
                        .on_hover_text("Finish the recording (R)")
                        .accessible_name(names::STOP_RECORDING)
                        .clicked()
                    {
                        toggle_record(input, cmds);
                    }
                    let name = path
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                    ui.vertical(|ui| {
                        ui.spacing_mut().item_spacing.y = 0.0;
                        ui.label(
                            RichText::new(format!("REC {}", fmt_clock(stats.elapsed_ms)))
                                .color(REC_RED)
                                .strong()
                                .monospace(),
                        );
                        ui.add(
                            egui::Label::new(
                                RichText::new(format!(
                                    "{name} · {} · {} ev",
                                    fmt_bytes(stats.bytes),
                                    fmt_count(stats.events)
                                ))
                                .small(),
                            )
                            .truncate(),
                        )
                        .on_hover_text(path.display().to_string());
                    });
                }
            }
        },
    );
}

fn button(ui: &mut egui::Ui, on: bool, text: &str, w: f32, hover: &str, name: &str) -> bool {
    ui.add_enabled(on, Button::new(big(text)).min_size([w, 30.0].into()))
        .on_hover_text(hover)
        .accessible_name(name)
        .clicked()
}

/// Start/end, steps, play/pause, stop, speed and the loop.
fn player_ui(
    ui: &mut egui::Ui,
    input: &TransportIn<'_>,
    cmds: &mut Vec<Command>,
    view_cmds: &mut Vec<ViewCommand>,
) {
    let bounds = input.bounds;
    let on = bounds.is_some();
    let seek = |cmds: &mut Vec<Command>, t: Option<i64>| {
        if let Some(t) = t {
            cmds.push(Command::Transport(PlayerCommand::Seek(t)));
        }
    };
    if button(ui, on, "⏮", 30.0, "Go to start (Home)", names::TO_START) {
        seek(cmds, bounds.map(|b| b.0));
    }
    if button(
        ui,
        on,
        "⏪",
        30.0,
        "Step back one event (Left; Shift+Left: one second)",
        names::STEP_BACK,
    ) {
        cmds.push(Command::Transport(PlayerCommand::StepBack));
    }
    let playing = input.playing();
    let (text, name) = if playing {
        ("⏸ Pause", names::PAUSE)
    } else {
        ("⏵ Play", names::PLAY)
    };
    let mut b = Button::new(big(text)).min_size([88.0, 30.0].into());
    if playing {
        b = b.fill(PLAYHEAD.gamma_multiply(0.35));
    }
    if ui
        .add_enabled(on, b)
        .on_hover_text("Play / pause (Space)")
        .accessible_name(name)
        .clicked()
    {
        play_pause(input, cmds);
    }
    if button(
        ui,
        on,
        "⏹ Stop",
        70.0,
        "Stop and return to the start",
        names::STOP,
    ) {
        cmds.push(Command::Transport(PlayerCommand::Stop));
    }
    if button(
        ui,
        on,
        "⏩",
        30.0,
        "Step forward one event (Right; Shift+Right: one second)",
        names::STEP_FORWARD,
    ) {
        cmds.push(Command::Transport(PlayerCommand::StepForward));
    }
    if button(ui, on, "⏭", 30.0, "Go to end (End)", names::TO_END) {
        seek(cmds, bounds.map(|b| b.1));
    }
    ui.separator();

    // speed: the slider shows what the player reports
    // label and slider as one box of known width, so the row wraps before it
    ui.allocate_ui_with_layout(
        Vec2::new(SPEED_W, 30.0),
        egui::Layout::left_to_right(egui::Align::Center),
        |ui| {
            ui.label("Speed");
            let mut speed = if input.playback.speed > 0.0 {
                input.playback.speed
            } else {
                1.0
            };
            let slider = egui::Slider::new(&mut speed, SPEED_RANGE.0..=SPEED_RANGE.1)
                .logarithmic(true)
                .max_decimals(2)
                .suffix("×");
            let r = ui.add_enabled(on, slider).accessible_name(names::SPEED);
            if r.double_clicked() {
                cmds.push(Command::Transport(PlayerCommand::SetSpeed(1.0)));
            } else if r.changed() {
                cmds.push(Command::Transport(PlayerCommand::SetSpeed(speed)));
            }
        },
    );
    ui.separator();

    // loop: on/off as the player says; A and B are the selection
    let looping = input.playback.loop_range.is_some();
    if ui
        .add_enabled(on, Button::selectable(looping, big("🔁 Loop")))
        .on_hover_text("Loop between A and B (L)")
        .accessible_name(names::LOOP)
        .clicked()
    {
        toggle_loop(input, cmds);
    }
    let b = bounds.unwrap_or((0, 0));
    let (a_t, b_t) = input.view.loop_points(b);
    if ui
        .add_enabled(on, Button::new(format!("A {}", fmt_clock(a_t - b.0))))
        .on_hover_text("Set loop start A at the playhead")
        .accessible_name(names::SET_A)
        .clicked()
    {
        view_cmds.push(ViewCommand::SetLoopA(input.playhead));
    }
    if ui
        .add_enabled(on, Button::new(format!("B {}", fmt_clock(b_t - b.0))))
        .on_hover_text("Set loop end B at the playhead")
        .accessible_name(names::SET_B)
        .clicked()
    {
        view_cmds.push(ViewCommand::SetLoopB(input.playhead));
    }
}

/// The playhead readout, `00:12.3 / 00:59.9`.
pub fn position_ui(ui: &mut egui::Ui, model: &Model, playhead: i64) {
    let text = match &model.session {
        Some(s) => format!(
            "{} / {}",
            fmt_clock((playhead - s.range.0).clamp(0, s.duration_ms())),
            fmt_clock(s.duration_ms())
        ),
        None => "--:--.- / --:--.-".to_owned(),
    };
    ui.add(
        egui::Label::new(RichText::new(text).monospace().size(18.0).color(PLAYHEAD))
            .wrap_mode(egui::TextWrapMode::Extend),
    )
    .on_hover_text("Playhead / session duration");
}
