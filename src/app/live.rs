//! The live panel: every parameter's current value, grouped and flashing on
//! change, with pins during playback; dragging a value is a touch. Then the
//! level meters and the recent events.

use egui::{accesskit, Align2, Color32, FontId, Rect, RichText, Sense, Stroke, StrokeKind, Vec2};

use super::model::{group_pattern, Model, METER_STALE_S};
use super::widgets::{lerp_color, OK_GREEN, PIN, PLAYHEAD, REC_RED, WARN};
use super::workers::{Command, PlayerCommand};
use super::UiState;

/// Colour of a value's bar by who set it last.
fn actor_color(actor: &str) -> Color32 {
    match actor {
        "user" => Color32::from_rgb(0x5A, 0x9B, 0xF0),
        "replay" => PLAYHEAD,
        "preset" => Color32::from_rgb(0xB0, 0x7C, 0xF0),
        "midi" => OK_GREEN,
        "mod" => Color32::from_rgb(0x3C, 0xC8, 0xC8),
        _ => Color32::GRAY,
    }
}

/// The live panel.
pub fn live_ui(
    ui: &mut egui::Ui,
    model: &Model,
    st: &mut UiState,
    cmds: &mut Vec<Command>,
    now: f64,
) {
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        ui.heading("Live");
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            for (name, actor) in [
                ("midi", "midi"),
                ("preset", "preset"),
                ("replay", "replay"),
                ("user", "user"),
            ] {
                ui.label(RichText::new(name).small().color(actor_color(actor)));
            }
        });
    });
    let bottom_h = 250.0;
    let params_h = (ui.available_height() - bottom_h).max(120.0);
    egui::ScrollArea::vertical()
        .id_salt("live-params")
        .max_height(params_h)
        .auto_shrink([false, false])
        .show(ui, |ui| params_ui(ui, model, st, cmds, now));
    ui.separator();
    meters_ui(ui, model, now);
    ui.separator();
    events_ui(ui, model);
}

fn params_ui(
    ui: &mut egui::Ui,
    model: &Model,
    st: &mut UiState,
    cmds: &mut Vec<Command>,
    now: f64,
) {
    let groups = model.grouped_paths();
    if groups.is_empty() {
        ui.add_space(12.0);
        ui.label(RichText::new("No parameters yet: waiting for noise.params…").weak());
        return;
    }
    let can_mute = model.session.is_some();
    for (group, paths) in groups {
        ui.add_space(2.0);
        ui.horizontal(|ui| {
            ui.label(RichText::new(&group).strong().size(14.0));
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.add_enabled_ui(can_mute, |ui| {
                    let soloed = st.solo.as_deref() == Some(group.as_str());
                    let solo = egui::Button::selectable(soloed, RichText::new("S").strong())
                        .min_size(Vec2::new(22.0, 18.0));
                    if ui
                        .add(solo)
                        .on_hover_text(format!("Replay only {group}"))
                        .accessible_name(format!("Solo {group}"))
                        .clicked()
                    {
                        st.solo = if soloed { None } else { Some(group.clone()) };
                        cmds.push(Command::Transport(PlayerCommand::SetSolo(
                            st.solo.as_deref().map(group_pattern),
                        )));
                    }
                    let muted = st.muted.contains(&group);
                    let mute = egui::Button::selectable(muted, RichText::new("M").strong())
                        .min_size(Vec2::new(22.0, 18.0));
                    if ui
                        .add(mute)
                        .on_hover_text(format!("Do not replay {group}"))
                        .accessible_name(format!("Mute {group}"))
                        .clicked()
                    {
                        if muted {
                            st.muted.remove(&group);
                        } else {
                            st.muted.insert(group.clone());
                        }
                        cmds.push(Command::Transport(PlayerCommand::SetMuted {
                            group: group_pattern(&group),
                            muted: !muted,
                        }));
                    }
                });
            });
        });
        let dim = st.muted.contains(&group) || st.solo.as_ref().is_some_and(|s| s != &group);
        for path in paths {
            param_row(ui, model, st, cmds, &group, &path, dim, now);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn param_row(
    ui: &mut egui::Ui,
    model: &Model,
    st: &mut UiState,
    cmds: &mut Vec<Command>,
    group: &str,
    path: &str,
    dim: bool,
    now: f64,
) {
    let short = path
        .strip_prefix(group)
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or(path);
    let live = model.params.get(path);
    let dragging = st
        .dragging
        .as_ref()
        .filter(|(p, _)| p == path)
        .map(|(_, v)| *v);
    let value = dragging.or(live.map(|p| p.value));
    let pin = model.pin_left_ms(path);
    let flash = model.flash(path, now);

    ui.horizontal(|ui| {
        let name_w = 104.0;
        let value_w = 44.0;
        let pin_w = 56.0;
        let (name_rect, _) = ui.allocate_exact_size(Vec2::new(name_w, 18.0), Sense::hover());
        ui.painter().text(
            name_rect.left_center() + Vec2::new(10.0, 0.0),
            Align2::LEFT_CENTER,
            short,
            FontId::proportional(13.0),
            if dim {
                ui.visuals().weak_text_color()
            } else {
                ui.visuals().text_color()
            },
        );
        let gap = ui.spacing().item_spacing.x;
        let bar_w = (ui.available_width() - value_w - pin_w - 3.0 * gap - 2.0).max(40.0);
        let (rect, resp) = ui.allocate_exact_size(Vec2::new(bar_w, 16.0), Sense::click_and_drag());
        ui.ctx().accesskit_node_builder(resp.id, |b| {
            b.set_min_numeric_value(0.0);
            b.set_max_numeric_value(1.0);
            b.add_action(accesskit::Action::SetValue);
        });
        resp.widget_info(|| egui::WidgetInfo::slider(true, value.unwrap_or(0.0), path));

        // a touch: drag, click, or a screen reader setting the value
        let mut touched = None;
        if resp.dragged() || resp.clicked() {
            if let Some(p) = resp.interact_pointer_pos() {
                touched = Some(f64::from(
                    ((p.x - rect.left()) / rect.width()).clamp(0.0, 1.0),
                ));
            }
        }
        let set_by_reader = ui.input(|i| {
            i.accesskit_action_requests(resp.id, accesskit::Action::SetValue)
                .filter_map(|r| match r.data {
                    Some(accesskit::ActionData::NumericValue(v)) => Some(v),
                    _ => None,
                })
                .last()
        });
        if let Some(v) = set_by_reader {
            touched = Some(v.clamp(0.0, 1.0));
        }
        if let Some(v) = touched {
            if dragging != Some(v) {
                cmds.push(Command::Touch {
                    path: path.to_owned(),
                    value: v,
                    held: resp.dragged(),
                });
            }
            st.dragging = resp.dragged().then(|| (path.to_owned(), v));
        }
        if resp.drag_stopped() {
            st.dragging = None;
            // the pin counts down from the release
            cmds.push(Command::Release {
                path: path.to_owned(),
            });
        }

        // draw
        let painter = ui.painter_at(rect.expand(1.0));
        let bg = ui.visuals().extreme_bg_color;
        let base = live.map_or(Color32::GRAY, |p| actor_color(&p.actor));
        let bg = lerp_color(bg, base.gamma_multiply(0.45), flash);
        painter.rect_filled(rect, 3.0, bg);
        if let Some(v) = value {
            let mut fill = rect;
            fill.set_width(rect.width() * v.clamp(0.0, 1.0) as f32);
            let c = if dim {
                base.gamma_multiply(0.35)
            } else {
                base.gamma_multiply(0.8)
            };
            painter.rect_filled(fill, 3.0, c);
            let x = fill.right();
            painter.line_segment(
                [egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())],
                Stroke::new(2.0, lerp_color(base, Color32::WHITE, 0.5 + 0.5 * flash)),
            );
        }
        let outline = if pin.is_some() {
            Stroke::new(1.5, PIN)
        } else if resp.hovered() || dragging.is_some() {
            ui.visuals().widgets.hovered.bg_stroke
        } else {
            Stroke::new(1.0, ui.visuals().widgets.noninteractive.bg_stroke.color)
        };
        painter.rect_stroke(rect, 3.0, outline, StrokeKind::Inside);
        let hover = match live {
            Some(p) => format!(
                "{path} = {:.4}\nset by {} ({})\ndrag to take over",
                p.value, p.actor, p.producer
            ),
            None => format!("{path}: no live value yet\ndrag to set it"),
        };
        resp.on_hover_text(hover);

        let text = value.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"));
        ui.add_sized(
            [value_w, 18.0],
            egui::Label::new(RichText::new(text).monospace().size(12.0)),
        );
        let pin_text = pin.map_or_else(String::new, |ms| format!("📌 {:.1} s", ms as f64 / 1000.0));
        let pin_label = ui.add_sized(
            [pin_w, 18.0],
            egui::Label::new(RichText::new(pin_text).size(12.0).color(PIN)),
        );
        if let Some(ms) = pin {
            // the countdown as a thin bar under the pin
            let frac = (ms as f32 / st.pin_ms.max(1) as f32).clamp(0.0, 1.0);
            let r = Rect::from_min_size(
                pin_label.rect.left_bottom() - Vec2::new(0.0, 2.0),
                Vec2::new(pin_label.rect.width() * frac, 2.0),
            );
            ui.painter().rect_filled(r, 0.0, PIN);
            pin_label.on_hover_text(format!("{path} is pinned: replay leaves it alone"));
        }
    });
}

fn meters_ui(ui: &mut egui::Ui, model: &Model, now: f64) {
    ui.label(RichText::new("Levels").strong());
    if model.meters.is_empty() {
        ui.label(RichText::new("no noise.audio yet").weak().small());
        return;
    }
    let n = model.meters.len();
    let cols = if n > 4 { 2 } else { 1 };
    let w = ((ui.available_width() - 12.0) / cols as f32 - 60.0).clamp(60.0, 400.0);
    egui::Grid::new("meters")
        .num_columns(cols * 2)
        .spacing([6.0, 3.0])
        .show(ui, |ui| {
            for (i, (source, m)) in model.meters.iter().enumerate() {
                let stale = now - m.at > METER_STALE_S;
                ui.add_sized(
                    [44.0, 12.0],
                    egui::Label::new(RichText::new(source).small()),
                );
                let (rect, _) = ui.allocate_exact_size(Vec2::new(w, 10.0), Sense::hover());
                let p = ui.painter();
                p.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
                if !stale {
                    let level = |v: f64| (v.clamp(0.0, 1.0)) as f32;
                    let rms = m.rms.unwrap_or(m.peak * 0.7);
                    let mut r = rect;
                    r.set_width(rect.width() * level(rms));
                    let color = if m.peak >= 0.95 {
                        REC_RED
                    } else if m.peak >= 0.75 {
                        WARN
                    } else {
                        OK_GREEN
                    };
                    p.rect_filled(r, 2.0, color.gamma_multiply(0.8));
                    let x = rect.left() + rect.width() * level(m.peak);
                    p.line_segment(
                        [egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())],
                        Stroke::new(2.0, color),
                    );
                }
                if (i + 1) % cols == 0 {
                    ui.end_row();
                }
            }
        });
}

fn events_ui(ui: &mut egui::Ui, model: &Model) {
    ui.label(RichText::new("Recent events").strong());
    egui::ScrollArea::vertical()
        .id_salt("live-events")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            if model.events.is_empty() {
                ui.label(RichText::new("none yet").weak().small());
            }
            for e in model.events.iter().rev().take(60) {
                let clock = crate::human::time_of_day(e.ts_ms);
                ui.horizontal(|ui| {
                    ui.label(RichText::new(clock).monospace().small().weak());
                    ui.label(
                        RichText::new(&e.kind)
                            .small()
                            .strong()
                            .color(actor_color(&e.actor)),
                    );
                    ui.label(RichText::new(&e.detail).small());
                });
            }
        });
}
