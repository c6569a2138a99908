//! The timeline: one lane per parameter path, grouped and collapsible, with
//! a value scale, markers from `noise.events`, the playhead and the loop,
//! over a loaded session or over the live history.
//!
//! By concern: [`lod`] (the per-lane min/max pyramid and the per-pixel
//! buckets), [`axis`] (ticks and the instant↔x mapping), [`lanes`] (drawing
//! a lane, colours, the hover readout), [`markers`] (preset loads, notes,
//! other events), [`scrub`] (the scrub bar), [`view`] (the visible range and
//! loop selection, changed by commands). This file lays them out and turns
//! pointer and wheel input into commands.
//!
//! Nothing here walks a session's events: a frame costs two binary searches
//! and a pyramid walk per pixel column of each visible lane, and the buckets
//! are cached while the view and the data stay the same.

pub mod axis;
pub mod lanes;
pub mod lod;
pub mod markers;
pub mod scrub;
pub mod view;

use std::collections::BTreeSet;

use egui::{Pos2, Rect, RichText, Sense, Stroke, Vec2};

use super::history::{LiveHistory, LiveLane};
use super::model::{group_of, group_paths};
use super::widgets::{fmt_clock, PIN, PLAYHEAD};
use super::workers::{Command, LoadedSession, PlayerCommand, SessionLane};
use lanes::{LaneDraw, Readout};
use lod::{Bucket, Series};
use markers::Marker;
use view::{TimeView, ViewCommand};

/// What the timeline draws: a loaded session or the live history.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A loaded session.
    Session(&'a LoadedSession),
    /// The live history, at a generation (bumped on every change).
    Live(&'a LiveHistory, u64),
}

/// A lane of either source.
#[derive(Debug, Clone, Copy)]
pub enum LaneRef<'a> {
    /// Of a session.
    Session(SessionLane<'a>),
    /// Of the live history.
    Live(&'a LiveLane),
}

impl Series for LaneRef<'_> {
    fn first(&self) -> usize {
        match self {
            LaneRef::Session(l) => l.first(),
            LaneRef::Live(l) => l.first(),
        }
    }
    fn end(&self) -> usize {
        match self {
            LaneRef::Session(l) => l.end(),
            LaneRef::Live(l) => l.end(),
        }
    }
    fn ts(&self, i: usize) -> i64 {
        match self {
            LaneRef::Session(l) => l.ts(i),
            LaneRef::Live(l) => l.ts(i),
        }
    }
    fn value(&self, i: usize) -> f64 {
        match self {
            LaneRef::Session(l) => l.value(i),
            LaneRef::Live(l) => l.value(i),
        }
    }
    fn summary(&self) -> &lod::Summary {
        match self {
            LaneRef::Session(l) => l.summary(),
            LaneRef::Live(l) => l.summary(),
        }
    }
}

impl<'a> Source<'a> {
    /// A key that changes whenever what is drawn may change.
    pub fn key(&self) -> (u64, u64) {
        match self {
            Source::Session(s) => (s.id, 0),
            Source::Live(_, generation) => (0, *generation),
        }
    }

    /// The time the data spans.
    pub fn bounds(&self) -> Option<(i64, i64)> {
        match self {
            Source::Session(s) => Some((s.range.0, s.range.1.max(s.range.0 + 1))),
            Source::Live(h, _) => h.range().map(|(a, b)| (a, b.max(a + 1))),
        }
    }

    /// Parameter paths by group.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        match self {
            Source::Session(s) => group_paths(s.param_paths.iter().map(String::as_str)),
            Source::Live(h, _) => group_paths(
                h.lanes()
                    .iter()
                    .map(|l| l.path.as_str())
                    .filter(|p| !p.starts_with("bus.")),
            ),
        }
    }

    /// The lane of a path.
    pub fn lane(&self, path: &str) -> Option<LaneRef<'a>> {
        match *self {
            Source::Session(s) => s.lane(path).map(LaneRef::Session),
            Source::Live(h, _) => h.lane(path).map(LaneRef::Live),
        }
    }

    /// Markers with `t0 <= ts < t1`, in time order.
    pub fn markers(&self, t0: i64, t1: i64) -> Vec<&'a Marker> {
        match *self {
            Source::Session(s) => markers::slice_in_view(&s.markers, t0, t1).iter().collect(),
            Source::Live(h, _) => {
                let mut v: Vec<&Marker> = h
                    .markers()
                    .iter()
                    .filter(|m| (t0..t1).contains(&m.ts_ms))
                    .collect();
                v.sort_by_key(|m| m.ts_ms);
                v
            }
        }
    }

    /// The fields of event `i` of a lane (a session reads the record back
    /// from its file: one small read, cached by the caller).
    pub fn readout(&self, path: &str, i: usize) -> Option<Readout> {
        let lane = self.lane(path)?;
        if i < lane.first() || i >= lane.end() {
            return None;
        }
        Some(match (self, lane) {
            (Source::Session(s), LaneRef::Session(l)) => {
                let entry = l.entry(i);
                let mut r = Readout {
                    path: path.to_owned(),
                    index: i,
                    ts_ms: entry.ts_ms,
                    value: entry.value,
                    value_mapped: None,
                    actor: String::new(),
                    producer: s.session.producer_name(entry.producer).to_owned(),
                    problem: None,
                };
                match s.session.envelope(entry) {
                    Ok(env) => {
                        r.actor = env
                            .actor
                            .as_ref()
                            .map_or_else(|| "?".to_owned(), |a| a.as_str().to_owned());
                        r.producer = env.producer_id;
                        if let crate::Body::Param { value_mapped, .. } = env.body {
                            r.value_mapped = value_mapped;
                        }
                    }
                    Err(e) => r.problem = Some(e.to_string()),
                }
                r
            }
            (Source::Live(h, _), LaneRef::Live(l)) => {
                let e = h.event(l, i)?;
                Readout {
                    path: path.to_owned(),
                    index: i,
                    ts_ms: e.ts_ms,
                    value: e.value,
                    value_mapped: e.value_mapped,
                    actor: e.actor,
                    producer: e.producer,
                    problem: None,
                }
            }
            _ => return None,
        })
    }
}

/// Lanes computed for one view, reused while neither the view nor the data changes.
#[derive(Debug, Default)]
pub struct LaneCache {
    key: Option<((u64, u64), i64, i64, usize)>,
    paths: Vec<String>,
    lanes: Vec<LaneDraw>,
    /// Times the lanes were computed (the benches and tests read it).
    pub computed: u64,
}

impl LaneCache {
    /// The lanes of `paths` over `[t0, t1)` in `width` columns.
    pub fn lanes(
        &mut self,
        source: &Source<'_>,
        paths: &[String],
        t0: i64,
        t1: i64,
        width: usize,
    ) -> &[LaneDraw] {
        let key = (source.key(), t0, t1, width);
        if self.key != Some(key) || self.paths != paths {
            self.lanes = paths
                .iter()
                .map(|p| match source.lane(p) {
                    Some(lane) => LaneDraw::new(p, &lane, t0, t1, width),
                    None => LaneDraw {
                        path: p.clone(),
                        before: f32::NAN,
                        buckets: vec![Bucket::EMPTY; width],
                        scale: (0.0, 1.0),
                    },
                })
                .collect();
            self.key = Some(key);
            self.paths = paths.to_vec();
            self.computed += 1;
        }
        &self.lanes
    }
}

/// The lanes' images (see [`lanes::rasterize`]), made again only when their
/// buckets, height or colour change.
#[derive(Default)]
pub struct LaneTextures {
    /// Per lane: what it was drawn from (the cache's generation, height,
    /// colour) and its texture.
    slots: Vec<Option<(LaneKey, egui::TextureHandle)>>,
    /// Images made so far (the benches and tests read it).
    pub made: u64,
}

type LaneKey = (u64, usize, egui::Color32);

impl std::fmt::Debug for LaneTextures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneTextures")
            .field("slots", &self.slots.len())
            .field("made", &self.made)
            .finish()
    }
}

impl LaneTextures {
    /// The texture of lane `i` drawn `h` texels high, made if its key changed.
    pub fn get(
        &mut self,
        ctx: &egui::Context,
        i: usize,
        generation: u64,
        lane: &LaneDraw,
        h: usize,
        color: egui::Color32,
    ) -> egui::TextureId {
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        let key = (generation, h, color);
        let slot = &mut self.slots[i];
        if let Some((k, tex)) = slot {
            if *k == key {
                return tex.id();
            }
        }
        self.made += 1;
        let image = lanes::rasterize(lane, h, color);
        let options = egui::TextureOptions::NEAREST;
        match slot {
            Some((k, tex)) => {
                tex.set(image, options);
                *k = key;
                tex.id()
            }
            None => {
                let tex = ctx.load_texture(format!("timeline-lane-{i}"), image, options);
                let id = tex.id();
                *slot = Some((key, tex));
                id
            }
        }
    }
}

impl LaneCache {
    /// The lanes last computed.
    pub fn drawn(&self) -> &[LaneDraw] {
        &self.lanes
    }
}

/// The timeline's own state: collapsed groups, caches, the hover readout.
#[derive(Debug, Default)]
pub struct TimelineState {
    /// Groups shown folded.
    pub collapsed: BTreeSet<String>,
    /// Buckets of the lanes in view.
    pub cache: LaneCache,
    /// Their images.
    pub textures: LaneTextures,
    /// The event under the pointer, read once per event.
    pub hover: Option<Readout>,
    /// The lane's value at the pointer (with the readout).
    pub hover_value: Option<(i64, f64)>,
}

/// What the timeline reads besides its source and view.
#[derive(Debug, Clone, Copy)]
pub struct TimelineIn<'a> {
    /// The data.
    pub source: Source<'a>,
    /// The visible range and loop selection.
    pub view: &'a TimeView,
    /// The playhead, if a session is shown.
    pub playhead: Option<i64>,
    /// The player's loop, if looping.
    pub loop_range: Option<(i64, i64)>,
    /// Pinned paths.
    pub pins: &'a [crate::engine::player::PinStatus],
}

/// Heights of the rows.
const RULER_H: f32 = 20.0;
const BAND_H: f32 = 14.0;
const GROUP_H: f32 = 18.0;
const NOTES_H: f32 = 14.0;
/// Width of the lane labels.
pub const LABEL_W: f32 = 170.0;

/// One row of the lane area.
enum Row {
    Notes,
    Group(String, usize),
    Lane(String),
}

/// The timeline panel.
pub fn timeline_ui(
    ui: &mut egui::Ui,
    input: TimelineIn<'_>,
    state: &mut TimelineState,
    cmds: &mut Vec<Command>,
    view_cmds: &mut Vec<ViewCommand>,
) {
    let source = input.source;
    let Some(bounds) = source.bounds() else {
        ui.add_space(30.0);
        ui.vertical_centered(|ui| {
            ui.label(RichText::new("Nothing to show yet").size(16.0));
            ui.label(
                RichText::new("Live values appear here as they arrive; open a session in Sessions to replay one.")
                    .weak(),
            );
        });
        return;
    };
    let (t0, t1) = input.view.visible(bounds);
    let t1 = t1.max(t0 + 1);
    let visuals = ui.visuals().clone();

    // rows: notes, then groups and their lanes
    let groups = source.groups();
    let marks_all = source.markers(t0, t1);
    let has_notes = match source {
        Source::Session(s) => s
            .markers
            .iter()
            .any(|m| m.kind == markers::MarkerKind::Note),
        Source::Live(h, _) => h
            .markers()
            .iter()
            .any(|m| m.kind == markers::MarkerKind::Note),
    };
    let mut rows = Vec::new();
    if has_notes {
        rows.push(Row::Notes);
    }
    let mut lane_paths = Vec::new();
    for (g, paths) in &groups {
        rows.push(Row::Group(g.clone(), paths.len()));
        if !state.collapsed.contains(g) {
            for p in paths {
                rows.push(Row::Lane(p.clone()));
                lane_paths.push(p.clone());
            }
        }
    }
    let n_lanes = lane_paths.len().max(1);
    let n_groups = groups.len();
    let fixed =
        RULER_H + BAND_H + if has_notes { NOTES_H } else { 0.0 } + GROUP_H * n_groups as f32;
    let avail = ui.available_size();
    // whole points, so each lane's image falls on whole pixels
    let row_h = ((avail.y - fixed - 4.0) / n_lanes as f32)
        .clamp(16.0, 30.0)
        .floor();

    // ruler and marker band (outside the scrolled lanes)
    let (head, head_resp) = ui.allocate_exact_size(
        Vec2::new(avail.x, RULER_H + BAND_H),
        Sense::click_and_drag(),
    );
    let head_lanes = Rect::from_min_max(
        Pos2::new(head.left() + LABEL_W, head.top()),
        Pos2::new(head.right(), head.bottom()),
    );
    let width = head_lanes.width().max(1.0) as usize;
    let painter = ui.painter_at(head);
    let ruler = Rect::from_min_max(
        head_lanes.min,
        Pos2::new(head.right(), head.top() + RULER_H),
    );
    let band = Rect::from_min_max(Pos2::new(head_lanes.left(), ruler.bottom()), head.max);
    fill(&painter, ruler, visuals.extreme_bg_color);
    let labels = match source {
        Source::Session(s) => axis::Labels::SinceStart(s.range.0),
        Source::Live(..) => axis::Labels::TimeOfDay,
    };
    axis::draw(
        &painter,
        ruler,
        head_lanes,
        t0,
        t1,
        labels,
        ruler.bottom(),
        visuals.weak_text_color(),
        visuals.widgets.noninteractive.bg_stroke.color,
    );
    let x_in = |t: i64| axis::x_of(head_lanes, t0, t1, t);
    let marks = markers::columns(marks_all.iter().copied(), x_in);
    markers::draw_across(&painter, &marks, Rect::NOTHING, band, visuals.text_color());
    // preset labels are named for screen readers (and tests)
    for &(x, m) in &marks {
        if let markers::MarkerKind::Preset(name) = &m.kind {
            let r = Rect::from_min_size(Pos2::new(x, band.top()), Vec2::new(8.0, band.height()));
            let resp = ui.interact(r, ui.scope_id().with(("preset", m.ts_ms)), Sense::hover());
            let label = format!("preset {name}");
            resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &label));
            resp.on_hover_text(format!(
                "preset_load {name} at {}",
                axis::label(m.ts_ms, 1000, labels)
            ));
        }
    }
    if let Some(p) = head_resp.interact_pointer_pos() {
        if head_resp.clicked() && p.x >= head_lanes.left() {
            if let Source::Session(_) = source {
                cmds.push(Command::Transport(PlayerCommand::Seek(axis::t_of(
                    head_lanes, t0, t1, p.x,
                ))));
            }
        }
    }
    let head_resp = head_resp.on_hover_text(match source {
        Source::Session(_) => "Click the time axis to seek",
        Source::Live(..) => "Live data, by time of day",
    });

    // the lanes
    let _ = state.cache.lanes(&source, &lane_paths, t0, t1, width);
    let generation = state.cache.computed;
    let lanes = state.cache.drawn();
    let total_h: f32 = rows
        .iter()
        .map(|r| match r {
            Row::Notes => NOTES_H,
            Row::Group(..) => GROUP_H,
            Row::Lane(_) => row_h,
        })
        .sum();
    let mut toggled = None;
    let mut hover_pick: Option<(String, i64)> = None;
    let mut body_resp = None;
    egui::ScrollArea::vertical()
        .id_salt("timeline-lanes")
        .auto_shrink([false, true])
        .show(ui, |ui| {
            let (full, resp) =
                ui.allocate_exact_size(Vec2::new(avail.x, total_h), Sense::click_and_drag());
            resp.widget_info(|| {
                egui::WidgetInfo::labeled(egui::Role::Group, true, "Timeline lanes")
            });
            let lanes_rect =
                Rect::from_min_max(Pos2::new(full.left() + LABEL_W, full.top()), full.max);
            let painter = ui.painter_at(full);
            let clip = ui.clip_rect();
            let x_of = |t: i64| axis::x_of(lanes_rect, t0, t1, t);
            let mut y = full.top();
            let mut lane_i = 0;
            let marks = markers::columns(marks_all.iter().copied(), x_of);
            for row in &rows {
                let h = match row {
                    Row::Notes => NOTES_H,
                    Row::Group(..) => GROUP_H,
                    Row::Lane(_) => row_h,
                };
                let rect =
                    Rect::from_min_max(Pos2::new(full.left(), y), Pos2::new(full.right(), y + h));
                y += h;
                let this_lane = if let Row::Lane(_) = row {
                    lane_i += 1;
                    Some(&lanes[lane_i - 1])
                } else {
                    None
                };
                if !rect.intersects(clip) {
                    continue;
                }
                match row {
                    Row::Notes => {
                        painter.text(
                            Pos2::new(rect.left() + 6.0, rect.center().y),
                            egui::Align2::LEFT_CENTER,
                            "notes",
                            egui::FontId::proportional(11.0),
                            markers::NOTE_COLOR,
                        );
                        let lane_row =
                            Rect::from_min_max(Pos2::new(lanes_rect.left(), rect.top()), rect.max);
                        markers::draw_notes(&painter, &marks, lane_row);
                    }
                    Row::Group(g, n) => {
                        fill(&painter, rect, visuals.faint_bg_color);
                        let open = !state.collapsed.contains(g);
                        let text = format!("{} {g}  ({n})", if open { "⏷" } else { "⏵" });
                        let label_rect = Rect::from_min_size(rect.min, Vec2::new(LABEL_W - 4.0, h));
                        let b = ui
                            .put(
                                label_rect,
                                egui::Button::new(RichText::new(text).strong().size(12.0))
                                    .frame(false),
                            )
                            .accessible_name(format!("Group {g}"))
                            .on_hover_text(if open {
                                "Fold this group"
                            } else {
                                "Unfold this group"
                            });
                        if b.clicked() {
                            toggled = Some(g.clone());
                        }
                    }
                    Row::Lane(path) => {
                        let lane = this_lane.expect("a lane row has its lane");
                        if lane_i % 2 == 0 {
                            fill(&painter, rect, visuals.faint_bg_color.gamma_multiply(0.6));
                        }
                        let pinned = input
                            .pins
                            .iter()
                            .any(|p| p.path == *path && (p.held || p.left_ms > 0));
                        let name = path
                            .strip_prefix(&format!("{}.", group_of(path)))
                            .unwrap_or(path);
                        let label_rect = Rect::from_min_max(
                            Pos2::new(rect.left() + 14.0, rect.top()),
                            Pos2::new(rect.left() + LABEL_W - 30.0, rect.bottom()),
                        );
                        ui.put(
                            label_rect,
                            egui::Label::new(
                                RichText::new(name)
                                    .size((row_h * 0.55).clamp(10.0, 13.0))
                                    .color(if pinned { PIN } else { visuals.text_color() }),
                            )
                            .truncate()
                            .selectable(false),
                        )
                        .on_hover_text(path.as_str());
                        // a row header named by the path (screen readers, tests)
                        let header = format!("lane {path}");
                        let r = ui.interact(
                            label_rect,
                            ui.scope_id().with(("lane", path)),
                            Sense::hover(),
                        );
                        r.widget_info(|| {
                            egui::WidgetInfo::labeled(egui::Role::RowHeader, true, &header)
                        });
                        let scale_rect = Rect::from_min_max(
                            Pos2::new(rect.left() + LABEL_W - 30.0, rect.top()),
                            Pos2::new(lanes_rect.left() - 2.0, rect.bottom()),
                        );
                        lanes::draw_scale(
                            &painter,
                            scale_rect,
                            lane.scale,
                            visuals.weak_text_color(),
                        );
                        let lane_rect =
                            Rect::from_min_max(Pos2::new(lanes_rect.left(), rect.top()), rect.max);
                        // one textured rectangle (see lanes::rasterize)
                        let texels = (lane_rect.height() * ui.ctx().pixels_per_point())
                            .round()
                            .max(1.0) as usize;
                        let tex = state.textures.get(
                            ui.ctx(),
                            lane_i - 1,
                            generation,
                            lane,
                            texels,
                            lanes::lane_color(&group_of(path)),
                        );
                        let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
                        let w = lane.buckets.len() as f32;
                        let image_rect =
                            Rect::from_min_size(lane_rect.min, Vec2::new(w, lane_rect.height()));
                        painter.image(tex, image_rect, uv, egui::Color32::WHITE);
                        if let Some(p) = resp.hover_pos() {
                            if rect.contains(p) && p.x >= lanes_rect.left() {
                                hover_pick =
                                    Some((path.clone(), axis::t_of(lanes_rect, t0, t1, p.x)));
                            }
                        }
                    }
                }
            }
            // preset loads across the lanes, loop, playhead
            // one mesh of unfeathered 1-pixel rectangles: a feathered line is
            // three strips of thin triangles the height of the lanes
            let mut lines = egui::Mesh::default();
            for &(x, m) in &marks {
                if let markers::MarkerKind::Preset(_) = m.kind {
                    markers::vline(
                        &mut lines,
                        x,
                        full.y_range(),
                        1.0,
                        markers::PRESET_COLOR.gamma_multiply(0.55),
                    );
                }
            }
            painter.add(lines);
            if let Some((a, b)) = input.loop_range {
                let r = Rect::from_x_y_ranges(
                    x_of(a).max(lanes_rect.left())..=x_of(b).min(lanes_rect.right()),
                    full.y_range(),
                );
                if r.width() > 0.0 {
                    fill(&painter, r, PIN.gamma_multiply(0.08));
                }
            }
            if let Some(pos) = input.playhead.filter(|p| (t0..=t1).contains(p)) {
                let x = x_of(pos);
                painter.line_segment(
                    [Pos2::new(x, full.top()), Pos2::new(x, full.bottom())],
                    Stroke::new(2.0, PLAYHEAD),
                );
            }
            body_resp = Some((resp, lanes_rect));
        });
    if let Some(pos) = input.playhead.filter(|p| (t0..=t1).contains(p)) {
        let x = x_in(pos);
        ui.painter_at(head).line_segment(
            [Pos2::new(x, head.top()), Pos2::new(x, head.bottom())],
            Stroke::new(2.0, PLAYHEAD),
        );
    }
    if let Some(g) = toggled {
        if !state.collapsed.remove(&g) {
            state.collapsed.insert(g);
        }
    }

    // hover readout: the nearest event of the lane under the pointer
    let Some((resp, lanes_rect)) = body_resp else {
        return;
    };
    match hover_pick {
        Some((path, t)) => {
            let lane = source.lane(&path);
            let nearest = lane.as_ref().and_then(|l| l.nearest(t));
            let held = lane
                .as_ref()
                .map(|l| l.value_before(t + 1))
                .filter(|v| v.is_finite());
            let fresh = match (&state.hover, nearest) {
                (Some(r), Some(i)) => r.path != path || r.index != i,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if fresh {
                state.hover = nearest.and_then(|i| source.readout(&path, i));
            } else if nearest.is_none() {
                state.hover = None;
            }
            state.hover_value = held.map(|v| (t, f64::from(v)));
            if let Some(r) = state.hover.clone() {
                let at = state.hover_value;
                resp.clone()
                    .on_hover_ui_at_pointer(|ui| lanes::readout_ui(ui, &r, at, labels));
            }
        }
        None => {
            if !resp.hovered() {
                state.hover = None;
                state.hover_value = None;
            }
        }
    }

    // pointer and wheel: pan, zoom, fit (never a seek)
    interact(ui, &resp, &head_resp, lanes_rect, (t0, t1), view_cmds);
}

/// Fills an axis-aligned rectangle without feathering: two triangles. A
/// feathered fill adds eight thin triangles along its edges, each as long as
/// the rectangle, which a software renderer shades block by block.
pub fn fill(painter: &egui::Painter, rect: Rect, color: egui::Color32) {
    let mut mesh = egui::Mesh::default();
    mesh.add_colored_rect(rect, color);
    painter.add(mesh);
}

/// Drag pans, Shift+wheel pans, Ctrl+wheel or pinch zooms at the pointer,
/// double-click fits.
pub fn interact(
    ui: &egui::Ui,
    resp: &egui::Response,
    head: &egui::Response,
    lanes_rect: Rect,
    (t0, t1): (i64, i64),
    view_cmds: &mut Vec<ViewCommand>,
) {
    let span = (t1 - t0).max(1) as f64;
    let width = lanes_rect.width().max(1.0) as f64;
    if resp.double_clicked() || head.double_clicked() {
        view_cmds.push(ViewCommand::Fit);
    }
    if resp.dragged() {
        let dx = resp.drag_delta().x as f64;
        let dt = (-dx / width * span).round() as i64;
        if dt != 0 {
            view_cmds.push(ViewCommand::Pan(dt));
        }
    }
    let hovered = resp.hovered() || head.hovered();
    if !hovered {
        return;
    }
    let pointer = resp.hover_pos().or(head.hover_pos());
    let (zoom, scroll_x) = ui.input(|i| (i.zoom_delta(), i.smooth_scroll_delta.x));
    if zoom != 1.0 {
        let x = pointer.map_or(lanes_rect.center().x, |p| p.x);
        view_cmds.push(ViewCommand::Zoom {
            factor: f64::from(zoom),
            at: axis::t_of(lanes_rect, t0, t1, x),
        });
    } else if scroll_x != 0.0 {
        let dt = (-f64::from(scroll_x) / width * span).round() as i64;
        if dt != 0 {
            view_cmds.push(ViewCommand::Pan(dt));
        }
    }
}

/// The bar above the lanes: source, follow, zoom, fit.
pub fn toolbar_ui(
    ui: &mut egui::Ui,
    source: Source<'_>,
    view: &TimeView,
    has_session: bool,
    show_live: &mut bool,
    view_cmds: &mut Vec<ViewCommand>,
) {
    ui.horizontal_wrapped(|ui| {
        ui.add_enabled_ui(has_session, |ui| {
            ui.selectable_value(show_live, false, "Session")
                .on_hover_text("The loaded session");
        });
        ui.selectable_value(show_live, true, "Live").on_hover_text(
            "Everything received since the window opened (within the history budget)",
        );
        ui.separator();
        let bounds = source.bounds();
        match source {
            Source::Session(_) => {
                let mut follow = view.follow();
                if ui
                    .checkbox(&mut follow, "Follow playhead")
                    .on_hover_text("While playing zoomed in, keep the playhead in view")
                    .changed()
                {
                    view_cmds.push(ViewCommand::SetFollow(follow));
                }
            }
            Source::Live(..) => {
                if view.following_live() {
                    ui.label(
                        RichText::new("• following the newest data")
                            .color(super::widgets::OK_GREEN),
                    );
                } else if ui
                    .button("⏩ Follow live")
                    .on_hover_text("Return to the newest data")
                    .clicked()
                {
                    view_cmds.push(ViewCommand::FollowLive);
                }
            }
        }
        ui.separator();
        if let Some(b) = bounds {
            let (a, z) = view.visible(b);
            let mid = a + (z - a) / 2;
            if ui
                .button("−")
                .on_hover_text("Zoom out (-)")
                .accessible_name("Zoom out")
                .clicked()
            {
                view_cmds.push(ViewCommand::Zoom {
                    factor: 1.0 / view::KEY_ZOOM,
                    at: mid,
                });
            }
            if ui
                .button("+")
                .on_hover_text("Zoom in (+)")
                .accessible_name("Zoom in")
                .clicked()
            {
                view_cmds.push(ViewCommand::Zoom {
                    factor: view::KEY_ZOOM,
                    at: mid,
                });
            }
            if ui
                .button("Fit")
                .on_hover_text("Show everything (double-click the lanes)")
                .clicked()
            {
                view_cmds.push(ViewCommand::Fit);
            }
            ui.label(RichText::new(format!("{} shown", fmt_clock(z - a))).weak())
                .on_hover_text("Drag or Shift+wheel to pan, Ctrl+wheel or pinch to zoom");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn fixture() -> LoadedSession {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/v1/small-60s.msgpack");
        let s = crate::session::Session::open(&path).unwrap();
        LoadedSession::new(Arc::new(s), false)
    }

    #[test]
    fn fixture_lanes_bucket_every_param_event_once() {
        let s = fixture();
        let (t0, t1) = s.range;
        let total: u32 = s
            .param_paths
            .iter()
            .map(|p| {
                lod::buckets(&s.lane(p).unwrap(), t0, t1 + 1, 800)
                    .iter()
                    .map(|b| b.count)
                    .sum::<u32>()
            })
            .sum();
        assert_eq!(total as usize, s.session.param_events().len());
    }

    /// A session file with one parameter path, written record by record.
    fn one_path_session(dir: &std::path::Path, path: &str, from: i64) -> LoadedSession {
        use rmpv::Value;
        let file = dir.join(format!("{path}.msgpack"));
        let mut out = Vec::new();
        for i in 0..50i64 {
            let data = Value::Map(vec![
                ("v".into(), 1.into()),
                ("session_id".into(), "s".into()),
                ("producer_id".into(), "p".into()),
                ("seq".into(), (i + 1).into()),
                ("ts_ms".into(), (from + i * 100).into()),
                ("actor".into(), "user".into()),
                ("path".into(), path.into()),
                ("value".into(), Value::F64(i as f64 / 50.0)),
            ]);
            let rec = Value::Map(vec![
                ("type".into(), "event".into()),
                ("topic".into(), "noise.params".into()),
                ("key".into(), path.into()),
                ("data".into(), data),
            ]);
            rmpv::encode::write_value(&mut out, &rec).unwrap();
        }
        std::fs::write(&file, out).unwrap();
        let s = crate::session::Session::open(&file).unwrap();
        LoadedSession::new(Arc::new(s), false)
    }

    #[test]
    fn a_reloaded_session_gets_its_own_lanes_whatever_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LaneCache::default();
        let a = one_path_session(dir.path(), "gen.1.cutoff", 1000);
        let view = (1000, 6000);
        let lanes_a = cache
            .lanes(&Source::Session(&a), &a.param_paths, view.0, view.1, 100)
            .to_vec();
        assert_eq!(lanes_a[0].path, "gen.1.cutoff");
        drop(a);
        // same range, same width, same path list, maybe the same address: new data
        let b = one_path_session(dir.path(), "gen.1.cutoff", 1050);
        let lanes_b = cache
            .lanes(&Source::Session(&b), &b.param_paths, view.0, view.1, 100)
            .to_vec();
        assert_eq!(
            cache.computed, 2,
            "a new load is never served from the old cache"
        );
        assert_ne!(
            lanes_a
                .iter()
                .map(|l| l.buckets.clone())
                .collect::<Vec<_>>(),
            lanes_b
                .iter()
                .map(|l| l.buckets.clone())
                .collect::<Vec<_>>()
        );
        // the same view of the same load is served from the cache
        let _ = cache.lanes(&Source::Session(&b), &b.param_paths, view.0, view.1, 100);
        assert_eq!(cache.computed, 2);
    }

    #[test]
    fn a_lane_image_is_made_again_only_when_its_lane_or_height_changes() {
        let ctx = egui::Context::default();
        let s = fixture();
        let mut cache = LaneCache::default();
        let mut textures = LaneTextures::default();
        let (t0, t1) = s.range;
        let color = egui::Color32::WHITE;
        let frame = |cache: &mut LaneCache, textures: &mut LaneTextures, t1: i64, h: usize| {
            let _ = cache.lanes(&Source::Session(&s), &s.param_paths, t0, t1, 300);
            let generation = cache.computed;
            for (i, lane) in cache.drawn().iter().enumerate() {
                let _ = textures.get(&ctx, i, generation, lane, h, color);
            }
        };
        let n = s.param_paths.len() as u64;
        frame(&mut cache, &mut textures, t1, 20);
        assert_eq!(textures.made, n);
        // a still view: nothing is drawn again
        frame(&mut cache, &mut textures, t1, 20);
        assert_eq!(textures.made, n);
        // taller rows, then a moved view: every lane again
        frame(&mut cache, &mut textures, t1, 24);
        assert_eq!(textures.made, 2 * n);
        frame(&mut cache, &mut textures, t1 - 1000, 24);
        assert_eq!(textures.made, 3 * n);
    }

    #[test]
    fn the_fixture_has_its_preset_loads_as_markers() {
        let s = fixture();
        let presets: Vec<&str> = s
            .markers
            .iter()
            .filter_map(|m| match &m.kind {
                markers::MarkerKind::Preset(p) => Some(p.as_str()),
                _ => None,
            })
            .collect();
        let facts: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/data/v1/small-60s.facts.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let expected: Vec<&str> = facts["preset_loads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["preset"].as_str().unwrap())
            .collect();
        assert_eq!(presets, expected);
        assert!(s.markers.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
        assert!(s
            .markers
            .iter()
            .any(|m| m.kind == markers::MarkerKind::Note));
    }
}
