//! Producer-side rate limits of docs/formats.md section 2, per topic and key, on an
//! injected [`Clock`](crate::clock::Clock).
//!
//! | topic          | limit (per key)            | exempt actors        |
//! |----------------|----------------------------|----------------------|
//! | `noise.params` | 60 Hz per `path`           | `replay`, `preset`   |
//! | `noise.mod`    | 30 Hz per bus (`bus.N`)    | `replay`, `preset`   |
//! | `noise.audio`  | 30 Hz per source           | `replay`, `preset`   |
//! | `noise.events` | none (events are immediate) |                     |
//! | `noise.state`  | none (sparse, compacted)   |                      |
//!
//! The limit is a GCRA (virtual scheduling) with a burst of two: over any
//! window of `w` seconds at most `rate * w + 2` messages pass, and a source
//! that ticks at exactly the limit with some jitter (a 60 fps UI) is never
//! cut. A hard minimum interval would drop about half of a jittery 60 fps
//! stream.

use std::time::Duration;

use hashbrown::HashMap;

use crate::clock::SharedClock;
use crate::envelope::{ActorKind, Topic};

/// Limits per topic, in messages per second per key; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// `noise.params`, per path (docs/formats.md: 60 Hz).
    pub params_hz: Option<f64>,
    /// `noise.mod`, per bus (docs/formats.md: 30 Hz).
    pub mod_hz: Option<f64>,
    /// `noise.audio`, per source (docs/formats.md: 30 Hz).
    pub audio_hz: Option<f64>,
    /// How many messages may pass back to back (at least 1).
    pub burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            params_hz: Some(60.0),
            mod_hz: Some(30.0),
            audio_hz: Some(30.0),
            burst: 2,
        }
    }
}

impl RateLimits {
    /// No limits at all (benchmarks, bulk loads).
    pub fn unlimited() -> RateLimits {
        RateLimits {
            params_hz: None,
            mod_hz: None,
            audio_hz: None,
            burst: 1,
        }
    }

    fn hz(&self, topic: Topic) -> Option<f64> {
        match topic {
            Topic::Params => self.params_hz,
            Topic::Mod => self.mod_hz,
            Topic::Audio => self.audio_hz,
            Topic::Events | Topic::State => None,
        }
    }
}

/// Whether a message may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Send it.
    Allow,
    /// Drop it; this key accepts again after `retry_after`.
    Drop {
        /// Time until the key's next slot.
        retry_after: Duration,
    },
}

/// Entries are pruned (expired slots forgotten) when a topic's table grows past this.
const PRUNE_AT: usize = 4096;

/// Per-topic, per-key GCRA state.
pub struct RateLimiter {
    limits: RateLimits,
    clock: SharedClock,
    /// Per topic (indexed like [`Topic::ALL`]): key → theoretical arrival time.
    tat: [HashMap<String, Duration>; 5],
}

fn topic_index(topic: Topic) -> usize {
    match topic {
        Topic::Params => 0,
        Topic::Mod => 1,
        Topic::Audio => 2,
        Topic::Events => 3,
        Topic::State => 4,
    }
}

/// Actors that are never limited: replay must reproduce what was recorded,
/// and a preset load sets many paths at once by design.
fn is_exempt(actor: ActorKind) -> bool {
    matches!(actor, ActorKind::Replay | ActorKind::Preset)
}

impl RateLimiter {
    /// A limiter reading time from `clock`.
    pub fn new(limits: RateLimits, clock: SharedClock) -> RateLimiter {
        RateLimiter {
            limits,
            clock,
            tat: Default::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Decides for one message and, when it is allowed, books its slot.
    pub fn check(&mut self, topic: Topic, key: &str, actor: ActorKind) -> RateDecision {
        let Some(hz) = self.limits.hz(topic) else {
            return RateDecision::Allow;
        };
        if is_exempt(actor) || !(hz > 0.0 && hz.is_finite()) {
            return RateDecision::Allow;
        }
        let interval = Duration::from_secs_f64(1.0 / hz);
        let tolerance = interval * self.limits.burst.saturating_sub(1);
        let now = self.clock.now();
        let table = &mut self.tat[topic_index(topic)];
        match table.get_mut(key) {
            Some(tat) => {
                if *tat <= now + tolerance {
                    *tat = (*tat).max(now) + interval;
                    RateDecision::Allow
                } else {
                    RateDecision::Drop {
                        retry_after: *tat - tolerance - now,
                    }
                }
            }
            None => {
                if table.len() >= PRUNE_AT {
                    table.retain(|_, tat| *tat > now);
                }
                table.insert(key.to_owned(), now + interval);
                RateDecision::Allow
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, VirtualClock};
    use std::sync::Arc;

    fn limiter(clock: &VirtualClock) -> RateLimiter {
        RateLimiter::new(RateLimits::default(), Arc::new(clock.clone()))
    }

    /// Offers one message every `step` for `total`, returns how many passed.
    fn offer(l: &mut RateLimiter, clock: &VirtualClock, step: Duration, total: Duration) -> usize {
        let mut passed = 0;
        let end = clock.now() + total;
        while clock.now() < end {
            if l.check(Topic::Params, "gen.1.cutoff", ActorKind::User) == RateDecision::Allow {
                passed += 1;
            }
            clock.advance(step);
        }
        passed
    }

    #[test]
    fn params_are_held_to_60_hz_per_path() {
        let clock = VirtualClock::new();
        let mut l = limiter(&clock);
        // 1 kHz for 10 s: 600 slots plus the burst of 2
        let passed = offer(
            &mut l,
            &clock,
            Duration::from_millis(1),
            Duration::from_secs(10),
        );
        assert!((600..=602).contains(&passed), "{passed}");
    }

    #[test]
    fn a_jittery_60_fps_source_is_never_cut() {
        let clock = VirtualClock::new();
        let mut l = limiter(&clock);
        let mut dropped = 0;
        for i in 0..600u64 {
            // frames at 16.667 ms ± 3 ms
            let jitter = [0i64, 3, -3, 2, -2, 1][(i % 6) as usize];
            let t = (i as i64 * 16_667 + jitter * 1000).max(0) as u64;
            clock.set(Duration::from_micros(t));
            if l.check(Topic::Params, "p", ActorKind::User) != RateDecision::Allow {
                dropped += 1;
            }
        }
        assert_eq!(dropped, 0);
    }

    #[test]
    fn drop_reports_when_the_key_opens_again() {
        let clock = VirtualClock::new();
        let mut l = limiter(&clock);
        let hz30 = Duration::from_secs_f64(1.0 / 30.0);
        assert_eq!(
            l.check(Topic::Mod, "bus.1", ActorKind::Mod),
            RateDecision::Allow
        );
        assert_eq!(
            l.check(Topic::Mod, "bus.1", ActorKind::Mod),
            RateDecision::Allow
        );
        let RateDecision::Drop { retry_after } = l.check(Topic::Mod, "bus.1", ActorKind::Mod)
        else {
            panic!("third message within the burst must drop");
        };
        assert_eq!(retry_after, hz30);
        clock.advance(retry_after - Duration::from_micros(1));
        assert!(matches!(
            l.check(Topic::Mod, "bus.1", ActorKind::Mod),
            RateDecision::Drop { .. }
        ));
        clock.advance(Duration::from_micros(1));
        assert_eq!(
            l.check(Topic::Mod, "bus.1", ActorKind::Mod),
            RateDecision::Allow
        );
    }

    #[test]
    fn keys_topics_and_actors_are_independent() {
        let clock = VirtualClock::new();
        let mut l = limiter(&clock);
        for _ in 0..2 {
            assert_eq!(
                l.check(Topic::Params, "a", ActorKind::User),
                RateDecision::Allow
            );
        }
        assert_ne!(
            l.check(Topic::Params, "a", ActorKind::User),
            RateDecision::Allow
        );
        // another path, another topic with the same key: own budgets
        assert_eq!(
            l.check(Topic::Params, "b", ActorKind::User),
            RateDecision::Allow
        );
        assert_eq!(
            l.check(Topic::Audio, "a", ActorKind::Telemetry),
            RateDecision::Allow
        );
        // replay and preset are never limited, events and state never
        for _ in 0..100 {
            assert_eq!(
                l.check(Topic::Params, "a", ActorKind::Replay),
                RateDecision::Allow
            );
            assert_eq!(
                l.check(Topic::Params, "a", ActorKind::Preset),
                RateDecision::Allow
            );
            assert_eq!(
                l.check(Topic::Events, "note_on", ActorKind::Midi),
                RateDecision::Allow
            );
            assert_eq!(
                l.check(Topic::State, "preset", ActorKind::User),
                RateDecision::Allow
            );
        }
        // midi and mod actors on params are limited like user
        assert_ne!(
            l.check(Topic::Params, "a", ActorKind::Midi),
            RateDecision::Allow
        );
    }

    #[test]
    fn audio_and_mod_run_at_30_hz() {
        let clock = VirtualClock::new();
        let mut l = limiter(&clock);
        let mut passed = 0;
        for _ in 0..10_000 {
            if l.check(Topic::Audio, "master", ActorKind::Telemetry) == RateDecision::Allow {
                passed += 1;
            }
            clock.advance(Duration::from_millis(1));
        }
        assert!((300..=302).contains(&passed), "{passed}");
    }

    #[test]
    fn unlimited_passes_everything_and_tables_stay_bounded() {
        let clock = VirtualClock::new();
        let mut l = RateLimiter::new(RateLimits::unlimited(), Arc::new(clock.clone()));
        for _ in 0..1000 {
            assert_eq!(
                l.check(Topic::Params, "a", ActorKind::User),
                RateDecision::Allow
            );
        }
        let mut l = limiter(&clock);
        for i in 0..3 * PRUNE_AT {
            l.check(Topic::Params, &format!("p{i}"), ActorKind::User);
            clock.advance(Duration::from_millis(20));
        }
        assert!(l.tat[0].len() <= PRUNE_AT);
    }
}
