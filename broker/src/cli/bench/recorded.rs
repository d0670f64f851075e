//! What the store recorded through `metrics` during one stretch of a run.

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

pub(in crate::cli) fn install_recorder() -> Option<Snapshotter> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).ok()?;
    Some(snapshotter)
}

/// The metrics recorded since the previous `Recorded::since_last`: a snapshot of the
/// debugging recorder drains counters and histograms alike.
pub(super) struct Recorded(Vec<(CompositeKey, DebugValue)>);

impl Recorded {
    pub(super) fn since_last(snapshotter: &Snapshotter) -> Recorded {
        Recorded(
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .map(|(key, _, _, value)| (key, value))
                .collect(),
        )
    }

    /// Counter `name`, all labels summed.
    pub(super) fn counter(&self, name: &str) -> u64 {
        self.counters(name, |_| true)
    }

    /// Object-store operations of kind `operation` (`write`, `read`, ...).
    pub(super) fn operations(&self, operation: &str) -> u64 {
        self.counters(strata_backends::metric_names::OPERATIONS, |key| {
            key.key()
                .labels()
                .any(|l| l.key() == "operation" && l.value() == operation)
        })
    }

    /// Every value histogram `name` recorded, sorted.
    pub(super) fn histogram(&self, name: &str) -> Vec<f64> {
        self.histogram_where(name, |_| true)
    }

    /// Durations (seconds, sorted) of object-store operations of kind `operation`.
    pub(super) fn operation_durations(&self, operation: &str) -> Vec<f64> {
        self.histogram_where(strata_backends::metric_names::OPERATION_DURATION, |key| {
            key.key()
                .labels()
                .any(|l| l.key() == "operation" && l.value() == operation)
        })
    }

    /// Durations (seconds, sorted) of metadata-store operations of kind `operation`.
    pub(super) fn meta_durations(&self, operation: &str) -> Vec<f64> {
        self.histogram_where("strata_meta_operation_duration_seconds", |key| {
            key.key()
                .labels()
                .any(|l| l.key() == "operation" && l.value() == operation)
        })
    }

    fn histogram_where(&self, name: &str, matches: impl Fn(&CompositeKey) -> bool) -> Vec<f64> {
        let mut values: Vec<f64> = self
            .0
            .iter()
            .filter(|(key, _)| {
                key.kind() == MetricKind::Histogram && key.key().name() == name && matches(key)
            })
            .flat_map(|(_, value)| match value {
                DebugValue::Histogram(values) => values.iter().map(|v| v.into_inner()).collect(),
                _ => Vec::new(),
            })
            .collect();
        values.sort_by(f64::total_cmp);
        values
    }

    fn counters(&self, name: &str, matches: impl Fn(&CompositeKey) -> bool) -> u64 {
        self.0
            .iter()
            .filter(|(key, _)| key.key().name() == name && matches(key))
            .map(|(_, value)| match value {
                DebugValue::Counter(n) => *n,
                _ => 0,
            })
            .sum()
    }
}

/// The value at quantile `q` of sorted `values` (nearest rank); 0 when empty.
pub(super) fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
