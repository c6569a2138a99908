//! The 16 mod buses as plots: live (the last seconds of `noise.mod`) or,
//! for a loaded session, over its whole time range with the playhead.

use egui::RichText;
use egui_plot::{Line, Plot, PlotPoints, VLine};

use super::model::{Model, MOD_BUSES, MOD_HISTORY_S};
use super::timeline::lane_buckets;
use super::widgets::PLAYHEAD;
use super::UiState;

/// The mod buses view.
pub fn mods_ui(ui: &mut egui::Ui, model: &Model, st: &mut UiState, now: f64) {
    let has_session = model.session.is_some();
    ui.horizontal(|ui| {
        ui.selectable_value(&mut st.mods_session, false, "Live");
        ui.add_enabled_ui(has_session, |ui| {
            ui.selectable_value(&mut st.mods_session, true, "Loaded session");
        });
        ui.label(
            RichText::new(if st.mods_session && has_session {
                "whole session, playhead in orange"
            } else {
                "last 10 s of noise.mod"
            })
            .weak(),
        );
    });
    let session_view = st.mods_session && has_session;
    let series: Vec<Vec<[f64; 2]>> = if session_view {
        session_series(model, st, ui.available_width())
    } else {
        (0..MOD_BUSES)
            .map(|b| {
                model.mods[b]
                    .history
                    .iter()
                    .map(|&(t, v)| [t - now, v])
                    .collect()
            })
            .collect()
    };
    let cols = 4;
    let gap = 6.0;
    let w = ((ui.available_width() - gap * (cols as f32 - 1.0)) / cols as f32).max(80.0);
    let h = ((ui.available_height() - gap * 4.0 - 16.0 * 4.0) / 4.0).clamp(50.0, 240.0);
    let playhead_s = model
        .session
        .as_ref()
        .map(|s| (model.playback.position_ms - s.range.0) as f64 / 1000.0);
    egui::Grid::new("mod-grid")
        .num_columns(cols)
        .spacing([gap, gap])
        .show(ui, |ui| {
            for (bus, points) in series.into_iter().enumerate() {
                ui.vertical(|ui| {
                    let value = model.mods[bus].value;
                    let title = match value {
                        Some(v) if !session_view => format!("bus.{bus}  {v:+.3}"),
                        _ => format!("bus.{bus}"),
                    };
                    ui.label(RichText::new(title).small().monospace());
                    let mut plot = Plot::new(("mod-plot", bus, session_view))
                        .width(w)
                        .height(h)
                        .show_axes([false, true])
                        .y_axis_min_width(20.0)
                        .allow_zoom(false)
                        .allow_drag(false)
                        .allow_scroll(false)
                        .allow_boxed_zoom(false)
                        .show_x(true)
                        .show_y(true);
                    if session_view {
                        plot = plot.auto_bounds([true, true]);
                    } else {
                        plot = plot
                            .default_x_bounds(-MOD_HISTORY_S, 0.0)
                            .auto_bounds([false, true]);
                    }
                    plot.show(ui, |p| {
                        p.line(
                            Line::new(format!("bus.{bus}"), PlotPoints::from(points)).width(1.5),
                        );
                        if session_view {
                            if let Some(x) = playhead_s {
                                p.vline(VLine::new("playhead", x).color(PLAYHEAD).width(1.5));
                            }
                        }
                    });
                });
                if (bus + 1) % cols == 0 {
                    ui.end_row();
                }
            }
        });
}

/// Per-pixel min/max of each bus over the session, as plot points (seconds from the start).
fn session_series(model: &Model, st: &mut UiState, width: f32) -> Vec<Vec<[f64; 2]>> {
    let Some(s) = &model.session else {
        return vec![Vec::new(); MOD_BUSES];
    };
    let cols = ((width / 4.0) as usize).clamp(50, 600);
    let (t0, t1) = (s.range.0, s.range.1 + 1);
    let key = std::sync::Arc::as_ptr(&s.session) as usize;
    if let Some((k, a, b, c, cached)) = &st.caches.mods {
        if (*k, *a, *b, *c) == (key, t0, t1, cols) {
            return cached.clone();
        }
    }
    let span = (t1 - t0) as f64 / 1000.0;
    let series: Vec<Vec<[f64; 2]>> = (0..MOD_BUSES)
        .map(|bus| {
            let Some(id) = s.session.name_id(&format!("bus.{bus}")) else {
                return Vec::new();
            };
            let buckets = lane_buckets(&s.session, s.session.lane(id), t0, t1, cols);
            let mut pts = Vec::with_capacity(cols * 2);
            for (c, b) in buckets.iter().enumerate() {
                if b.min.is_finite() {
                    let x = span * c as f64 / cols as f64;
                    pts.push([x, f64::from(b.min)]);
                    if b.max != b.min {
                        pts.push([x, f64::from(b.max)]);
                    }
                }
            }
            pts
        })
        .collect();
    st.caches.mods = Some((key, t0, t1, cols, series.clone()));
    series
}
