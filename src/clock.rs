//! Injected time. The player and the rate limiter ask a [`Clock`] for the time
//! instead of reading it themselves, so tests run on a [`VirtualClock`] that
//! only moves when the test says so, and production uses [`MonotonicClock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic time source measured from an arbitrary origin.
pub trait Clock: Send + Sync {
    /// Time elapsed since the clock's origin.
    fn now(&self) -> Duration;

    /// Waits until `deadline` (clock time). A virtual clock returns at once
    /// after advancing itself to the deadline if it is behind.
    fn sleep_until(&self, deadline: Duration);
}

/// Wall-clock-independent real time (`Instant`).
#[derive(Debug, Clone)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Below this, [`MonotonicClock::sleep_until`] spins instead of sleeping:
/// the OS may oversleep by a scheduler tick, a spin does not.
const SPIN_WINDOW: Duration = Duration::from_micros(1_500);

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep_until(&self, deadline: Duration) {
        loop {
            let now = self.now();
            if now >= deadline {
                return;
            }
            let left = deadline - now;
            if left > SPIN_WINDOW {
                std::thread::sleep(left - SPIN_WINDOW);
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// A clock that moves only when told to; shared by cloning.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    nanos: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Sets the clock (never backwards).
    pub fn set(&self, to: Duration) {
        self.nanos.fetch_max(to.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn sleep_until(&self, deadline: Duration) {
        self.set(deadline);
    }
}

/// Shared handle to any clock.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_told() {
        let c = VirtualClock::new();
        assert_eq!(c.now(), Duration::ZERO);
        c.advance(Duration::from_millis(5));
        c.sleep_until(Duration::from_millis(3));
        assert_eq!(c.now(), Duration::from_millis(5));
        c.sleep_until(Duration::from_millis(9));
        assert_eq!(c.now(), Duration::from_millis(9));
    }

    #[test]
    fn monotonic_sleep_reaches_deadline() {
        let c = MonotonicClock::new();
        let d = c.now() + Duration::from_millis(3);
        c.sleep_until(d);
        assert!(c.now() >= d);
    }
}
