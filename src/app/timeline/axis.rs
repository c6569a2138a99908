//! The time axis: round ticks for any zoom, labelled from the session's
//! start (a loaded session) or by time of day (live), with grid lines down
//! the lanes; and the mapping between instants and x.

use egui::{Align2, Color32, FontId, Painter, Pos2, Rect, Stroke};

use crate::app::widgets::fmt_clock;

/// x of instant `t` in `rect` for the view `[t0, t1]`.
pub fn x_of(rect: Rect, t0: i64, t1: i64, t: i64) -> f32 {
    rect.left() + rect.width() * ((t - t0) as f64 / (t1 - t0).max(1) as f64) as f32
}

/// The instant at `x` in `rect` for the view `[t0, t1]` (clamped to the view).
pub fn t_of(rect: Rect, t0: i64, t1: i64, x: f32) -> i64 {
    let f = ((x - rect.left()) / rect.width().max(1.0)).clamp(0.0, 1.0) as f64;
    t0 + (f * (t1 - t0) as f64).round() as i64
}

/// A round tick step (ms) giving about `target` ticks over `span`.
pub fn nice_step(span: i64, target: i64) -> i64 {
    let raw = span / target.max(1);
    for s in [
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000,
        120_000, 300_000, 600_000, 1_800_000, 3_600_000,
    ] {
        if s >= raw {
            return s;
        }
    }
    3_600_000
}

/// How ticks are labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labels {
    /// Time since this instant (a session's start).
    SinceStart(i64),
    /// Time of day (live data).
    TimeOfDay,
}

/// A tick's label for a step of `step` ms.
pub fn label(t: i64, step: i64, labels: Labels) -> String {
    let fine = step < 100;
    match labels {
        Labels::SinceStart(origin) => {
            let rel = t - origin;
            if fine {
                format!(
                    "{}+{:03}",
                    fmt_clock(rel - rel.rem_euclid(1000)),
                    rel.rem_euclid(1000)
                )
            } else {
                fmt_clock(rel)
            }
        }
        Labels::TimeOfDay => {
            let base = crate::human::time_of_day(t);
            if fine {
                format!("{base}.{:03}", t.rem_euclid(1000))
            } else if step < 1000 {
                format!("{base}.{}", t.rem_euclid(1000) / 100)
            } else {
                base
            }
        }
    }
}

/// Draws the ticks of `[t0, t1]` in `ruler` (x over `lanes`), with grid
/// lines down to `grid_bottom`.
#[allow(clippy::too_many_arguments)]
pub fn draw(
    painter: &Painter,
    ruler: Rect,
    lanes: Rect,
    t0: i64,
    t1: i64,
    labels: Labels,
    grid_bottom: f32,
    text: Color32,
    grid: Color32,
) {
    let span = (t1 - t0).max(1);
    let step = nice_step(span, (lanes.width() / 110.0).max(1.0) as i64);
    let origin = match labels {
        Labels::SinceStart(o) => o,
        Labels::TimeOfDay => 0,
    };
    let mut t = origin + (t0 - origin).div_euclid(step) * step;
    let mut n = 0;
    while t <= t1 && n < 1000 {
        if t >= t0 {
            let x = x_of(lanes, t0, t1, t);
            painter.line_segment(
                [
                    Pos2::new(x, ruler.bottom() - 5.0),
                    Pos2::new(x, grid_bottom),
                ],
                Stroke::new(1.0, grid),
            );
            painter.text(
                Pos2::new(x + 3.0, ruler.top() + 2.0),
                Align2::LEFT_TOP,
                label(t, step, labels),
                FontId::monospace(11.0),
                text,
            );
        }
        t += step;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_and_labels_follow_the_step() {
        assert_eq!(nice_step(60_000, 10), 10_000);
        assert_eq!(nice_step(1000, 10), 100);
        assert_eq!(nice_step(100, 10), 10);
        assert_eq!(nice_step(100_000_000, 2), 3_600_000);
        assert_eq!(label(61_234, 1000, Labels::SinceStart(0)), "01:01.2");
        assert_eq!(label(61_234, 10, Labels::SinceStart(0)), "01:01.0+234");
    }

    #[test]
    fn x_and_t_are_inverse() {
        let r = Rect::from_min_max(Pos2::new(100.0, 0.0), Pos2::new(1100.0, 10.0));
        assert_eq!(x_of(r, 0, 10_000, 5_000), 600.0);
        assert_eq!(t_of(r, 0, 10_000, 600.0), 5_000);
        assert_eq!(t_of(r, 0, 10_000, -50.0), 0);
    }
}
