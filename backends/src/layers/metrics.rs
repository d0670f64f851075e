//! Object-store metrics under Strata's names, labelled by backend kind and operation.

use opendal::ErrorKind;
use opendal_layer_observe_metrics_common::{MetricLabels, MetricValue, MetricsIntercept};

use crate::config::StorageKind;

/// Metric names this layer records (see `docs/observability.md`).
pub mod names {
    /// Completed operations (each attempt of a retried one counts).
    pub const OPERATIONS: &str = "strata_object_store_operations_total";
    /// Latency of each operation attempt.
    pub const OPERATION_DURATION: &str = "strata_object_store_operation_duration_seconds";
    /// Payload bytes read or written.
    pub const BYTES: &str = "strata_object_store_bytes_total";
    /// Failed operations, by OpenDAL error kind.
    pub const ERRORS: &str = "strata_object_store_errors_total";
    /// HTTP responses 429 or 503: the store asked us to slow down.
    pub const THROTTLED: &str = "strata_object_store_throttled_total";
    /// Conditional writes refused because the condition did not hold.
    pub const CONDITIONAL_CONFLICTS: &str = "strata_object_store_conditional_conflicts_total";
    /// Requests that got no HTTP response (refused, reset, timed out, TLS).
    pub const CONNECTION_ERRORS: &str = "strata_object_store_connection_errors_total";
    /// Retries scheduled by the retry layer.
    pub const RETRIES: &str = "strata_object_store_retries_total";
}

#[derive(Debug, Clone)]
pub(crate) struct StrataMetrics {
    backend: &'static str,
}

impl StrataMetrics {
    pub(crate) fn new(kind: StorageKind) -> Self {
        StrataMetrics {
            backend: kind.as_str(),
        }
    }
}

impl MetricsIntercept for StrataMetrics {
    fn observe(&self, labels: MetricLabels, value: MetricValue) {
        let backend = self.backend;
        let operation = labels.operation;
        match value {
            MetricValue::OperationDurationSeconds(elapsed) => {
                metrics::counter!(names::OPERATIONS, "backend" => backend, "operation" => operation)
                    .increment(1);
                metrics::histogram!(names::OPERATION_DURATION, "backend" => backend, "operation" => operation)
                    .record(elapsed.as_secs_f64());
            }
            MetricValue::OperationBytes(bytes) => {
                metrics::counter!(names::BYTES, "backend" => backend, "operation" => operation)
                    .increment(bytes);
            }
            MetricValue::OperationErrorsTotal => {
                let error = labels.error.map_or("unknown", ErrorKind::into_static);
                metrics::counter!(names::ERRORS, "backend" => backend, "operation" => operation, "error" => error)
                    .increment(1);
                if labels.error == Some(ErrorKind::ConditionNotMatch) {
                    metrics::counter!(names::CONDITIONAL_CONFLICTS, "backend" => backend, "operation" => operation)
                        .increment(1);
                }
            }
            MetricValue::HttpStatusErrorsTotal => {
                let throttled = labels
                    .status_code
                    .is_some_and(|s| s.as_u16() == 429 || s.as_u16() == 503);
                if throttled {
                    metrics::counter!(names::THROTTLED, "backend" => backend, "operation" => operation)
                        .increment(1);
                }
            }
            MetricValue::HttpConnectionErrorsTotal => {
                metrics::counter!(names::CONNECTION_ERRORS, "backend" => backend).increment(1);
            }
            _ => {}
        }
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::names;
    use crate::{Storage, StorageConfig};

    /// (metric name, labels, value) of each recorded series.
    type Series = (String, Vec<(String, String)>, DebugValue);

    /// Counter or histogram-sample count for `name` with all of `labels`.
    fn observed(snapshot: &[Series], name: &str, labels: &[(&str, &str)]) -> u64 {
        snapshot
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, value)| match value {
                DebugValue::Counter(c) => *c,
                DebugValue::Histogram(samples) => samples.len() as u64,
                DebugValue::Gauge(_) => 0,
            })
            .sum()
    }

    #[test]
    fn operations_bytes_latency_and_errors_are_recorded_by_backend_and_operation() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let config =
                    StorageConfig::from_document("[storage]\nkind = \"memory\"\n").expect("config");
                let storage = Storage::open(&config).expect("open");
                let op = storage.operator();
                op.write("a", vec![7u8; 1000]).await.expect("write");
                op.read("a").await.expect("read");
                assert!(op.read("missing").await.is_err());
            });
        });
        let snapshot: Vec<Series> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (name, labels) = key.key().clone().into_parts();
                let labels = labels
                    .into_iter()
                    .map(|l| (l.key().to_string(), l.value().to_string()))
                    .collect();
                (name.as_str().to_string(), labels, value)
            })
            .collect();
        let memory_write = [("backend", "memory"), ("operation", "write")];
        assert!(
            observed(&snapshot, names::OPERATIONS, &memory_write) >= 1,
            "{snapshot:?}"
        );
        assert!(observed(&snapshot, names::OPERATION_DURATION, &memory_write) >= 1);
        assert_eq!(observed(&snapshot, names::BYTES, &memory_write), 1000);
        let not_found = [
            ("backend", "memory"),
            ("operation", "read"),
            ("error", "NotFound"),
        ];
        assert_eq!(
            observed(&snapshot, names::ERRORS, &not_found),
            1,
            "{snapshot:?}"
        );
    }
}
