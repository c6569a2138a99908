//! A small fixed-size latency histogram: exact to the microsecond below
//! 2 ms, 100 µs buckets up to 100 ms, and an overflow bucket. Recording is
//! O(1) and allocation-free, so the player can keep it on its hot path.
//!
//! Percentiles in this project (the histogram's, and the benches' over
//! sorted samples with [`percentile`]) follow one definition, the nearest
//! rank: the q-quantile of n samples is the smallest sample with at least
//! ceil(q * n) samples at or below it ([`nearest_rank`]).

/// The 1-based rank of the q-quantile (q in 0..=1) among `n` samples by the
/// nearest-rank definition: ceil(q * n), at least 1 (0 when there are none).
pub fn nearest_rank(q: f64, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n)
}

/// The q-quantile of samples sorted in ascending order, by
/// [`nearest_rank`]; `None` when there are none.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let rank = nearest_rank(q, sorted.len() as u64);
    (rank > 0).then(|| sorted[rank as usize - 1])
}

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
        let rank = nearest_rank(q, self.count);
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
    fn percentiles_of_sorted_samples_use_the_nearest_rank() {
        let samples: Vec<u32> = (1..=200).collect();
        assert_eq!(percentile(&samples, 0.5), Some(100));
        assert_eq!(percentile(&samples, 0.99), Some(198));
        assert_eq!(percentile(&samples, 0.0), Some(1));
        assert_eq!(percentile(&samples, 1.0), Some(200));
        assert_eq!(percentile(&[7], 0.5), Some(7));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
        // the histogram agrees with the samples it was given
        let mut h = LatencyHistogram::default();
        for &us in &samples {
            h.record_us(f64::from(us) - 0.5);
        }
        for q in [0.0, 0.25, 0.5, 0.9, 0.99, 1.0] {
            let exact = f64::from(percentile(&samples, q).unwrap());
            assert_eq!(h.quantile_us(q), exact.min(199.5), "q {q}");
        }
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(LatencyHistogram::default().summary(), Lateness::default());
    }
}
