//! A small fixed-size latency histogram: exact to the microsecond below
//! 2 ms, 100 µs buckets up to 100 ms, and an overflow bucket. Recording is
//! O(1) and allocation-free, so the player can keep it on its hot path.

/// Summary of dispatch lateness so far, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Lateness {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Worst seen.
    pub max_us: f64,
    /// Samples recorded.
    pub count: u64,
}

const FINE_US: usize = 2_000;
const COARSE_STEP_US: usize = 100;
const COARSE_END_US: usize = 100_000;
const COARSE: usize = (COARSE_END_US - FINE_US) / COARSE_STEP_US;

/// Histogram of latencies.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    buckets: Box<[u64]>,
    count: u64,
    max_us: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: vec![0; FINE_US + COARSE + 1].into_boxed_slice(),
            count: 0,
            max_us: 0.0,
        }
    }
}

impl LatencyHistogram {
    /// Records one sample (negative values count as zero).
    pub fn record_us(&mut self, us: f64) {
        let us = us.max(0.0);
        let whole = us as usize;
        let i = if whole < FINE_US {
            whole
        } else if whole < COARSE_END_US {
            FINE_US + (whole - FINE_US) / COARSE_STEP_US
        } else {
            FINE_US + COARSE
        };
        self.buckets[i] += 1;
        self.count += 1;
        if us > self.max_us {
            self.max_us = us;
        }
    }

    /// The value below which a fraction `q` (0..=1) of samples lie, as the
    /// upper edge of its bucket (the max for the overflow bucket).
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let edge = if i < FINE_US {
                    (i + 1) as f64
                } else if i < FINE_US + COARSE {
                    (FINE_US + (i - FINE_US + 1) * COARSE_STEP_US) as f64
                } else {
                    self.max_us
                };
                return edge.min(self.max_us);
            }
        }
        self.max_us
    }

    /// p50, p99 and max.
    pub fn summary(&self) -> Lateness {
        Lateness {
            p50_us: self.quantile_us(0.5),
            p99_us: self.quantile_us(0.99),
            max_us: self.max_us,
            count: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_the_samples() {
        let mut h = LatencyHistogram::default();
        for us in 0..1000 {
            h.record_us(us as f64 + 0.5);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50_us, 500.0);
        assert_eq!(s.p99_us, 990.0);
        assert_eq!(s.max_us, 999.5);
        h.record_us(50_000.0);
        h.record_us(1e9);
        assert_eq!(h.summary().max_us, 1e9);
        assert_eq!(h.quantile_us(1.0), 1e9);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(LatencyHistogram::default().summary(), Lateness::default());
    }
}
