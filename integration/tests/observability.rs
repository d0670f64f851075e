//! A real Prometheus (Debian's `prometheus`, started through `deploy/testbed/`)
//! scrapes two running brokers, one with the local WAL and one with the object WAL,
//! under load from a real Kafka client; then every panel query of every dashboard
//! and every alert rule is run through Prometheus's HTTP API and must be valid and
//! return series, and each broker's `/metrics` must show every family its load
//! exercises with a live value.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_integration::broker::{BrokerProcess, BrokerStorage};
use strata_integration::clients::Clients;
use strata_integration::dashboards;
use strata_integration::start_or_fail;
use strata_integration::testbed::Testbed;

fn curl(args: &[&str]) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "curl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs an instant query; `Ok(series count)` or why Prometheus refused it.
fn query(prometheus: &str, expr: &str) -> Result<usize, String> {
    let body = curl(&[
        "-G",
        &format!("{prometheus}/api/v1/query"),
        "--data-urlencode",
        &format!("query={expr}"),
    ])?;
    let json: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if json["status"] != "success" {
        return Err(format!("{}: {}", json["errorType"], json["error"]));
    }
    Ok(json["data"]["result"].as_array().map_or(0, Vec::len))
}

fn fail(message: String) -> ! {
    eprintln!("FAIL: {message}");
    eprintln!("test result: FAILED. 0 passed; 1 failed");
    std::process::exit(101);
}

fn main() {
    let testbed = start_or_fail("kafka-clients");
    let clients = Clients::from_testbed(&testbed);
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e.to_string()));
    // A small log cache sends fetches of older data to objects, so the block cache,
    // read-ahead and ranged reads have something to show.
    let mut broker = BrokerProcess::start_with(
        BrokerStorage::EmbeddedDefault,
        dir.path(),
        &[
            ("STRATA_CACHE_LOG_BYTES", "1048576"),
            ("STRATA_WAL_UPLOAD_BYTES", "1048576"),
            ("STRATA_WAL_UPLOAD_INTERVAL", "1s"),
        ],
    )
    .unwrap_or_else(|e| fail(e));
    // The object WAL's panels need a broker that runs it.
    let object_wal_dir = tempfile::tempdir().unwrap_or_else(|e| fail(e.to_string()));
    let mut object_wal_broker = BrokerProcess::start_with(
        BrokerStorage::EmbeddedDefault,
        object_wal_dir.path(),
        &[("STRATA_WAL_KIND", "object")],
    )
    .unwrap_or_else(|e| fail(e));
    let targets = format!("{},{}", broker.admin(), object_wal_broker.admin());
    let prometheus = Testbed::start_with("prometheus", &[("PROMETHEUS_TARGET", &targets)])
        .unwrap_or_else(|e| fail(e));
    let url = prometheus.setting("PROMETHEUS_URL");
    let bootstrap = broker.bootstrap();
    eprintln!(
        "=== observability: broker {bootstrap} (local WAL), {} (object WAL), metrics {targets}, Prometheus {url}",
        object_wal_broker.bootstrap()
    );

    // Load: produce and consume in a group with a real client, leave a group lagging,
    // and send bad input so refusal counters exist.
    let acked = dir.path().join("acked.txt").to_string_lossy().into_owned();
    let load = [
        vec!["produce-load", "traffic", "20000", acked.as_str()],
        vec!["commit-offsets", "traffic", "laggard"],
        vec!["produce-load", "traffic", "5000", acked.as_str()],
        vec!["codecs"],
        vec!["group"],
    ];
    for args in &load {
        if let Err(e) = clients.librdkafka(&bootstrap, args) {
            fail(e);
        }
    }
    let object_wal_acked = dir.path().join("object-wal-acked.txt");
    let object_wal_acked = object_wal_acked.to_string_lossy();
    if let Err(e) = clients.librdkafka(
        &object_wal_broker.bootstrap(),
        &["produce-load", "traffic", "5000", &object_wal_acked],
    ) {
        fail(e);
    }
    let steady = clients
        .spawn_librdkafka(&bootstrap, &["keep-producing", "steady", "20"])
        .unwrap_or_else(|e| fail(e));
    let object_wal_steady = clients
        .spawn_librdkafka(
            &object_wal_broker.bootstrap(),
            &["keep-producing", "steady", "20"],
        )
        .unwrap_or_else(|e| fail(e));
    // Wait for several scrapes of both brokers and collector refreshes under the
    // steady load.
    let deadline = Instant::now() + Duration::from_secs(90);
    while query(&url, "up{job=\"strata\"} == 1").unwrap_or(0) < 2 {
        if Instant::now() > deadline {
            fail(format!(
                "Prometheus did not scrape both brokers; local-WAL broker log:\n{}\nobject-WAL broker log:\n{}",
                broker.log_tail(),
                object_wal_broker.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(15));

    let mut failures = Vec::new();
    let mut checked = 0;
    let panels = dashboards::panel_queries().unwrap_or_else(|e| fail(e));
    for panel in &panels {
        let expr = dashboards::as_prometheus_query(&panel.expr, "30s");
        checked += 1;
        match query(&url, &expr) {
            Ok(0) => failures.push(format!(
                "{} / {}: no series for {expr}",
                panel.dashboard, panel.panel
            )),
            Ok(_) => {}
            Err(e) => failures.push(format!(
                "{} / {}: {e} in {expr}",
                panel.dashboard, panel.panel
            )),
        }
    }
    let rules = dashboards::alert_rules().unwrap_or_else(|e| fail(e));
    for (name, expr) in &rules {
        checked += 2;
        if let Err(e) = query(&url, expr) {
            failures.push(format!("alert {name}: {e} in {expr}"));
        }
        let signal = dashboards::alert_signal(expr);
        match query(&url, &signal) {
            Ok(0) => failures.push(format!("alert {name}: no series for its signal {signal}")),
            Ok(_) => {}
            Err(e) => failures.push(format!("alert {name}: {e} in {signal}")),
        }
    }
    for (what, admin, families) in [
        ("local-WAL broker", broker.admin(), LIVE_UNDER_LOAD),
        (
            "object-WAL broker",
            object_wal_broker.admin(),
            LIVE_UNDER_OBJECT_WAL,
        ),
    ] {
        let text = curl(&[&format!("http://{admin}/metrics")]).unwrap_or_else(|e| fail(e));
        for family in families {
            checked += 1;
            let live = text
                .lines()
                .any(|line| line.starts_with(family) && !line.starts_with('#'));
            if !live {
                failures.push(format!("{what}'s /metrics shows no live {family}"));
            }
        }
    }
    if let Err(e) = steady.finish("steady producer") {
        failures.push(e);
    }
    if let Err(e) = object_wal_steady.finish("steady producer (object WAL)") {
        failures.push(e);
    }
    object_wal_broker.kill();
    // Cardinality: with 10,000 more partitions, all lagging in one group, the default
    // cap keeps the broker well under 50,000 series.
    checked += 1;
    match clients.librdkafka(&bootstrap, &["many-partitions", "10", "1000"]) {
        Err(e) => failures.push(e),
        Ok(_) => {
            std::thread::sleep(Duration::from_secs(4));
            let text =
                curl(&[&format!("http://{}/metrics", broker.admin())]).unwrap_or_else(|e| fail(e));
            let series = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .count();
            let partitions = text
                .lines()
                .find_map(|l| l.strip_prefix("strata_partitions "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            eprintln!("{partitions} partitions: {series} series");
            if partitions < 10_000.0 || series >= 50_000 {
                failures.push(format!(
                    "{partitions} partitions exported {series} series (want at least 10,000 partitions and under 50,000 series)"
                ));
            }
        }
    }
    broker.kill();
    drop(prometheus);
    if failures.is_empty() {
        eprintln!(
            "test result: ok. {checked} passed ({} panel queries, {} alert rules, {} metric families); 0 failed",
            panels.len(),
            rules.len(),
            LIVE_UNDER_LOAD.len() + LIVE_UNDER_OBJECT_WAL.len()
        );
    } else {
        fail(format!(
            "{} of {checked} checks failed:\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
}

/// Families that must carry a value under the test's load (counters of rare events
/// start at zero). Only `strata_object_store_errors_total`, whose `error` label is
/// known only when an error happens, and the back-pressure wait histogram appear with
/// their first event.
const LIVE_UNDER_LOAD: &[&str] = &[
    // Records per group commit in count buckets: with the seconds buckets every
    // commit of more than ten records fell in `+Inf`.
    "strata_wal_group_commit_records_bucket{le=\"64\"}",
    "strata_stream_backpressure_total",
    "strata_upload_failures_total",
    "strata_upload_rounds_behind_total",
    "strata_object_wal_failures_total",
    "strata_stream_fenced_total",
    "strata_stream_closed_total",
    "strata_compaction_runs_total",
    "strata_compaction_discarded_objects_total",
    "strata_compaction_read_bytes_total",
    "strata_compaction_written_bytes_total",
    "strata_retention_trims_total",
    "strata_retention_deleted_objects_total",
    "strata_orphan_objects_removed_total",
    "strata_read_ahead_blocks_total",
    "strata_block_cache_hits_total",
    "strata_meta_txn_conflicts_total",
    "strata_meta_errors_total",
    "strata_meta_log_syncs_total",
    "strata_meta_log_bytes_total",
    "strata_kafka_rejected_requests_total",
    "strata_object_store_retries_total",
    "strata_object_store_throttled_total",
    "strata_object_store_conditional_conflicts_total",
    "strata_object_store_connection_errors_total",
    "strata_produce_refused_total",
    "strata_stream_append_bytes_total",
    "strata_wal_bytes_total",
    "strata_kafka_requests_total",
    "strata_kafka_request_errors_total",
    "strata_kafka_request_duration_seconds_bucket",
    "strata_kafka_request_queue_seconds_bucket",
    "strata_kafka_connections",
    "strata_kafka_purgatory_requests",
    "strata_kafka_bytes_in_total",
    "strata_kafka_records_in_total",
    "strata_kafka_bytes_out_total",
    "strata_topics",
    "strata_partitions",
    "strata_partition_log_start_offset",
    "strata_partition_log_end_offset",
    "strata_consumer_groups",
    "strata_consumer_group_members",
    "strata_consumer_group_lag_records",
    "strata_consumer_group_lag_seconds",
    "strata_consumer_lag_records",
    "strata_consumer_lag_seconds",
    "strata_stream_append_duration_seconds_bucket",
    "strata_wal_fsync_seconds_bucket",
    "strata_wal_unuploaded_bytes",
    "strata_upload_bytes_total",
    "strata_upload_objects_total",
    "strata_upload_duration_seconds_bucket",
    "strata_log_cache_bytes",
    "strata_log_cache_hits_total",
    "strata_log_cache_misses_total",
    "strata_block_cache_bytes",
    "strata_block_cache_misses_total",
    "strata_objects",
    "strata_object_bytes",
    "strata_object_store_operations_total",
    "strata_object_store_operation_duration_seconds_bucket",
    "strata_object_store_bytes_total",
    "strata_meta_operation_duration_seconds_bucket",
    "strata_process_cpu_seconds_total",
    "strata_process_resident_memory_bytes",
    "strata_process_open_fds",
    "strata_runtime_workers",
    "strata_runtime_busy_workers",
    "strata_runtime_global_queue_depth",
];

/// Families the object-WAL broker must show under its load, beside those it shares
/// with the local-WAL broker (checked there).
const LIVE_UNDER_OBJECT_WAL: &[&str] = &[
    "strata_object_wal_window_bytes_bucket{le=\"1048576\"}",
    "strata_object_wal_window_bytes_count",
    "strata_object_wal_queued_bytes",
    "strata_object_wal_window_close_delay_seconds_bucket",
    "strata_object_wal_failures_total",
    "strata_object_wal_hedged_writes_total",
    "strata_object_wal_hedge_wins_total",
    "strata_stream_append_duration_seconds_bucket",
    "strata_upload_objects_total",
];
