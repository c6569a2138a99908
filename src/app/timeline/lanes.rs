//! Drawing one lane: the held value as an automation curve, each pixel
//! column's min..max brighter where events are denser, a value scale, the
//! lane colours (never one of the actor legend's), and the hover readout.

use egui::{Color32, ColorImage, FontId, Painter, Pos2, Rect, RichText};

use super::axis::{self, Labels};
use super::lod::{self, Bucket, Series};

/// A lane ready to draw for one view.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneDraw {
    /// The path.
    pub path: String,
    /// The value held at the left edge (NaN if none yet).
    pub before: f32,
    /// One bucket per pixel column.
    pub buckets: Vec<Bucket>,
    /// The value scale (bottom, top).
    pub scale: (f32, f32),
}

impl LaneDraw {
    /// Buckets a lane over `[t0, t1)` in `width` columns.
    pub fn new<S: Series + ?Sized>(
        path: &str,
        lane: &S,
        t0: i64,
        t1: i64,
        width: usize,
    ) -> LaneDraw {
        LaneDraw {
            path: path.to_owned(),
            before: lane.value_before(t0),
            buckets: lod::buckets(lane, t0, t1, width),
            scale: scale_of(lane),
        }
    }
}

/// A lane's value scale: 0..1 (normalized values), widened to whatever the
/// lane holds outside it.
pub fn scale_of<S: Series + ?Sized>(lane: &S) -> (f32, f32) {
    match lane
        .summary()
        .min_max(lane.first(), lane.end(), |i| lane.value(i))
    {
        Some((lo, hi)) => (lo.min(0.0), hi.max(1.0)),
        None => (0.0, 1.0),
    }
}

/// Lane colours by group: none is an actor legend colour (user blue,
/// replay orange, preset purple, midi green, mod teal) nor close to one.
pub const LANE_PALETTE: [Color32; 6] = [
    Color32::from_rgb(0xE0, 0x6A, 0xA8), // rose
    Color32::from_rgb(0xD8, 0xD0, 0x6A), // straw
    Color32::from_rgb(0xA8, 0xB4, 0xC8), // slate
    Color32::from_rgb(0xE8, 0x8A, 0x70), // coral
    Color32::from_rgb(0x9A, 0xD8, 0xA8), // mint
    Color32::from_rgb(0xD0, 0xC0, 0xB0), // sand
];

/// The colour of a group's lanes.
pub fn lane_color(group: &str) -> Color32 {
    // gen.N cycles in order, so neighbouring generators differ
    if let Some(n) = group
        .strip_prefix("gen.")
        .and_then(|n| n.parse::<usize>().ok())
    {
        return LANE_PALETTE[n % LANE_PALETTE.len()];
    }
    let h = group
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    LANE_PALETTE[(h as usize) % LANE_PALETTE.len()]
}

/// `src` over `dst`, both premultiplied.
fn over(src: Color32, dst: Color32) -> Color32 {
    let k = 255 - u16::from(src.a());
    let mix = |s: u8, d: u8| s.saturating_add(((u16::from(d) * k + 127) / 255) as u8);
    Color32::from_rgba_premultiplied(
        mix(src.r(), dst.r()),
        mix(src.g(), dst.g()),
        mix(src.b(), dst.b()),
        mix(src.a(), dst.a()),
    )
}

/// The lane as an image one texel per column and `h` texels high: the held
/// value as a line with a faint fill under it, and each column's min..max,
/// brighter where events are denser.
/// Shown as one textured rectangle, a lane costs a renderer its pixels: as
/// thousands of one-pixel-wide rectangles, a software renderer (no GPU)
/// shades every 4x4 block each of them touches.
pub fn rasterize(lane: &LaneDraw, h: usize, color: Color32) -> ColorImage {
    let w = lane.buckets.len().max(1);
    let h = h.max(1);
    let mut pixels = vec![Color32::TRANSPARENT; w * h];
    let inner_top = 2.0f32;
    let inner_h = (h as f32 - 4.0).max(1.0);
    let (lo, hi) = lane.scale;
    let span = (hi - lo).max(f32::EPSILON);
    let y_of = |v: f32| inner_top + inner_h * (1.0 - ((v - lo) / span).clamp(0.0, 1.0));
    // rows whose centres fall in [y0, y1)
    let rows = |y0: f32, y1: f32| {
        let a = (y0 - 0.5).ceil().max(0.0) as usize;
        let b = ((y1 - 0.5).ceil().max(0.0) as usize).min(h);
        a..b.max(a)
    };
    let fill = color.gamma_multiply(0.14);
    let line = color.gamma_multiply(0.7);
    let maxc = lane
        .buckets
        .iter()
        .map(|b| b.count)
        .max()
        .unwrap_or(1)
        .max(1) as f32;
    let mut held = lane.before;
    let mut paint = |c: usize, r: std::ops::Range<usize>, col: Color32| {
        for y in r {
            let p = &mut pixels[y * w + c];
            *p = over(col, *p);
        }
    };
    for (c, b) in lane.buckets.iter().enumerate() {
        // the value held over this column: its last event's, or the one before
        if b.last.is_finite() {
            held = b.last;
        }
        if held.is_finite() {
            let y = y_of(held);
            paint(c, rows(y, inner_top + inner_h), fill);
            paint(c, rows(y - 0.75, y + 0.75), line);
        }
        if b.count == 0 {
            continue;
        }
        let density = 0.55 + 0.45 * ((b.count as f32).ln_1p() / maxc.ln_1p());
        let r = if b.min.is_finite() && b.max.is_finite() {
            rows(y_of(b.max) - 1.5, y_of(b.min) + 1.5)
        } else {
            rows(inner_top, inner_top + inner_h)
        };
        paint(c, r, color.gamma_multiply(density));
    }
    ColorImage::new([w, h], pixels)
}

/// The value scale beside a lane: top and bottom values when the row is tall enough.
pub fn draw_scale(painter: &Painter, rect: Rect, (lo, hi): (f32, f32), color: Color32) {
    let font = FontId::monospace(9.0);
    let fmt = |v: f32| {
        if v == v.round() {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    if rect.height() >= 20.0 {
        painter.text(
            Pos2::new(rect.right(), rect.top() + 1.0),
            egui::Align2::RIGHT_TOP,
            fmt(hi),
            font.clone(),
            color,
        );
        painter.text(
            Pos2::new(rect.right(), rect.bottom() - 1.0),
            egui::Align2::RIGHT_BOTTOM,
            fmt(lo),
            font,
            color,
        );
    }
    painter.line_segment(
        [
            Pos2::new(rect.right() + 1.0, rect.top() + 2.0),
            Pos2::new(rect.right() + 1.0, rect.bottom() - 2.0),
        ],
        egui::Stroke::new(1.0, color.gamma_multiply(0.5)),
    );
}

/// The event under the pointer, with every field the performer asks about.
#[derive(Debug, Clone, PartialEq)]
pub struct Readout {
    /// Its path.
    pub path: String,
    /// Its index in the lane.
    pub index: usize,
    /// Its time.
    pub ts_ms: i64,
    /// Normalized value.
    pub value: f64,
    /// In real units, if sent.
    pub value_mapped: Option<f64>,
    /// Who set it.
    pub actor: String,
    /// Which program.
    pub producer: String,
    /// Why the record could not be read back, if it could not.
    pub problem: Option<String>,
}

/// The hover tooltip: the nearest event's fields and the lane's value at the pointer.
pub fn readout_ui(ui: &mut egui::Ui, r: &Readout, at: Option<(i64, f64)>, labels: Labels) {
    ui.label(RichText::new(&r.path).strong());
    egui::Grid::new("readout").num_columns(2).show(ui, |ui| {
        ui.label("value");
        ui.label(RichText::new(format!("{:.4}", r.value)).monospace());
        ui.end_row();
        ui.label("value_mapped");
        ui.label(
            RichText::new(
                r.value_mapped
                    .map_or_else(|| "—".to_owned(), |v| format!("{v:.4}")),
            )
            .monospace(),
        );
        ui.end_row();
        ui.label("actor");
        ui.label(&r.actor);
        ui.end_row();
        ui.label("producer");
        ui.label(&r.producer);
        ui.end_row();
        ui.label("time");
        ui.label(RichText::new(axis::label(r.ts_ms, 1, labels)).monospace());
        ui.end_row();
        if let Some((t, v)) = at {
            ui.label("at pointer");
            ui.label(
                RichText::new(format!("{v:.4} @ {}", axis::label(t, 100, labels))).monospace(),
            );
            ui.end_row();
        }
    });
    if let Some(p) = &r.problem {
        ui.label(RichText::new(p).small().color(ui.visuals().warn_fg_color));
    }
    ui.label(
        RichText::new("drag or Shift+wheel: pan · Ctrl+wheel: zoom · double-click: fit")
            .small()
            .weak(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The actor legend's colours (live.rs).
    const ACTORS: [Color32; 5] = [
        Color32::from_rgb(0x5A, 0x9B, 0xF0),
        Color32::from_rgb(0xFF, 0xB0, 0x20),
        Color32::from_rgb(0xB0, 0x7C, 0xF0),
        Color32::from_rgb(0x4C, 0xC3, 0x6B),
        Color32::from_rgb(0x3C, 0xC8, 0xC8),
    ];

    #[test]
    fn lane_colours_stay_clear_of_the_actor_legend() {
        let dist = |a: Color32, b: Color32| {
            let d = |x: u8, y: u8| (f32::from(x) - f32::from(y)).powi(2);
            (d(a.r(), b.r()) + d(a.g(), b.g()) + d(a.b(), b.b())).sqrt()
        };
        for c in LANE_PALETTE {
            for a in ACTORS {
                assert!(dist(c, a) > 60.0, "{c:?} is too close to {a:?}");
            }
        }
        assert_ne!(lane_color("gen.1"), lane_color("gen.2"));
        assert_eq!(lane_color("master"), lane_color("master"));
    }

    #[test]
    fn the_scale_is_unit_unless_the_lane_leaves_it() {
        let ts = [0, 1, 2];
        let s = lod::SliceSeries::new(&ts, &[0.2, 0.5, 0.9]);
        assert_eq!(scale_of(&s), (0.0, 1.0));
        let s = lod::SliceSeries::new(&ts, &[-1.0, 0.5, 3.0]);
        assert_eq!(scale_of(&s), (-1.0, 3.0));
    }

    #[test]
    fn a_lane_image_shows_the_held_value_and_each_columns_events() {
        let ev = |v: f32| Bucket {
            count: 1,
            min: v,
            max: v,
            last: v,
        };
        // 5 columns: held 0.5 from before, an event at 1.0 in column 2
        let lane = LaneDraw {
            path: "gen.1.cutoff".to_owned(),
            before: 0.5,
            buckets: vec![
                Bucket::EMPTY,
                Bucket::EMPTY,
                ev(1.0),
                Bucket::EMPTY,
                Bucket::EMPTY,
            ],
            scale: (0.0, 1.0),
        };
        let h = 24;
        let img = rasterize(&lane, h, Color32::WHITE);
        assert_eq!(img.size, [5, h]);
        let alpha = |c: usize, y: usize| img.pixels[y * 5 + c].a();
        // rows: inner area 2..22, value 0.5 at y = 12, 1.0 at y = 2
        for c in [0, 1] {
            assert_eq!(alpha(c, 1), 0, "nothing above the held value");
            assert!(alpha(c, 12) > 150, "the held value's line");
            let fill = alpha(c, 18);
            assert!(fill > 0 && fill < 80, "the faint fill under it: {fill}");
        }
        // column 2: the event's bar at the top and the new held value from there on
        assert!(alpha(2, 2) > 150);
        for c in [3, 4] {
            assert!(alpha(c, 2) > 150, "held at 1.0 after the event");
            assert!(alpha(c, 12) < 80, "no line at the old value");
        }
        // an empty lane draws nothing
        let empty = LaneDraw {
            before: f32::NAN,
            buckets: vec![Bucket::EMPTY; 3],
            ..lane
        };
        assert!(rasterize(&empty, h, Color32::WHITE)
            .pixels
            .iter()
            .all(|p| *p == Color32::TRANSPARENT));
    }
}
