//! The timeline (lanes of parameter events with the playhead) and the scrub
//! bar (the whole session with snapshot ticks; dragging seeks the player).
//!
//! Lanes are drawn as per-pixel buckets, never one shape per event: each
//! pixel column of a lane gets the count and the min/max value of its events,
//! and a lane is one mesh. Past [`DETAIL_LIMIT`] events in view a lane keeps
//! only counts (two binary searches per column), so a session with millions
//! of events costs the same per frame as a small one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{accesskit, Align2, Color32, FontId, Mesh, Pos2, Rect, RichText, Sense, Stroke, Vec2};

use super::model::{group_of, Model};
use super::widgets::{fmt_clock, PIN, PLAYHEAD};
use super::workers::{Command, PlayerCommand};
use super::UiState;
use crate::session::Session;

/// Above this many events in view, a lane shows density only (no min/max scan).
pub const DETAIL_LIMIT: usize = 200_000;
/// While dragging the scrub bar, seeks are sent at most this often.
const SEEK_EVERY: Duration = Duration::from_millis(60);

/// One pixel column of a lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Events in the column.
    pub count: u32,
    /// Smallest value (NaN when unknown).
    pub min: f32,
    /// Largest value (NaN when unknown).
    pub max: f32,
    /// Value of the column's last event (NaN when unknown).
    pub last: f32,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        count: 0,
        min: f32::NAN,
        max: f32::NAN,
        last: f32::NAN,
    };
}

/// Buckets `width` columns over `[t0, t1)` of events whose times are
/// `ts(i)` and values `value(i)` for `i` in `0..n`, with `ts` non-decreasing.
pub fn bucketize(
    n: usize,
    ts: impl Fn(usize) -> i64,
    value: impl Fn(usize) -> f64,
    t0: i64,
    t1: i64,
    width: usize,
) -> Vec<Bucket> {
    let mut out = vec![Bucket::EMPTY; width];
    if width == 0 || t1 <= t0 || n == 0 {
        return out;
    }
    let span = (t1 - t0) as f64;
    let col_start = |c: usize| t0 + (span * c as f64 / width as f64).floor() as i64;
    let lower = |t: i64| partition_point(n, |i| ts(i) < t);
    let first = lower(t0);
    let last = lower(t1);
    if last - first > DETAIL_LIMIT {
        // level of detail: counts only
        let mut lo = first;
        for (c, b) in out.iter_mut().enumerate() {
            let hi = if c + 1 == width {
                last
            } else {
                lower(col_start(c + 1))
            };
            b.count = (hi - lo) as u32;
            lo = hi;
        }
        return out;
    }
    for i in first..last {
        let c = (((ts(i) - t0) as f64 / span) * width as f64) as usize;
        let b = &mut out[c.min(width - 1)];
        b.count += 1;
        let v = value(i) as f32;
        if v.is_finite() {
            b.min = if b.min.is_nan() { v } else { b.min.min(v) };
            b.max = if b.max.is_nan() { v } else { b.max.max(v) };
            b.last = v;
        }
    }
    out
}

fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The value of the last event before `t0` (NaN if none): where a lane's
/// held value starts at the left edge of the view.
pub fn value_before(
    n: usize,
    ts: impl Fn(usize) -> i64,
    value: impl Fn(usize) -> f64,
    t0: i64,
) -> f32 {
    match partition_point(n, |i| ts(i) < t0) {
        0 => f32::NAN,
        i => value(i - 1) as f32,
    }
}

/// Buckets of one name's lane of a session.
pub fn lane_buckets(
    session: &Session,
    lane: &[u32],
    t0: i64,
    t1: i64,
    width: usize,
) -> Vec<Bucket> {
    let ev = session.events();
    bucketize(
        lane.len(),
        |i| ev[lane[i] as usize].ts_ms,
        |i| ev[lane[i] as usize].value,
        t0,
        t1,
        width,
    )
}

/// The mod plots' cache (see `mods.rs`): session, view start and end,
/// columns, and the series for that key.
pub type ModCache = (usize, i64, i64, usize, Vec<Vec<[f64; 2]>>);

/// Buckets computed for one view, reused while the view does not change.
#[derive(Debug, Default)]
pub struct Caches {
    key: Option<(usize, i64, i64, usize)>,
    lanes: Vec<Lane>,
    /// The mod plots' cache.
    pub mods: Option<ModCache>,
}

fn session_key(s: &Arc<Session>) -> usize {
    Arc::as_ptr(s) as usize
}

/// One lane of the timeline for the current view.
#[derive(Debug)]
struct Lane {
    path: String,
    /// The value held at the left edge.
    before: f32,
    buckets: Vec<Bucket>,
}

/// Lanes (parameter paths) and their buckets for the view, from the cache when possible.
fn lanes_for<'c>(
    caches: &'c mut Caches,
    session: &Arc<Session>,
    paths: &[String],
    t0: i64,
    t1: i64,
    width: usize,
) -> &'c [Lane] {
    let key = (session_key(session), t0, t1, width);
    if caches.key != Some(key) {
        caches.lanes = paths
            .iter()
            .map(|p| match session.name_id(p) {
                Some(id) => {
                    let lane = session.lane(id);
                    let ev = session.events();
                    Lane {
                        path: p.clone(),
                        before: value_before(
                            lane.len(),
                            |i| ev[lane[i] as usize].ts_ms,
                            |i| ev[lane[i] as usize].value,
                            t0,
                        ),
                        buckets: lane_buckets(session, lane, t0, t1, width),
                    }
                }
                None => Lane {
                    path: p.clone(),
                    before: f32::NAN,
                    buckets: vec![Bucket::EMPTY; width],
                },
            })
            .collect();
        caches.key = Some(key);
    }
    &caches.lanes
}

/// Colour of a lane by its group.
fn group_color(group: &str) -> Color32 {
    let palette = [
        Color32::from_rgb(0x5A, 0x9B, 0xF0),
        Color32::from_rgb(0x4C, 0xC3, 0x6B),
        Color32::from_rgb(0xE0, 0x7B, 0x5A),
        Color32::from_rgb(0xB0, 0x7C, 0xF0),
        Color32::from_rgb(0x3C, 0xC8, 0xC8),
        Color32::from_rgb(0xE8, 0xC0, 0x4A),
        Color32::from_rgb(0xE0, 0x6A, 0xA8),
    ];
    let h = group
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    palette[(h as usize) % palette.len()]
}

/// x of a session instant in `rect` for the view `[t0, t1]`.
fn x_of(rect: Rect, t0: i64, t1: i64, t: i64) -> f32 {
    rect.left() + rect.width() * ((t - t0) as f64 / (t1 - t0).max(1) as f64) as f32
}

fn t_of(rect: Rect, t0: i64, t1: i64, x: f32) -> i64 {
    let f = ((x - rect.left()) / rect.width()).clamp(0.0, 1.0) as f64;
    t0 + (f * (t1 - t0) as f64).round() as i64
}

/// The scrub bar: the whole session, snapshot ticks, the loop, the playhead.
pub fn scrub_ui(ui: &mut egui::Ui, model: &Model, st: &mut UiState, cmds: &mut Vec<Command>) {
    let desired = Vec2::new(ui.available_width(), 26.0);
    let (rect, resp) = ui.allocate_exact_size(desired, Sense::click_and_drag());
    let painter = ui.painter_at(rect.expand(2.0));
    let visuals = ui.visuals();
    painter.rect_filled(rect, 4.0, visuals.extreme_bg_color);
    let Some(s) = &model.session else {
        painter.text(
            rect.center(),
            Align2::CENTER_CENTER,
            "Open a session to scrub it (Sessions, or drop a .msgpack file here)",
            FontId::proportional(12.0),
            visuals.weak_text_color(),
        );
        resp.widget_info(|| egui::WidgetInfo::slider(false, 0.0, "Position"));
        return;
    };
    let (t0, t1) = s.range;
    let t1 = t1.max(t0 + 1);
    let pos = st.scrub.map_or(model.playback.position_ms, |(t, _)| t);
    ui.ctx().accesskit_node_builder(resp.id, |b| {
        b.set_min_numeric_value(0.0);
        b.set_max_numeric_value((t1 - t0) as f64 / 1000.0);
        b.add_action(accesskit::Action::SetValue);
    });
    resp.widget_info(|| egui::WidgetInfo::slider(true, (pos - t0) as f64 / 1000.0, "Position"));

    // loop region
    if let Some((a, b)) = model.playback.loop_range {
        let r = Rect::from_x_y_ranges(
            x_of(rect, t0, t1, a)..=x_of(rect, t0, t1, b),
            rect.y_range(),
        );
        painter.rect_filled(r, 0.0, PIN.gamma_multiply(0.18));
    }
    // event density along the bar (params only, one bucket per 2 px)
    let cols = (rect.width() / 2.0).max(1.0) as usize;
    let params = s.session.param_events();
    let ev = s.session.events();
    let dens = bucketize(
        params.len(),
        |i| ev[params[i] as usize].ts_ms,
        |_| f64::NAN,
        t0,
        t1 + 1,
        cols,
    );
    let maxc = dens.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f32;
    let mut mesh = Mesh::default();
    for (c, b) in dens.iter().enumerate() {
        if b.count == 0 {
            continue;
        }
        let h = (b.count as f32 / maxc).sqrt() * (rect.height() - 8.0);
        let x = rect.left() + c as f32 * 2.0;
        mesh.add_colored_rect(
            Rect::from_min_max(
                Pos2::new(x, rect.bottom() - 2.0 - h),
                Pos2::new(x + 2.0, rect.bottom() - 2.0),
            ),
            visuals.text_color().gamma_multiply(0.25),
        );
    }
    painter.add(mesh);
    // snapshot ticks
    for &t in &s.snapshots {
        let x = x_of(rect, t0, t1, t);
        painter.line_segment(
            [Pos2::new(x, rect.top()), Pos2::new(x, rect.top() + 7.0)],
            Stroke::new(1.5, visuals.text_color().gamma_multiply(0.7)),
        );
    }
    // playhead
    let x = x_of(rect, t0, t1, pos);
    painter.line_segment(
        [Pos2::new(x, rect.top()), Pos2::new(x, rect.bottom())],
        Stroke::new(2.0, PLAYHEAD),
    );
    painter.circle_filled(Pos2::new(x, rect.center().y), 5.0, PLAYHEAD);

    // seeking
    let now = Instant::now();
    if let Some(p) = resp.interact_pointer_pos() {
        if resp.dragged() || resp.is_pointer_button_down_on() {
            let t = t_of(rect, t0, t1, p.x);
            let last = st.scrub.and_then(|(_, at)| at);
            let due = last.is_none_or(|at| now.duration_since(at) >= SEEK_EVERY);
            if due {
                cmds.push(Command::Transport(PlayerCommand::Seek(t)));
            }
            st.scrub = Some((t, if due { Some(now) } else { last }));
        }
    }
    if resp.drag_stopped() || resp.clicked() {
        if let Some((t, _)) = st.scrub.take() {
            cmds.push(Command::Transport(PlayerCommand::Seek(t)));
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
    if resp.hovered() {
        if let Some(p) = resp.hover_pos() {
            let t = t_of(rect, t0, t1, p.x);
            resp.on_hover_text_at_pointer(format!("seek to {}", fmt_clock(t - t0)));
        }
    }
}

/// The timeline: one lane per parameter path, the playhead, the loop; click
/// seeks, drag pans, Ctrl+scroll (or pinch) zooms, double-click shows all.
pub fn timeline_ui(ui: &mut egui::Ui, model: &Model, st: &mut UiState, cmds: &mut Vec<Command>) {
    let Some(s) = &model.session else {
        ui.add_space(40.0);
        ui.vertical_centered(|ui| {
            ui.label(RichText::new("No session loaded").size(18.0));
            ui.label(
                RichText::new("Open one in Sessions, or drop a .msgpack file on the window.")
                    .weak(),
            );
            if ui.button("Go to Sessions").clicked() {
                st.tab = super::Tab::Sessions;
            }
        });
        return;
    };
    let (s0, s1) = (s.range.0, s.range.1.max(s.range.0 + 1));
    let (t0, t1) = st.timeline_view.unwrap_or((s0, s1));

    let label_w = 150.0;
    let ruler_h = 20.0;
    let avail = ui.available_size();
    let n = s.param_paths.len().max(1);
    let row_h = ((avail.y - ruler_h - 8.0) / n as f32).clamp(12.0, 26.0);
    let height = ruler_h + row_h * n as f32;
    let (full, resp) = ui.allocate_exact_size(
        Vec2::new(avail.x, height.min(avail.y)),
        Sense::click_and_drag(),
    );
    resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Group, true, "Timeline"));
    let lanes_rect = Rect::from_min_max(
        Pos2::new(full.left() + label_w, full.top() + ruler_h),
        full.max,
    );
    let width = lanes_rect.width().max(1.0) as usize;
    let painter = ui.painter_at(full);
    let visuals = ui.visuals().clone();

    // ruler
    let ruler = Rect::from_min_max(
        Pos2::new(lanes_rect.left(), full.top()),
        Pos2::new(full.right(), full.top() + ruler_h),
    );
    let span = (t1 - t0).max(1);
    let step = nice_step(span, (lanes_rect.width() / 90.0).max(1.0) as i64);
    let mut t = s0 + ((t0 - s0) / step) * step;
    while t <= t1 {
        if t >= t0 {
            let x = x_of(lanes_rect, t0, t1, t);
            painter.line_segment(
                [
                    Pos2::new(x, ruler.bottom() - 5.0),
                    Pos2::new(x, full.bottom()),
                ],
                Stroke::new(
                    1.0,
                    visuals
                        .widgets
                        .noninteractive
                        .bg_stroke
                        .color
                        .gamma_multiply(0.5),
                ),
            );
            painter.text(
                Pos2::new(x + 3.0, ruler.top() + 2.0),
                Align2::LEFT_TOP,
                fmt_clock(t - s0),
                FontId::monospace(11.0),
                visuals.weak_text_color(),
            );
        }
        t += step;
    }
    for &snap in &s.snapshots {
        if (t0..=t1).contains(&snap) {
            let x = x_of(lanes_rect, t0, t1, snap);
            painter.line_segment(
                [
                    Pos2::new(x, ruler.bottom() - 6.0),
                    Pos2::new(x, ruler.bottom()),
                ],
                Stroke::new(2.0, visuals.text_color().gamma_multiply(0.6)),
            );
        }
    }

    // lanes
    let lanes = lanes_for(&mut st.caches, &s.session, &s.param_paths, t0, t1, width);
    for (i, lane) in lanes.iter().enumerate() {
        let (path, buckets) = (&lane.path, &lane.buckets);
        let top = lanes_rect.top() + i as f32 * row_h;
        let row = Rect::from_min_max(
            Pos2::new(full.left(), top),
            Pos2::new(full.right(), top + row_h),
        );
        if i % 2 == 0 {
            painter.rect_filled(row, 0.0, visuals.faint_bg_color);
        }
        let group = group_of(path);
        let color = group_color(&group);
        let pinned = model.pin_left_ms(path).is_some();
        painter.text(
            Pos2::new(full.left() + 6.0, row.center().y),
            Align2::LEFT_CENTER,
            path,
            FontId::proportional((row_h * 0.6).clamp(10.0, 13.0)),
            if pinned { PIN } else { visuals.text_color() },
        );
        let inner_top = top + 2.0;
        let inner_h = row_h - 4.0;
        let y_of = |v: f32| inner_top + inner_h * (1.0 - v.clamp(0.0, 1.0));
        let mut mesh = Mesh::default();
        // the held value, as an automation lane: runs of equal value are one rect
        let mut held = lane.before;
        let mut run_start = 0usize;
        let flush = |mesh: &mut Mesh, from: usize, to: usize, v: f32| {
            if v.is_finite() && to > from {
                let x0 = lanes_rect.left() + from as f32;
                let x1 = lanes_rect.left() + to as f32;
                let y = y_of(v);
                mesh.add_colored_rect(
                    Rect::from_min_max(Pos2::new(x0, y), Pos2::new(x1, inner_top + inner_h)),
                    color.gamma_multiply(0.16),
                );
                mesh.add_colored_rect(
                    Rect::from_min_max(Pos2::new(x0, y - 0.75), Pos2::new(x1, y + 0.75)),
                    color.gamma_multiply(0.7),
                );
            }
        };
        for (c, b) in buckets.iter().enumerate() {
            if b.last.is_finite() && b.last != held {
                flush(&mut mesh, run_start, c, held);
                held = b.last;
                run_start = c;
            }
        }
        flush(&mut mesh, run_start, buckets.len(), held);
        // the events themselves: each column's min..max, brighter where denser
        let maxc = buckets.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f32;
        for (c, b) in buckets.iter().enumerate() {
            if b.count == 0 {
                continue;
            }
            let x = lanes_rect.left() + c as f32;
            let density = 0.55 + 0.45 * ((b.count as f32).ln_1p() / maxc.ln_1p());
            let r = if b.min.is_finite() {
                Rect::from_min_max(
                    Pos2::new(x - 0.5, y_of(b.max) - 1.5),
                    Pos2::new(x + 1.5, y_of(b.min) + 1.5),
                )
            } else {
                Rect::from_min_max(
                    Pos2::new(x, inner_top),
                    Pos2::new(x + 1.0, inner_top + inner_h),
                )
            };
            mesh.add_colored_rect(r, color.gamma_multiply(density));
        }
        painter.add(mesh);
    }

    // loop and playhead
    if let Some((a, b)) = model.playback.loop_range {
        let r = Rect::from_x_y_ranges(
            x_of(lanes_rect, t0, t1, a).max(lanes_rect.left())
                ..=x_of(lanes_rect, t0, t1, b).min(lanes_rect.right()),
            full.y_range(),
        );
        if r.width() > 0.0 {
            painter.rect_filled(r, 0.0, PIN.gamma_multiply(0.08));
        }
    }
    let pos = st.scrub.map_or(model.playback.position_ms, |(t, _)| t);
    if (t0..=t1).contains(&pos) {
        let x = x_of(lanes_rect, t0, t1, pos);
        painter.line_segment(
            [Pos2::new(x, full.top()), Pos2::new(x, full.bottom())],
            Stroke::new(2.0, PLAYHEAD),
        );
    }

    // interaction
    let over_lanes = resp.hover_pos().is_some_and(|p| p.x >= lanes_rect.left());
    if resp.clicked() {
        if let Some(p) = resp.interact_pointer_pos() {
            if p.x >= lanes_rect.left() {
                cmds.push(Command::Transport(PlayerCommand::Seek(t_of(
                    lanes_rect, t0, t1, p.x,
                ))));
            }
        }
    }
    if resp.double_clicked() {
        st.timeline_view = None;
    }
    let mut view = (t0, t1);
    if resp.dragged() {
        let dx = resp.drag_delta().x;
        let dt = (-(dx as f64) / lanes_rect.width() as f64 * span as f64).round() as i64;
        view = (t0 + dt, t1 + dt);
    }
    if over_lanes {
        let (zoom, scroll) = ui.input(|i| (i.zoom_delta(), i.smooth_scroll_delta));
        if zoom != 1.0 {
            let px = resp.hover_pos().map_or(lanes_rect.center().x, |p| p.x);
            let at = t_of(lanes_rect, t0, t1, px);
            let new_span = ((span as f64) / zoom as f64).clamp(50.0, (s1 - s0) as f64) as i64;
            let f = (at - t0) as f64 / span as f64;
            let a = at - (f * new_span as f64) as i64;
            view = (a, a + new_span);
        } else if scroll.x != 0.0 {
            let dt = (-(scroll.x as f64) / lanes_rect.width() as f64 * span as f64) as i64;
            view = (view.0 + dt, view.1 + dt);
        }
    }
    if view != (t0, t1) {
        // keep the view inside the session
        let w = (view.1 - view.0).min(s1 - s0);
        let a = view.0.clamp(s0, s1 - w);
        st.timeline_view = if w >= s1 - s0 { None } else { Some((a, a + w)) };
    }
    if let Some(p) = resp.hover_pos().filter(|p| p.x >= lanes_rect.left()) {
        let t = t_of(lanes_rect, t0, t1, p.x);
        resp.on_hover_text_at_pointer(format!(
            "{} — click to seek, drag to pan, Ctrl+scroll to zoom, double-click for all",
            fmt_clock(t - s0)
        ));
    }
}

/// A round ruler step (ms) giving about `target` ticks over `span`.
fn nice_step(span: i64, target: i64) -> i64 {
    let raw = span / target.max(1);
    for s in [
        10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000,
        300_000, 600_000, 1_800_000, 3_600_000,
    ] {
        if s >= raw {
            return s;
        }
    }
    3_600_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_and_range_values_per_column() {
        let ts = [0i64, 1, 5, 9, 10, 19, 25];
        let vs = [0.1, 0.9, 0.5, 0.2, 0.3, 0.7, 1.0];
        let b = bucketize(ts.len(), |i| ts[i], |i| vs[i], 0, 20, 2);
        assert_eq!(b[0].count, 4);
        assert_eq!((b[0].min, b[0].max), (0.1, 0.9));
        assert_eq!(b[1].count, 2, "t=25 is outside [0, 20)");
        assert_eq!((b[1].min, b[1].max), (0.3, 0.7));
        // empty and degenerate views
        assert!(bucketize(0, |_| 0, |_| 0.0, 0, 10, 3)
            .iter()
            .all(|b| b.count == 0));
        assert_eq!(
            bucketize(3, |i| ts[i], |i| vs[i], 5, 5, 4)
                .iter()
                .map(|b| b.count)
                .sum::<u32>(),
            0
        );
        assert!(bucketize(3, |i| ts[i], |i| vs[i], 0, 10, 0).is_empty());
    }

    #[test]
    fn past_the_detail_limit_only_counts_are_kept_and_they_add_up() {
        let n = DETAIL_LIMIT + 1000;
        let b = bucketize(n, |i| i as i64, |_| 0.5, 0, n as i64, 7);
        assert_eq!(b.iter().map(|b| b.count as usize).sum::<usize>(), n);
        assert!(b.iter().all(|b| b.min.is_nan()));
        let small = bucketize(1000, |i| i as i64, |_| 0.5, 0, 1000, 7);
        assert_eq!(small.iter().map(|b| b.count as usize).sum::<usize>(), 1000);
        assert!(small.iter().all(|b| b.min == 0.5));
    }

    #[test]
    fn fixture_lanes_bucket_every_param_event_once() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/v1/small-60s.msgpack");
        let s = Session::open(&path).unwrap();
        let (t0, t1) = s.time_range().unwrap();
        let total: u32 = s
            .param_ids()
            .iter()
            .map(|&id| {
                lane_buckets(&s, s.lane(id), t0, t1 + 1, 800)
                    .iter()
                    .map(|b| b.count)
                    .sum::<u32>()
            })
            .sum();
        assert_eq!(total as usize, s.param_events().len());
    }

    #[test]
    fn ruler_steps_are_round() {
        assert_eq!(nice_step(60_000, 10), 10_000);
        assert_eq!(nice_step(1000, 10), 100);
        assert_eq!(nice_step(100_000_000, 2), 3_600_000);
    }
}
