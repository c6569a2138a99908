//! The transport bar (record, play/pause, stop, steps, speed, loop A–B,
//! position) and its keyboard shortcuts.

use egui::{Button, Key, Modifiers, RichText};

use super::model::{Model, RecorderView};
use super::settings::Settings;
use super::widgets::{fmt_bytes, fmt_clock, fmt_count, PLAYHEAD, REC_RED};
use super::workers::{Command, PlayState, PlayerCommand};
use super::UiState;
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

/// Toggles recording.
fn toggle_record(model: &Model, settings: &Settings, cmds: &mut Vec<Command>) {
    match model.recorder {
        RecorderView::Idle => cmds.push(Command::StartRecording(settings.record())),
        RecorderView::Recording { .. } => cmds.push(Command::StopRecording),
        RecorderView::Starting | RecorderView::Stopping { .. } => {}
    }
}

fn play_pause(model: &Model, cmds: &mut Vec<Command>) {
    cmds.push(Command::Transport(
        if model.playback.state == PlayState::Playing {
            PlayerCommand::Pause
        } else {
            PlayerCommand::Play
        },
    ));
}

/// The loop range to send for the current A/B points, if valid.
fn loop_range(model: &Model, st: &UiState) -> Option<(i64, i64)> {
    let s = model.session.as_ref()?;
    let a = st.loop_a.unwrap_or(s.range.0);
    let b = st.loop_b.unwrap_or(s.range.1);
    (b > a).then_some((a, b))
}

fn set_loop(model: &Model, st: &mut UiState, on: bool, cmds: &mut Vec<Command>) {
    st.loop_on = on;
    let range = if on { loop_range(model, st) } else { None };
    if on && range.is_none() {
        st.loop_on = false;
    }
    cmds.push(Command::Transport(PlayerCommand::SetLoop(range)));
}

/// Space play/pause, R record, Left/Right step, Home/End, L loop. Keys are
/// consumed so a focused button does not also react to them; nothing
/// happens while a text field has the keyboard.
pub fn shortcuts(
    ctx: &egui::Context,
    model: &Model,
    st: &mut UiState,
    settings: &Settings,
    cmds: &mut Vec<Command>,
) {
    if ctx.text_edit_focused() {
        return;
    }
    let pressed = |key: Key| ctx.input_mut(|i| i.consume_key(Modifiers::NONE, key));
    if pressed(Key::Space) {
        play_pause(model, cmds);
    }
    if pressed(Key::R) {
        toggle_record(model, settings, cmds);
    }
    if pressed(Key::ArrowLeft) {
        cmds.push(Command::Transport(PlayerCommand::StepBack));
    }
    if pressed(Key::ArrowRight) {
        cmds.push(Command::Transport(PlayerCommand::StepForward));
    }
    if let Some(s) = &model.session {
        if pressed(Key::Home) {
            cmds.push(Command::Transport(PlayerCommand::Seek(s.range.0)));
        }
        if pressed(Key::End) {
            cmds.push(Command::Transport(PlayerCommand::Seek(s.range.1)));
        }
    }
    if pressed(Key::L) {
        let on = !st.loop_on;
        set_loop(model, st, on, cmds);
    }
}

fn big(text: &str) -> RichText {
    RichText::new(text).size(16.0)
}

/// The transport bar.
pub fn transport_ui(
    ui: &mut egui::Ui,
    model: &Model,
    st: &mut UiState,
    settings: &Settings,
    cmds: &mut Vec<Command>,
) {
    let has_session = model.session.is_some();
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = 6.0;
        // --- recording
        match &model.recorder {
            RecorderView::Idle => {
                let b = Button::new(big("⏺ Record").color(REC_RED)).min_size([96.0, 30.0].into());
                if ui
                    .add(b)
                    .on_hover_text("Record the bus into a new session file (R)")
                    .accessible_name(names::RECORD)
                    .clicked()
                {
                    toggle_record(model, settings, cmds);
                }
            }
            RecorderView::Starting => {
                ui.add_enabled(
                    false,
                    Button::new(big("⏺ Starting…")).min_size([96.0, 30.0].into()),
                )
                .accessible_name(names::RECORD);
            }
            RecorderView::Recording { path, stats } | RecorderView::Stopping { path, stats } => {
                let b = Button::new(big("⏹ Stop rec").color(egui::Color32::WHITE))
                    .fill(REC_RED)
                    .min_size([96.0, 30.0].into());
                if ui
                    .add(b)
                    .on_hover_text("Finish the recording (R)")
                    .accessible_name(names::STOP_RECORDING)
                    .clicked()
                {
                    toggle_record(model, settings, cmds);
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
                    ui.label(
                        RichText::new(format!(
                            "{name} · {} · {} ev",
                            fmt_bytes(stats.bytes),
                            fmt_count(stats.events)
                        ))
                        .small(),
                    )
                    .on_hover_text(path.display().to_string());
                });
            }
        }
        ui.separator();

        // --- playback
        ui.add_enabled_ui(has_session, |ui| {
            let sess_range = model.session.as_ref().map(|s| s.range);
            if ui
                .add(Button::new(big("⏮")).min_size([30.0, 30.0].into()))
                .on_hover_text("Go to start (Home)")
                .accessible_name(names::TO_START)
                .clicked()
            {
                if let Some(r) = sess_range {
                    cmds.push(Command::Transport(PlayerCommand::Seek(r.0)));
                }
            }
            if ui
                .add(Button::new(big("⏪")).min_size([30.0, 30.0].into()))
                .on_hover_text("Step back one event (←)")
                .accessible_name(names::STEP_BACK)
                .clicked()
            {
                cmds.push(Command::Transport(PlayerCommand::StepBack));
            }
            let playing = model.playback.state == PlayState::Playing;
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
                .add(b)
                .on_hover_text("Play / pause (Space)")
                .accessible_name(name)
                .clicked()
            {
                play_pause(model, cmds);
            }
            if ui
                .add(Button::new(big("⏹ Stop")).min_size([70.0, 30.0].into()))
                .on_hover_text("Stop and return to the start")
                .accessible_name(names::STOP)
                .clicked()
            {
                cmds.push(Command::Transport(PlayerCommand::Stop));
            }
            if ui
                .add(Button::new(big("⏩")).min_size([30.0, 30.0].into()))
                .on_hover_text("Step forward one event (→)")
                .accessible_name(names::STEP_FORWARD)
                .clicked()
            {
                cmds.push(Command::Transport(PlayerCommand::StepForward));
            }
            if ui
                .add(Button::new(big("⏭")).min_size([30.0, 30.0].into()))
                .on_hover_text("Go to end (End)")
                .accessible_name(names::TO_END)
                .clicked()
            {
                if let Some(r) = sess_range {
                    cmds.push(Command::Transport(PlayerCommand::Seek(r.1)));
                }
            }
            ui.separator();

            // --- speed
            ui.label("Speed");
            let slider = egui::Slider::new(&mut st.speed, SPEED_RANGE.0..=SPEED_RANGE.1)
                .logarithmic(true)
                .max_decimals(2)
                .suffix("×");
            let r = ui.add(slider).accessible_name(names::SPEED);
            if r.changed() {
                cmds.push(Command::Transport(PlayerCommand::SetSpeed(st.speed)));
            } else if !r.dragged() && !r.has_focus() && model.playback.speed > 0.0 {
                st.speed = model.playback.speed;
            }
            if r.double_clicked() {
                st.speed = 1.0;
                cmds.push(Command::Transport(PlayerCommand::SetSpeed(1.0)));
            }
            ui.separator();

            // --- loop
            let loop_btn = Button::selectable(st.loop_on, big("🔁 Loop"));
            if ui
                .add(loop_btn)
                .on_hover_text("Loop between A and B (L)")
                .accessible_name(names::LOOP)
                .clicked()
            {
                let on = !st.loop_on;
                set_loop(model, st, on, cmds);
            }
            let pos = model.playback.position_ms;
            let start = model.session.as_ref().map_or(0, |s| s.range.0);
            let a_text = format!("A {}", fmt_clock(st.loop_a.unwrap_or(start) - start));
            if ui
                .button(a_text)
                .on_hover_text("Set loop start A at the playhead")
                .accessible_name(names::SET_A)
                .clicked()
            {
                st.loop_a = Some(pos);
                if st.loop_b.is_some_and(|b| b <= pos) {
                    st.loop_b = model.session.as_ref().map(|s| s.range.1);
                }
                if st.loop_on {
                    set_loop(model, st, true, cmds);
                }
            }
            let end = model.session.as_ref().map_or(0, |s| s.range.1);
            let b_text = format!("B {}", fmt_clock(st.loop_b.unwrap_or(end) - start));
            if ui
                .button(b_text)
                .on_hover_text("Set loop end B at the playhead")
                .accessible_name(names::SET_B)
                .clicked()
            {
                st.loop_b = Some(pos);
                if st.loop_a.is_some_and(|a| a >= pos) {
                    st.loop_a = Some(start);
                }
                if st.loop_on {
                    set_loop(model, st, true, cmds);
                }
            }
        });
    });
}

/// The playhead readout, `00:12.3 / 00:59.9`.
pub fn position_ui(ui: &mut egui::Ui, model: &Model) {
    let text = match &model.session {
        Some(s) => format!(
            "{} / {}",
            fmt_clock(model.position_rel_ms()),
            fmt_clock(s.duration_ms())
        ),
        None => "--:--.- / --:--.-".to_owned(),
    };
    ui.label(RichText::new(text).monospace().size(18.0).color(PLAYHEAD))
        .on_hover_text("Playhead / session duration");
}
