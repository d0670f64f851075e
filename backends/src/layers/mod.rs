//! The layers every operator gets, composed in one place.
//!
//! Inner to outer: metrics (sees every attempt and every HTTP status, so request
//! counts are what the store bills), timeout (per attempt), concurrency limit (a
//! retry's sleep holds no permit), retry (only errors OpenDAL marks temporary:
//! throttling, 5xx, timeouts, connection resets), tracing (one span per call).

mod metrics;
mod retry;

use opendal::Operator;
use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer, TracingLayer};

use crate::config::{StorageKind, Tuning};

pub use self::metrics::names as metric_names;

pub(crate) fn apply(operator: Operator, kind: StorageKind, tuning: &Tuning) -> Operator {
    let retry = &tuning.retry;
    let mut retry_layer = RetryLayer::new()
        .with_max_times(retry.max_retries)
        .with_min_delay(retry.min_delay)
        .with_max_delay(retry.max_delay)
        .with_factor(retry.factor);
    if retry.jitter {
        retry_layer = retry_layer.with_jitter();
    }
    operator
        .layer(opendal_layer_observe_metrics_common::MetricsLayer::new(
            metrics::StrataMetrics::new(kind),
        ))
        .layer(
            TimeoutLayer::new()
                .with_timeout(tuning.timeouts.operation)
                .with_io_timeout(tuning.timeouts.io),
        )
        .layer(ConcurrentLimitLayer::new(
            tuning.max_concurrent_requests.get(),
        ))
        .layer(retry_layer.with_notify(retry::RetryNotifier::new(kind)))
        .layer(TracingLayer::new())
}
