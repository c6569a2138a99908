//! What part of time the timeline shows, and the loop selection, changed
//! only by [`ViewCommand`]s: panels push commands while they draw, the
//! window applies them after the frame, and [`TimeView::apply`] says what
//! changed (a `#[must_use]` [`ViewResponse`]), so a changed loop selection
//! reaches the player and nothing else has to guess.

/// The narrowest view, in ms.
pub const MIN_SPAN_MS: i64 = 50;
/// How much of a live view the newest data follows by default.
pub const LIVE_SPAN_MS: i64 = 60_000;
/// While following the playhead, the view pages when the playhead is this
/// close to the right edge (fraction of the span), leaving this much behind it.
const FOLLOW_MARGIN: f64 = 0.05;
/// `+` / `-` zoom by this factor.
pub const KEY_ZOOM: f64 = 1.5;

/// A change to the view or the loop selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ViewCommand {
    /// Zoom by `factor` (above 1 zooms in) keeping instant `at` where it is.
    Zoom {
        /// Span divisor.
        factor: f64,
        /// The instant that stays put.
        at: i64,
    },
    /// Move the view by this many ms (stops following).
    Pan(i64),
    /// Show everything (a session: its whole length; live: all history,
    /// still following). Never seeks.
    Fit,
    /// Follow the playhead (session) while playing zoomed in.
    SetFollow(bool),
    /// Live: follow the newest data again.
    FollowLive,
    /// Loop start at this instant.
    SetLoopA(i64),
    /// Loop end at this instant.
    SetLoopB(i64),
}

/// What applying a command changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct ViewResponse {
    /// The visible range changed (redraw, recompute buckets).
    pub range_changed: bool,
    /// Following was switched on or off.
    pub follow_changed: bool,
    /// The loop selection changed to this (send it to the player if looping).
    pub loop_changed: Option<(i64, i64)>,
}

impl ViewResponse {
    /// Combines two responses.
    pub fn or(self, other: ViewResponse) -> ViewResponse {
        ViewResponse {
            range_changed: self.range_changed || other.range_changed,
            follow_changed: self.follow_changed || other.follow_changed,
            loop_changed: other.loop_changed.or(self.loop_changed),
        }
    }
}

/// The visible range, the follow switch and the loop selection.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeView {
    /// A fixed range, or `None`: everything (a session), or the newest
    /// [`TimeView::tail`] (live).
    range: Option<(i64, i64)>,
    /// Live: how much of the newest data a following view shows (`None`: a session view).
    tail: Option<i64>,
    /// Follow the playhead while playing.
    follow: bool,
    /// Loop start.
    loop_a: Option<i64>,
    /// Loop end.
    loop_b: Option<i64>,
}

impl Default for TimeView {
    fn default() -> Self {
        TimeView::session()
    }
}

impl TimeView {
    /// A view of a whole session, following the playhead.
    pub fn session() -> TimeView {
        TimeView {
            range: None,
            tail: None,
            follow: true,
            loop_a: None,
            loop_b: None,
        }
    }

    /// A live view following the newest [`LIVE_SPAN_MS`].
    pub fn live() -> TimeView {
        TimeView {
            tail: Some(LIVE_SPAN_MS),
            ..TimeView::session()
        }
    }

    /// The range shown over data spanning `bounds`.
    pub fn visible(&self, bounds: (i64, i64)) -> (i64, i64) {
        let (lo, hi) = (bounds.0, bounds.1.max(bounds.0 + 1));
        match (self.range, self.tail) {
            (Some(r), _) => r,
            (None, Some(span)) => (hi - span, hi),
            (None, None) => (lo, hi),
        }
    }

    /// True while a live view follows the newest data.
    pub fn following_live(&self) -> bool {
        self.tail.is_some() && self.range.is_none()
    }

    /// Whether the view follows the playhead.
    pub fn follow(&self) -> bool {
        self.follow
    }

    /// Whether a part of the data is shown (zoomed in).
    pub fn zoomed(&self) -> bool {
        self.range.is_some()
    }

    /// The loop selection over data spanning `bounds`, if it is a range.
    pub fn loop_range(&self, bounds: (i64, i64)) -> Option<(i64, i64)> {
        let a = self.loop_a.unwrap_or(bounds.0);
        let b = self.loop_b.unwrap_or(bounds.1);
        (b > a).then_some((a, b))
    }

    /// Loop start and end as shown (defaults: the bounds).
    pub fn loop_points(&self, bounds: (i64, i64)) -> (i64, i64) {
        (
            self.loop_a.unwrap_or(bounds.0),
            self.loop_b.unwrap_or(bounds.1),
        )
    }

    /// Applies a command over data spanning `bounds`.
    pub fn apply(&mut self, cmd: ViewCommand, bounds: (i64, i64)) -> ViewResponse {
        let (lo, hi) = (bounds.0, bounds.1.max(bounds.0 + 1));
        let before = (self.range, self.tail, self.follow);
        let mut resp = ViewResponse::default();
        match cmd {
            ViewCommand::Zoom { factor, at } => {
                if !(factor.is_finite() && factor > 0.0) {
                    return resp;
                }
                let (a, b) = self.visible(bounds);
                let span = (b - a).max(1) as f64;
                let max_span = match self.tail {
                    Some(_) => (hi - lo).max(LIVE_SPAN_MS),
                    None => hi - lo,
                };
                let new_span =
                    ((span / factor).round() as i64).clamp(MIN_SPAN_MS, max_span.max(MIN_SPAN_MS));
                if self.following_live() {
                    // keep following: the right edge stays the newest data
                    self.tail = Some(new_span);
                } else {
                    let f = ((at - a) as f64 / span).clamp(0.0, 1.0);
                    let start = at - (f * new_span as f64).round() as i64;
                    self.set_range((start, start + new_span), (lo, hi));
                }
            }
            ViewCommand::Pan(dt) => {
                if dt != 0 {
                    let (a, b) = self.visible(bounds);
                    self.set_range((a + dt, b + dt), (lo, hi));
                    self.follow = false;
                }
            }
            ViewCommand::Fit => {
                self.range = None;
                if self.tail.is_some() {
                    self.tail = Some((hi - lo).max(MIN_SPAN_MS));
                }
            }
            ViewCommand::SetFollow(on) => self.follow = on,
            ViewCommand::FollowLive => {
                self.range = None;
                if self.tail.is_none() {
                    self.tail = Some(LIVE_SPAN_MS);
                }
            }
            ViewCommand::SetLoopA(t) => {
                let t = t.clamp(lo, hi);
                self.loop_a = Some(t);
                if self.loop_b.is_some_and(|b| b <= t) {
                    self.loop_b = Some(hi);
                }
                resp.loop_changed = self.loop_range(bounds);
            }
            ViewCommand::SetLoopB(t) => {
                let t = t.clamp(lo, hi);
                self.loop_b = Some(t);
                if self.loop_a.is_some_and(|a| a >= t) {
                    self.loop_a = Some(lo);
                }
                resp.loop_changed = self.loop_range(bounds);
            }
        }
        resp.range_changed = (self.range, self.tail) != (before.0, before.1);
        resp.follow_changed = self.follow != before.2;
        resp
    }

    /// Sets a fixed range, kept inside the data (a session view that would
    /// show everything shows everything).
    fn set_range(&mut self, (a, b): (i64, i64), (lo, hi): (i64, i64)) {
        let w = (b - a).max(MIN_SPAN_MS);
        if self.tail.is_none() {
            if w >= hi - lo {
                self.range = None;
                return;
            }
            let a = a.clamp(lo, hi - w);
            self.range = Some((a, a + w));
        } else {
            // live: may look a little past either end, never wholly off the data
            let a = a.clamp(lo - w / 2, hi - w / 2);
            self.range = Some((a, a + w));
        }
    }

    /// While playing: keeps the playhead `pos` in a zoomed view by paging
    /// (the view jumps when the playhead nears its right edge or leaves it).
    pub fn follow_playhead(&mut self, pos: i64, bounds: (i64, i64)) -> ViewResponse {
        let mut resp = ViewResponse::default();
        let Some((a, b)) = self.range.filter(|_| self.follow) else {
            return resp;
        };
        let span = b - a;
        let margin = (span as f64 * FOLLOW_MARGIN) as i64;
        if pos < a || pos > b - margin {
            let before = self.range;
            self.set_range((pos - margin, pos - margin + span), bounds);
            resp.range_changed = self.range != before;
        }
        resp
    }

    /// Forgets the loop points and the zoom (a new session).
    pub fn reset(&mut self) {
        *self = if self.tail.is_some() {
            TimeView::live()
        } else {
            TimeView::session()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: (i64, i64) = (10_000, 70_000);

    #[test]
    fn zoom_keeps_the_instant_under_the_pointer_and_fit_shows_all() {
        let mut v = TimeView::session();
        assert_eq!(v.visible(B), B);
        let r = v.apply(
            ViewCommand::Zoom {
                factor: 4.0,
                at: 25_000,
            },
            B,
        );
        assert!(r.range_changed);
        let (a, b) = v.visible(B);
        assert_eq!(b - a, 15_000);
        // 25 s was a quarter in; it still is
        assert_eq!(a, 25_000 - 3_750);
        // zooming out past everything is everything
        let r = v.apply(
            ViewCommand::Zoom {
                factor: 0.01,
                at: 25_000,
            },
            B,
        );
        assert!(r.range_changed);
        assert!(!v.zoomed());
        // the narrowest view
        let _ = v.apply(
            ViewCommand::Zoom {
                factor: 1e9,
                at: 40_000,
            },
            B,
        );
        let (a, b) = v.visible(B);
        assert_eq!(b - a, MIN_SPAN_MS);
        let r = v.apply(ViewCommand::Fit, B);
        assert!(r.range_changed && r.loop_changed.is_none());
        assert_eq!(v.visible(B), B);
        // a command that changes nothing says so
        let r = v.apply(ViewCommand::Fit, B);
        assert_eq!(r, ViewResponse::default());
    }

    #[test]
    fn pan_stays_inside_the_session_and_stops_following() {
        let mut v = TimeView::session();
        let _ = v.apply(
            ViewCommand::Zoom {
                factor: 6.0,
                at: B.0,
            },
            B,
        );
        assert_eq!(v.visible(B), (10_000, 20_000));
        let r = v.apply(ViewCommand::Pan(5_000), B);
        assert!(r.range_changed && r.follow_changed);
        assert!(!v.follow());
        assert_eq!(v.visible(B), (15_000, 25_000));
        let _ = v.apply(ViewCommand::Pan(-1_000_000), B);
        assert_eq!(v.visible(B), (10_000, 20_000));
        let _ = v.apply(ViewCommand::Pan(1_000_000), B);
        assert_eq!(v.visible(B), (60_000, 70_000));
    }

    #[test]
    fn following_pages_the_view_with_the_playhead() {
        let mut v = TimeView::session();
        let _ = v.apply(
            ViewCommand::Zoom {
                factor: 6.0,
                at: B.0,
            },
            B,
        );
        // inside the view: nothing moves
        assert!(!v.follow_playhead(15_000, B).range_changed);
        // near the right edge: the view jumps to keep it in sight
        let r = v.follow_playhead(19_800, B);
        assert!(r.range_changed);
        let (a, b) = v.visible(B);
        assert!(a < 19_800 && 19_800 < b, "{a}..{b}");
        assert_eq!(b - a, 10_000);
        // a seek outside the view brings the view along
        let _ = v.follow_playhead(50_000, B);
        let (a, b) = v.visible(B);
        assert!(a <= 50_000 && 50_000 < b);
        // not following: the view stays
        let _ = v.apply(ViewCommand::SetFollow(false), B);
        assert!(!v.follow_playhead(10_000, B).range_changed);
    }

    #[test]
    fn live_view_follows_the_newest_until_panned_and_returns() {
        let mut v = TimeView::live();
        let data = (0, 600_000);
        assert!(v.following_live());
        assert_eq!(v.visible(data), (540_000, 600_000));
        // zooming while following keeps following, narrower
        let _ = v.apply(
            ViewCommand::Zoom {
                factor: 2.0,
                at: 590_000,
            },
            data,
        );
        assert!(v.following_live());
        assert_eq!(v.visible(data), (570_000, 600_000));
        // new data arrives: the view moves with it
        assert_eq!(v.visible((0, 700_000)), (670_000, 700_000));
        // panning back to inspect the past stops following; new data does not move it
        let r = v.apply(ViewCommand::Pan(-300_000), (0, 700_000));
        assert!(r.range_changed);
        assert!(!v.following_live());
        assert_eq!(v.visible((0, 800_000)), (370_000, 400_000));
        // and it can zoom there
        let _ = v.apply(
            ViewCommand::Zoom {
                factor: 3.0,
                at: 385_000,
            },
            (0, 800_000),
        );
        assert_eq!(v.visible((0, 800_000)), (380_000, 390_000));
        // following again shows the newest data at the span it followed with
        let _ = v.apply(ViewCommand::FollowLive, (0, 800_000));
        assert!(v.following_live());
        assert_eq!(v.visible((0, 800_000)), (770_000, 800_000));
    }

    #[test]
    fn loop_points_are_a_selection_with_a_response() {
        let mut v = TimeView::session();
        assert_eq!(v.loop_range(B), Some(B));
        let r = v.apply(ViewCommand::SetLoopA(30_000), B);
        assert_eq!(r.loop_changed, Some((30_000, 70_000)));
        assert!(!r.range_changed);
        let r = v.apply(ViewCommand::SetLoopB(20_000), B);
        assert_eq!(
            r.loop_changed,
            Some((10_000, 20_000)),
            "A moves back before B"
        );
        v.reset();
        assert_eq!(v.loop_range(B), Some(B));
    }
}
