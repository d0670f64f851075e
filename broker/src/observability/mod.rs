//! Metrics for operators: the Prometheus recorder, metric descriptions, gauges
//! refreshed from broker state, and the admin HTTP endpoint that serves them.
//!
//! Names follow Prometheus conventions (`strata_` prefix, base units, counters end
//! in `_total`); `docs/observability.md` lists every family.

mod collector;
mod describe;
pub mod errors;
mod http;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub use self::collector::run as run_collector;
pub use self::http::serve as serve_admin;

/// Histogram buckets in seconds: 100 µs to 10 s, about three per decade.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder; `None` if one is already there.
pub fn install_recorder() -> Option<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(SECONDS_BUCKETS)
        .ok()?
        .install_recorder()
        .ok()?;
    describe::describe_all();
    Some(handle)
}
