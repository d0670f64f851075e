//! A phase's latencies in fixed memory. The run's peak RSS is reported as the
//! store's, so the load generator must not grow with the run: a sample per append
//! kept for a 30 s phase was ~70 MiB (64 producers' vectors, then their merge).

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies from 1 µs to a minute (longer ones count as a minute), at three
/// significant digits: ~64 KiB whatever the count.
pub(super) struct Latencies(Histogram<u32>);

const MAX_MICROS: u64 = 60_000_000;

impl Default for Latencies {
    fn default() -> Self {
        Latencies(
            Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("constant bounds: 1 µs to a minute, three digits"),
        )
    }
}

impl Latencies {
    pub(super) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub(super) fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so nothing can fall outside.
        self.0
            .add(&other.0)
            .expect("histograms of one configuration add");
    }

    pub(super) fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at quantile `q` (0.5, 0.99, ...); zero when nothing was recorded.
    pub(super) fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.0.value_at_quantile(q))
    }
}

impl FromIterator<Duration> for Latencies {
    fn from_iter<I: IntoIterator<Item = Duration>>(latencies: I) -> Self {
        let mut all = Latencies::default();
        for latency in latencies {
            all.record(latency);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_hold_three_digits_and_merging_counts_both() {
        let mut low: Latencies = (1..=990).map(Duration::from_micros).collect();
        let high: Latencies = (0..10).map(|_| Duration::from_millis(250)).collect();
        low.merge(&high);
        assert_eq!(low.count(), 1000);
        let median = low.quantile(0.5).as_micros();
        assert!((499..=501).contains(&median), "median {median} µs");
        let p999 = low.quantile(0.999).as_micros();
        assert!(
            (249_750..=250_250).contains(&p999),
            "p999 {p999} µs within a part in a thousand of 250 ms"
        );
        assert_eq!(Latencies::default().quantile(0.99), Duration::ZERO);
    }

    #[test]
    fn a_latency_past_the_bound_counts_as_the_bound() {
        let mut latencies = Latencies::default();
        latencies.record(Duration::from_secs(3600));
        latencies.record(Duration::ZERO);
        assert_eq!(latencies.count(), 2);
        assert!(latencies.quantile(1.0) >= Duration::from_secs(59));
        assert!(latencies.quantile(0.0) <= Duration::from_micros(1));
    }
}
