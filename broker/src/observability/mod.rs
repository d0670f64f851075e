//! Metrics for operators: the Prometheus recorder, metric descriptions, gauges
//! refreshed from broker state, and the admin HTTP endpoint that serves them.
//!
//! Names follow Prometheus conventions (`strata_` prefix, base units, counters end
//! in `_total`); `docs/observability.md` lists every family.

pub mod allocator;
mod collector;
mod describe;
pub mod errors;
mod http;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub use self::collector::run as run_collector;
pub use self::http::serve as serve_admin;

/// Histogram buckets in seconds: 100 µs to 10 s, about three per decade.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets for histograms of counts (records per WAL group commit): 1 to 16,384 in
/// powers of two. The seconds buckets would put every commit of more than ten
/// records in `+Inf`.
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16384.0,
];

/// Buckets for histograms of sizes (bytes per object-WAL window): 4 KiB to 64 MiB,
/// finer between 1 and 16 MiB, around the 8 MiB default window.
const BYTES_BUCKETS: &[f64] = &[
    4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 2097152.0, 4194304.0, 8388608.0, 16777216.0,
    67108864.0,
];

/// Histograms that are not durations, with their buckets.
const OTHER_BUCKETS: &[(&str, &[f64])] = &[
    ("strata_wal_group_commit_records", COUNT_BUCKETS),
    ("strata_object_wal_window_bytes", BYTES_BUCKETS),
];

/// The recorder's settings: the buckets of every histogram.
fn builder() -> Result<PrometheusBuilder, BuildError> {
    let mut builder = PrometheusBuilder::new().set_buckets(SECONDS_BUCKETS)?;
    for (name, buckets) in OTHER_BUCKETS {
        builder = builder.set_buckets_for_metric(Matcher::Full((*name).to_string()), buckets)?;
    }
    Ok(builder)
}

/// Installs the process-wide Prometheus recorder; `None` if one is already there.
pub fn install_recorder() -> Option<PrometheusHandle> {
    let handle = builder().ok()?.install_recorder().ok()?;
    describe::describe_all();
    Some(handle)
}

/// Counters of rare events (faults, back-pressure, compaction) start at zero with
/// the label sets known at start, so dashboards and alerts see a series, and a rate
/// of 0, before the first event instead of nothing. `strata_object_store_errors_total`
/// is left out: its `error` label is known only once an error happens.
pub fn register_zero_series(backend: &'static str) {
    for name in [
        "strata_stream_backpressure_total",
        "strata_upload_failures_total",
        "strata_upload_rounds_behind_total",
        "strata_object_wal_failures_total",
        "strata_object_wal_hedged_writes_total",
        "strata_object_wal_hedge_wins_total",
        "strata_stream_fenced_total",
        "strata_stream_closed_total",
        "strata_compaction_runs_total",
        "strata_compaction_read_bytes_total",
        "strata_compaction_written_bytes_total",
        "strata_retention_trims_total",
        "strata_retention_deleted_objects_total",
        "strata_orphan_objects_removed_total",
        "strata_read_ahead_blocks_total",
        "strata_block_cache_hits_total",
        "strata_block_cache_misses_total",
        "strata_log_cache_misses_total",
        "strata_meta_txn_conflicts_total",
        "strata_meta_log_syncs_total",
        "strata_meta_log_bytes_total",
        "strata_kafka_rejected_requests_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    for operation in ["read", "write", "stat", "list", "delete"] {
        for name in [
            "strata_object_store_retries_total",
            "strata_object_store_throttled_total",
            "strata_object_store_conditional_conflicts_total",
        ] {
            metrics::counter!(name, "backend" => backend, "operation" => operation).absolute(0);
        }
    }
    metrics::counter!("strata_object_store_connection_errors_total", "backend" => backend)
        .absolute(0);
    for job in ["merge", "compaction"] {
        metrics::counter!("strata_compaction_discarded_objects_total", "job" => job).absolute(0);
    }
    for operation in [
        "get",
        "scan",
        "txn",
        "watch",
        "grant_lease",
        "keep_alive",
        "revoke_lease",
    ] {
        metrics::counter!("strata_meta_errors_total", "operation" => operation).absolute(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders what `record` records through the broker's recorder settings.
    fn rendered(record: impl FnOnce()) -> String {
        let recorder = builder().expect("valid buckets").build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, record);
        handle.render()
    }

    #[test]
    fn counts_and_sizes_have_buckets_of_their_own() {
        let text = rendered(|| {
            metrics::histogram!("strata_wal_group_commit_records").record(40.0);
            metrics::histogram!("strata_object_wal_window_bytes").record(3e6);
            metrics::histogram!("strata_wal_fsync_seconds").record(0.003);
        });
        for line in [
            "strata_wal_group_commit_records_bucket{le=\"32\"} 0",
            "strata_wal_group_commit_records_bucket{le=\"64\"} 1",
            "strata_object_wal_window_bytes_bucket{le=\"2097152\"} 0",
            "strata_object_wal_window_bytes_bucket{le=\"4194304\"} 1",
            "strata_wal_fsync_seconds_bucket{le=\"0.0025\"} 0",
            "strata_wal_fsync_seconds_bucket{le=\"0.005\"} 1",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }
}
