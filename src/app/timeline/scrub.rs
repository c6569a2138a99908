//! The scrub bar: the whole session with event density, snapshot ticks,
//! preset loads, the timeline's visible range, the loop and the playhead.
//!
//! A click seeks to the instant under the pointer, even when pressed and
//! released within one frame. A drag is an audible scrub: playback pauses,
//! the Live panel shows the exact state under the pointer at once (the
//! window reads it from the loaded session), the player republishes it at
//! most [`SCRUB_RATE`] times a second (on the input clock, so tests run on
//! virtual time), and on release the final instant is sent and playback
//! resumes if it was playing.

use egui::{accesskit, Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Vec2};

use super::axis::{t_of, x_of};
use super::markers::{MarkerKind, PRESET_COLOR};
use crate::app::widgets::{fmt_clock, PIN, PLAYHEAD};
use crate::app::workers::{Command, LoadedSession, PlayerCommand};

/// Most seeks a second while dragging.
pub const SCRUB_RATE: f64 = 30.0;

/// A scrub in progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scrub {
    /// The instant under the pointer.
    pub t: i64,
    /// The last instant sent, and when (input-clock seconds).
    pub sent: Option<(i64, f64)>,
    /// Playback was running when the scrub began (it resumes on release).
    pub resume: bool,
}

/// What the scrub bar reads.
#[derive(Debug, Clone, Copy)]
pub struct ScrubIn<'a> {
    /// The session.
    pub session: &'a LoadedSession,
    /// The playhead.
    pub playhead: i64,
    /// Whether the player is playing.
    pub playing: bool,
    /// The player's loop.
    pub loop_range: Option<(i64, i64)>,
    /// The timeline's visible range (outlined when zoomed in).
    pub visible: Option<(i64, i64)>,
}

/// Density of the whole session per 2-pixel column, cached per load and
/// width, with its image (one textured rectangle: as one rectangle per
/// column, a software renderer shades every 4x4 block each one touches).
#[derive(Default)]
pub struct DensityCache {
    key: Option<(u64, usize)>,
    counts: Vec<u32>,
    image: Option<((u64, usize, usize, Color32), egui::TextureHandle)>,
}

impl std::fmt::Debug for DensityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DensityCache")
            .field("key", &self.key)
            .field("columns", &self.counts.len())
            .finish_non_exhaustive()
    }
}

impl DensityCache {
    /// The density as an image `h` texels high, one texel per column.
    fn texture(
        &mut self,
        ctx: &egui::Context,
        h: usize,
        color: Color32,
    ) -> Option<egui::TextureId> {
        let (id, cols) = self.key?;
        let key = (id, cols, h, color);
        if let Some((k, tex)) = &self.image {
            if *k == key {
                return Some(tex.id());
            }
        }
        let w = self.counts.len().max(1);
        let h = h.max(1);
        let maxc = self.counts.iter().copied().max().unwrap_or(1).max(1) as f32;
        let mut pixels = vec![Color32::TRANSPARENT; w * h];
        for (c, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let bar = ((n as f32 / maxc).sqrt() * h as f32).round() as usize;
            for y in h - bar.min(h)..h {
                pixels[y * w + c] = color;
            }
        }
        let image = egui::ColorImage::new([w, h], pixels);
        let options = egui::TextureOptions::NEAREST;
        match &mut self.image {
            Some((k, tex)) => {
                tex.set(image, options);
                *k = key;
            }
            None => self.image = Some((key, ctx.load_texture("scrub-density", image, options))),
        }
        self.image.as_ref().map(|(_, t)| t.id())
    }
}

/// The scrub bar; `scrub` holds a drag in progress.
pub fn scrub_ui(
    ui: &mut egui::Ui,
    input: ScrubIn<'_>,
    scrub: &mut Option<Scrub>,
    density: &mut DensityCache,
    cmds: &mut Vec<Command>,
) {
    let s = input.session;
    let desired = Vec2::new(ui.available_width().max(120.0), 26.0);
    let (rect, resp) = ui.allocate_exact_size(desired, Sense::click_and_drag());
    let painter = ui.painter_at(rect.expand(2.0));
    let visuals = ui.visuals();
    painter.rect_filled(rect, 4.0, visuals.extreme_bg_color);
    let (t0, t1) = (s.range.0, s.range.1.max(s.range.0 + 1));
    let pos = scrub.map_or(input.playhead, |d| d.t);
    ui.ctx().accesskit_node_builder(resp.id, |b| {
        b.set_min_numeric_value(0.0);
        b.set_max_numeric_value((t1 - t0) as f64 / 1000.0);
        b.add_action(accesskit::Action::SetValue);
    });
    resp.widget_info(|| egui::WidgetInfo::slider(true, (pos - t0) as f64 / 1000.0, "Position"));

    // loop, visible range
    if let Some((a, b)) = input.loop_range {
        let r = Rect::from_x_y_ranges(
            x_of(rect, t0, t1, a)..=x_of(rect, t0, t1, b),
            rect.y_range(),
        );
        painter.rect_filled(r, 0.0, PIN.gamma_multiply(0.18));
    }
    if let Some((a, b)) = input.visible {
        let r = Rect::from_x_y_ranges(
            x_of(rect, t0, t1, a).max(rect.left())..=x_of(rect, t0, t1, b).min(rect.right()),
            rect.y_range(),
        );
        painter.rect_stroke(
            r,
            2.0,
            Stroke::new(1.0, visuals.text_color().gamma_multiply(0.5)),
            egui::StrokeKind::Inside,
        );
    }
    // event density (params), one bucket per 2 px
    let cols = (rect.width() / 2.0).max(1.0) as usize;
    if density.key != Some((s.id, cols)) {
        let params = s.session.param_events();
        let ev = s.session.events();
        density.counts = super::lod::counts_by(
            |from, t| from + params[from..].partition_point(|&i| ev[i as usize].ts_ms < t),
            t0,
            t1 + 1,
            cols,
        );
        density.key = Some((s.id, cols));
    }
    let bars_h = rect.height() - 8.0;
    let texels = (bars_h * ui.ctx().pixels_per_point()).round().max(1.0) as usize;
    if let Some(tex) = density.texture(ui.ctx(), texels, visuals.text_color().gamma_multiply(0.25))
    {
        let bars = Rect::from_min_size(
            Pos2::new(rect.left(), rect.bottom() - 2.0 - bars_h),
            Vec2::new(density.counts.len() as f32 * 2.0, bars_h),
        );
        let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
        painter.image(tex, bars, uv, Color32::WHITE);
    }
    // snapshot ticks (one per pixel at most)
    let mut last_x = f32::NEG_INFINITY;
    for &t in &s.snapshots {
        let x = x_of(rect, t0, t1, t).round();
        if x > last_x {
            painter.line_segment(
                [Pos2::new(x, rect.top()), Pos2::new(x, rect.top() + 6.0)],
                Stroke::new(1.0, visuals.text_color().gamma_multiply(0.6)),
            );
            last_x = x;
        }
    }
    // preset loads
    let mut last_x = f32::NEG_INFINITY;
    for m in s.markers.iter() {
        if let MarkerKind::Preset(_) = m.kind {
            let x = x_of(rect, t0, t1, m.ts_ms).round();
            if x > last_x + 1.0 {
                painter.line_segment(
                    [
                        Pos2::new(x, rect.bottom() - 8.0),
                        Pos2::new(x, rect.bottom()),
                    ],
                    Stroke::new(1.5, PRESET_COLOR),
                );
                last_x = x;
            }
        }
    }
    // playhead
    let x = x_of(rect, t0, t1, pos);
    painter.line_segment(
        [Pos2::new(x, rect.top()), Pos2::new(x, rect.bottom())],
        Stroke::new(2.0, PLAYHEAD),
    );
    painter.circle_filled(Pos2::new(x, rect.center().y), 5.0, PLAYHEAD);

    // seeking
    let now = ui.input(|i| i.time);
    let pointer_t = resp.interact_pointer_pos().map(|p| t_of(rect, t0, t1, p.x));
    let held = resp.is_pointer_button_down_on() || resp.dragged();
    if held {
        if let Some(t) = pointer_t {
            let d = scrub.get_or_insert_with(|| {
                if input.playing {
                    cmds.push(Command::Transport(PlayerCommand::Pause));
                }
                Scrub {
                    t,
                    sent: None,
                    resume: input.playing,
                }
            });
            d.t = t;
            let due = d
                .sent
                .is_none_or(|(st, at)| st != t && now - at >= 1.0 / SCRUB_RATE);
            if due {
                cmds.push(Command::Transport(PlayerCommand::Seek(t)));
                d.sent = Some((t, now));
            }
        }
    }
    let released = resp.drag_stopped() || resp.clicked() || (!held && scrub.is_some());
    if released {
        match scrub.take() {
            Some(d) => {
                let t = if resp.clicked() {
                    pointer_t.unwrap_or(d.t)
                } else {
                    d.t
                };
                if d.sent.is_none_or(|(st, _)| st != t) {
                    cmds.push(Command::Transport(PlayerCommand::Seek(t)));
                }
                if d.resume {
                    cmds.push(Command::Transport(PlayerCommand::Play));
                }
            }
            None => {
                // pressed and released within one frame: a plain seek
                if let Some(t) =
                    pointer_t.or_else(|| resp.hover_pos().map(|p| t_of(rect, t0, t1, p.x)))
                {
                    cmds.push(Command::Transport(PlayerCommand::Seek(t)));
                }
            }
        }
    }
    let by_reader = ui.input(|i| {
        i.accesskit_action_requests(resp.id, accesskit::Action::SetValue)
            .filter_map(|r| match r.data {
                Some(accesskit::ActionData::NumericValue(v)) => Some(v),
                _ => None,
            })
            .last()
    });
    if let Some(secs) = by_reader {
        let t = (t0 + (secs * 1000.0) as i64).clamp(t0, t1);
        cmds.push(Command::Transport(PlayerCommand::Seek(t)));
    }
    if let Some(p) = resp.hover_pos() {
        if scrub.is_none() {
            let t = t_of(rect, t0, t1, p.x);
            resp.on_hover_text_at_pointer(format!("seek to {}", fmt_clock(t - t0)));
        }
    }
}

/// The scrub bar's place holder without a session.
pub fn empty_ui(ui: &mut egui::Ui) {
    let desired = Vec2::new(ui.available_width().max(120.0), 26.0);
    let (rect, resp) = ui.allocate_exact_size(desired, Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, ui.visuals().extreme_bg_color);
    painter.text(
        rect.center(),
        Align2::CENTER_CENTER,
        "Open a session to scrub it (Sessions, or drop a .msgpack file here)",
        FontId::proportional(12.0),
        ui.visuals().weak_text_color(),
    );
    resp.widget_info(|| egui::WidgetInfo::slider(false, 0.0, "Position"));
}
