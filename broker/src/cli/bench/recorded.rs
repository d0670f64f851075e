//! What the store recorded through `metrics` during one stretch of a run.
//!
//! The benchmark's own recorder keeps counters as atomics and durations in HDR
//! histograms, so it holds fixed memory whatever the run's length: the run's peak
//! RSS is reported as the store's, and a recorder that kept every sample (one per
//! append and per object-store call) grew by ~20 MB over a 30 s phase.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

use super::latencies::Latencies;

/// Installs the benchmark's recorder as the process's; `None` if one already is.
pub(in crate::cli) fn install_recorder() -> Option<BenchMetrics> {
    let metrics = BenchMetrics::default();
    metrics::set_global_recorder(metrics.clone()).ok()?;
    Some(metrics)
}

/// Counters and duration histograms by key, shared by the recorder and the bench.
#[derive(Clone, Default)]
pub(in crate::cli) struct BenchMetrics {
    counters: Arc<Mutex<HashMap<Key, Arc<AtomicU64>>>>,
    durations: Arc<Mutex<HashMap<Key, Arc<Durations>>>>,
    /// Histograms that are not durations, by their own key: each counts into the
    /// counter `<name>_count`.
    samples: Arc<Mutex<HashMap<Key, Arc<Samples>>>>,
}

/// A histogram of durations recorded in seconds, as every `_seconds` metric is.
#[derive(Default)]
struct Durations(Mutex<Latencies>);

impl HistogramFn for Durations {
    fn record(&self, seconds: f64) {
        let duration = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(duration);
    }
}

/// The bench prints durations only; other histograms (sizes, counts) are dropped.
/// Counts the samples of a histogram whose values the bench does not keep.
struct Samples(Arc<AtomicU64>);

impl HistogramFn for Samples {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn is_duration(key: &Key) -> bool {
    key.name().ends_with("_seconds")
}

impl Recorder for BenchMetrics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        Counter::from_arc(counters.entry(key.clone()).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if !is_duration(key) {
            // Sizes and counts (object WAL windows, group commits): only how many
            // samples, as the counter `<name>_count`, as Prometheus names it. Looked
            // up by the histogram's own key: `histogram!` registers at every record
            // (a group commit's), and the counter's key is built only the first time.
            let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            let counted = samples.entry(key.clone()).or_insert_with(|| {
                let count = Key::from_parts(
                    format!("{}_count", key.name()),
                    key.labels().cloned().collect::<Vec<_>>(),
                );
                let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
                Arc::new(Samples(counters.entry(count).or_default().clone()))
            });
            return Histogram::from_arc(counted.clone());
        }
        let mut durations = self
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Histogram::from_arc(durations.entry(key.clone()).or_default().clone())
    }
}

/// The metrics recorded since the previous `Recorded::since_last`, which drains
/// counters and histograms alike.
#[derive(Default)]
pub(super) struct Recorded {
    counters: Vec<(Key, u64)>,
    durations: Vec<(Key, Latencies)>,
}

impl Recorded {
    pub(super) fn since_last(metrics: &BenchMetrics) -> Recorded {
        let counters = metrics
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, count)| (key.clone(), count.swap(0, Ordering::Relaxed)))
            .collect();
        let durations = metrics
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, durations)| {
                let mut recorded = durations.0.lock().unwrap_or_else(PoisonError::into_inner);
                (key.clone(), std::mem::take(&mut *recorded))
            })
            .collect();
        Recorded {
            counters,
            durations,
        }
    }

    /// Adds what `later` recorded: one figure for the store's turns of a phase.
    pub(super) fn absorb(&mut self, later: Recorded) {
        for (key, count) in later.counters {
            match self.counters.iter_mut().find(|(k, _)| *k == key) {
                Some((_, total)) => *total += count,
                None => self.counters.push((key, count)),
            }
        }
        for (key, durations) in later.durations {
            match self.durations.iter_mut().find(|(k, _)| *k == key) {
                Some((_, all)) => all.merge(&durations),
                None => self.durations.push((key, durations)),
            }
        }
    }

    /// Counter `name`, all labels summed.
    pub(super) fn counter(&self, name: &str) -> u64 {
        self.counters(name, |_| true)
    }

    /// Object-store operations of kind `operation` (`write`, `read`, ...).
    pub(super) fn operations(&self, operation: &str) -> u64 {
        self.counters(strata_backends::metric_names::OPERATIONS, |key| {
            has_label(key, "operation", operation)
        })
    }

    /// Every duration histogram `name` recorded, all labels together.
    pub(super) fn durations(&self, name: &str) -> Latencies {
        self.durations_where(name, |_| true)
    }

    /// Durations of object-store operations of kind `operation`.
    pub(super) fn operation_durations(&self, operation: &str) -> Latencies {
        self.durations_where(strata_backends::metric_names::OPERATION_DURATION, |key| {
            has_label(key, "operation", operation)
        })
    }

    /// Durations of metadata-store operations of kind `operation`.
    pub(super) fn meta_durations(&self, operation: &str) -> Latencies {
        self.durations_where("strata_meta_operation_duration_seconds", |key| {
            has_label(key, "operation", operation)
        })
    }

    fn durations_where(&self, name: &str, matches: impl Fn(&Key) -> bool) -> Latencies {
        let mut all = Latencies::default();
        for (_, durations) in self
            .durations
            .iter()
            .filter(|(key, _)| key.name() == name && matches(key))
        {
            all.merge(durations);
        }
        all
    }

    fn counters(&self, name: &str, matches: impl Fn(&Key) -> bool) -> u64 {
        self.counters
            .iter()
            .filter(|(key, _)| key.name() == name && matches(key))
            .map(|(_, count)| count)
            .sum()
    }
}

fn has_label(key: &Key, name: &str, value: &str) -> bool {
    key.labels().any(|l| l.key() == name && l.value() == value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registers the counter `strata_x_total` and the object store's write
    /// durations with `metrics`.
    fn counter_and_writes(metrics: &BenchMetrics) -> (Metadata<'static>, Counter, Histogram) {
        let meta = Metadata::new("bench", metrics::Level::INFO, None);
        let write = Key::from_parts(
            strata_backends::metric_names::OPERATION_DURATION,
            vec![metrics::Label::new("operation", "write")],
        );
        let counter = metrics.register_counter(&Key::from_name("strata_x_total"), &meta);
        let durations = metrics.register_histogram(&write, &meta);
        (meta, counter, durations)
    }

    #[test]
    fn a_snapshot_drains_what_was_recorded_before_it() {
        let metrics = BenchMetrics::default();
        let (meta, counter, durations) = counter_and_writes(&metrics);
        let sizes = metrics.register_histogram(&Key::from_name("strata_x_bytes"), &meta);
        counter.increment(3);
        durations.record(0.002);
        durations.record(0.250);
        sizes.record(1e9);

        let first = Recorded::since_last(&metrics);
        assert_eq!(first.counter("strata_x_total"), 3);
        let writes = first.operation_durations("write");
        assert_eq!(writes.count(), 2);
        assert!(writes.quantile(1.0) >= Duration::from_millis(249));
        assert_eq!(first.operation_durations("read").count(), 0);
        // A size is not a duration: only its samples are counted.
        assert_eq!(first.durations("strata_x_bytes").count(), 0);
        assert_eq!(first.counter("strata_x_bytes_count"), 1);

        counter.increment(1);
        let second = Recorded::since_last(&metrics);
        assert_eq!(second.counter("strata_x_total"), 1);
        assert_eq!(second.operation_durations("write").count(), 0);
    }

    #[test]
    fn absorbing_a_later_snapshot_adds_counters_and_durations_by_key() {
        let metrics = BenchMetrics::default();
        let (meta, counter, durations) = counter_and_writes(&metrics);
        counter.increment(2);
        durations.record(0.001);
        let mut turns = Recorded::default();
        turns.absorb(Recorded::since_last(&metrics));

        counter.increment(5);
        // Recorded between the turns (the raw write's): drained, not absorbed.
        durations.record(0.5);
        Recorded::since_last(&metrics);
        durations.record(0.003);
        let other = metrics.register_counter(&Key::from_name("strata_y_total"), &meta);
        other.increment(7);
        turns.absorb(Recorded::since_last(&metrics));

        assert_eq!(turns.counter("strata_x_total"), 2);
        assert_eq!(turns.counter("strata_y_total"), 7);
        let writes = turns.operation_durations("write");
        assert_eq!(writes.count(), 2);
        assert!(writes.quantile(1.0) < Duration::from_millis(10));
    }
}
