//! The 16 mod buses, drawn as min/max envelopes per pixel over the same
//! view as the timeline (a loaded session: its zoom, pan and playhead, with
//! each bus's value at the playhead; live: the live view, following the
//! newest data), with a time axis under them. Zoom and pan here move the
//! timeline too: they are the same view commands.

use egui::{Align2, FontId, Mesh, Pos2, Rect, RichText, Sense, Stroke, Vec2};

use super::model::{ModBus, MOD_BUSES};
use super::timeline::lanes::LaneDraw;
use super::timeline::lod::Series;
use super::timeline::view::{TimeView, ViewCommand};
use super::timeline::{axis, LaneCache, Source};
use super::widgets::PLAYHEAD;

/// What the mod view reads.
#[derive(Debug, Clone, Copy)]
pub struct ModsIn<'a> {
    /// The data (session or live history).
    pub source: Source<'a>,
    /// The view shared with the timeline.
    pub view: &'a TimeView,
    /// The playhead (a session).
    pub playhead: Option<i64>,
    /// The latest live values.
    pub live: &'a [ModBus],
}

/// The envelope colour.
const BUS_COLOR: egui::Color32 = egui::Color32::from_rgb(0x3C, 0xC8, 0xC8);

/// The mod buses view.
pub fn mods_ui(
    ui: &mut egui::Ui,
    input: ModsIn<'_>,
    cache: &mut LaneCache,
    view_cmds: &mut Vec<ViewCommand>,
) {
    let source = input.source;
    let paths: Vec<String> = (0..MOD_BUSES).map(|b| format!("bus.{b}")).collect();
    let Some(bounds) = source.bounds() else {
        ui.label(RichText::new("No noise.mod yet").weak());
        return;
    };
    let (t0, t1) = input.view.visible(bounds);
    let t1 = t1.max(t0 + 1);
    let cols = if ui.available_width() < 700.0 { 2 } else { 4 };
    let rows = MOD_BUSES.div_ceil(cols);
    let gap = 6.0;
    let axis_h = 18.0;
    let title_h = 15.0;
    let avail = ui.available_size();
    let cell_w = ((avail.x - gap * (cols as f32 - 1.0)) / cols as f32).max(80.0);
    let cell_h =
        ((avail.y - axis_h - rows as f32 * (gap + title_h)) / rows as f32).clamp(36.0, 200.0);
    let plot_w = cell_w.max(1.0) as usize;
    let lanes: Vec<LaneDraw> = cache.lanes(&source, &paths, t0, t1, plot_w).to_vec();
    let labels = match source {
        Source::Session(s) => axis::Labels::SinceStart(s.range.0),
        Source::Live(..) => axis::Labels::TimeOfDay,
    };
    let visuals = ui.visuals().clone();
    egui::ScrollArea::vertical()
        .id_salt("mods-scroll")
        .auto_shrink([false, true])
        .show(ui, |ui| {
            let total_h = rows as f32 * (title_h + cell_h + gap) + axis_h;
            let (full, resp) =
                ui.allocate_exact_size(Vec2::new(avail.x, total_h), Sense::click_and_drag());
            resp.widget_info(|| {
                egui::WidgetInfo::labeled(egui::Role::Group, true, "Mod bus plots")
            });
            let painter = ui.painter_at(full);
            for (bus, lane) in lanes.iter().enumerate() {
                let (r, c) = (bus / cols, bus % cols);
                let x = full.left() + c as f32 * (cell_w + gap);
                let y = full.top() + r as f32 * (title_h + cell_h + gap);
                let plot =
                    Rect::from_min_size(Pos2::new(x, y + title_h), Vec2::new(cell_w, cell_h));
                let value = match (source, input.playhead) {
                    (Source::Session(_), Some(p)) => source
                        .lane(&lane.path)
                        .map(|l| l.value_before(p + 1))
                        .filter(|v| v.is_finite())
                        .map(f64::from),
                    _ => input.live.get(bus).and_then(|m| m.value),
                };
                let title = match value {
                    Some(v) => format!("bus.{bus}  {v:+.3}"),
                    None => format!("bus.{bus}  —"),
                };
                ui.put(
                    Rect::from_min_size(Pos2::new(x, y), Vec2::new(cell_w, title_h)),
                    egui::Label::new(RichText::new(title).small().monospace()).selectable(false),
                );
                painter.rect_filled(plot, 2.0, visuals.extreme_bg_color);
                draw_envelope(&painter, plot, lane);
                let (lo, hi) = lane.scale;
                painter.text(
                    plot.right_top() + Vec2::new(-2.0, 1.0),
                    Align2::RIGHT_TOP,
                    format!("{hi:.1}"),
                    FontId::monospace(9.0),
                    visuals.weak_text_color(),
                );
                painter.text(
                    plot.right_bottom() + Vec2::new(-2.0, -1.0),
                    Align2::RIGHT_BOTTOM,
                    format!("{lo:.1}"),
                    FontId::monospace(9.0),
                    visuals.weak_text_color(),
                );
                if let Some(p) = input.playhead.filter(|p| (t0..=t1).contains(p)) {
                    let px = axis::x_of(plot, t0, t1, p);
                    painter.line_segment(
                        [Pos2::new(px, plot.top()), Pos2::new(px, plot.bottom())],
                        Stroke::new(1.5, PLAYHEAD),
                    );
                }
            }
            // one time axis under the grid, for the first column's x
            let axis_rect = Rect::from_min_size(
                Pos2::new(full.left(), full.bottom() - axis_h),
                Vec2::new(cell_w, axis_h),
            );
            axis::draw(
                &painter,
                axis_rect,
                axis_rect,
                t0,
                t1,
                labels,
                axis_rect.top(),
                visuals.weak_text_color(),
                visuals.widgets.noninteractive.bg_stroke.color,
            );
            let plot_x = Rect::from_min_size(full.min, Vec2::new(cell_w, full.height()));
            super::timeline::interact(ui, &resp, &resp, plot_x, (t0, t1), view_cmds);
        });
}

/// The min..max of each pixel column as a filled band, the held value between events.
fn draw_envelope(painter: &egui::Painter, plot: Rect, lane: &LaneDraw) {
    let (lo, hi) = lane.scale;
    let span = (hi - lo).max(f32::EPSILON);
    let y_of =
        |v: f32| plot.bottom() - 2.0 - (plot.height() - 4.0) * ((v - lo) / span).clamp(0.0, 1.0);
    let mut mesh = Mesh::default();
    let mut held = lane.before;
    for (c, b) in lane.buckets.iter().enumerate() {
        let x = plot.left() + c as f32;
        let (a, z) = if b.min.is_finite() {
            let a = if held.is_finite() {
                b.min.min(held)
            } else {
                b.min
            };
            let z = if held.is_finite() {
                b.max.max(held)
            } else {
                b.max
            };
            (a, z)
        } else if held.is_finite() {
            (held, held)
        } else {
            continue;
        };
        mesh.add_colored_rect(
            Rect::from_min_max(
                Pos2::new(x, y_of(z) - 0.75),
                Pos2::new(x + 1.0, y_of(a) + 0.75),
            ),
            BUS_COLOR.gamma_multiply(0.85),
        );
        if b.last.is_finite() {
            held = b.last;
        }
    }
    painter.add(mesh);
}
