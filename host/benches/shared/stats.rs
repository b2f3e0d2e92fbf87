//! Latency samples and their percentiles. Shared by the bench binaries.

use std::time::Duration;

/// Latency samples, sorted.
pub(crate) struct Stats {
    pub(crate) samples: Vec<Duration>,
}

impl Stats {
    pub(crate) fn new(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        Stats { samples }
    }

    /// The `p` quantile (0.5: the median), nearest rank.
    pub(crate) fn pct(&self, p: f64) -> Duration {
        let i = ((self.samples.len() as f64 - 1.0) * p).round() as usize;
        self.samples[i]
    }
}
