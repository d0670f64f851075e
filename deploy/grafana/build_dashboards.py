"""Builds the Grafana dashboards in dashboards/ from the panel lists below.

    python3 deploy/grafana/build_dashboards.py

The JSON files are committed; edit this file and rerun rather than editing them by
hand, so panel ids stay unique and every panel keeps its datasource.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
B = 'instance=~"$broker"'


def variables(*extra):
    out = [
        {"name": "datasource", "label": "Data source", "type": "datasource",
         "query": "prometheus", "current": {}, "hide": 0},
        {"name": "broker", "label": "Broker", "type": "query", "datasource": DS,
         "query": {"query": 'label_values(up{job="strata"}, instance)', "refId": "broker"},
         "definition": 'label_values(up{job="strata"}, instance)',
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "current": {}},
    ]
    for name, label, query in extra:
        out.append({"name": name, "label": label, "type": "query", "datasource": DS,
                    "query": {"query": query, "refId": name}, "definition": query,
                    "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
                    "current": {}})
    return out


def panel(title, unit, *targets, kind="timeseries", width=12, description=None):
    out = {"title": title, "type": kind, "datasource": DS, "unit": unit, "width": width,
           "targets": [{"expr": expr, "legendFormat": legend} for expr, legend in targets]}
    if description:
        out["description"] = description
    return out


# Shown in a panel's tooltip, so that a panel with no data on a broker running the
# other WAL kind reads as expected rather than as a broken query.
LOCAL_WAL_ONLY = 'Local WAL only ([wal] kind = "local"): no data on a broker with the object WAL.'
OBJECT_WAL_ONLY = 'Object WAL only ([wal] kind = "object"): no data on a broker with the local WAL.'


def dashboard(uid, title, description, templating, rows):
    panels, pid, y = [], 1, 0
    for row_title, row_panels in rows:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y, x = pid + 1, y + 1, 0
        for p in row_panels:
            w = p.pop("width")
            if x + w > 24:
                x, y = 0, y + 8
            targets = [dict(t, refId=chr(65 + i), datasource=DS)
                       for i, t in enumerate(p.pop("targets"))]
            unit = p.pop("unit")
            panels.append(dict(p, id=pid, targets=targets,
                               gridPos={"h": 8, "w": w, "x": x, "y": y},
                               fieldConfig={"defaults": {"unit": unit}, "overrides": []},
                               options={"legend": {"displayMode": "list", "placement": "bottom"}}
                               if p["type"] == "timeseries" else {}))
            pid, x = pid + 1, x + w
        y += 8
    return {"uid": uid, "title": title, "description": description, "tags": ["strata"],
            "schemaVersion": 39, "version": 1, "editable": True, "time": {"from": "now-1h", "to": "now"},
            "refresh": "30s", "timezone": "", "templating": {"list": templating},
            "annotations": {"list": []}, "panels": panels}


overview = dashboard(
    "strata-overview", "Strata / Cluster overview",
    "Brokers, topics, partitions, traffic, request rates and latency, errors.",
    variables(),
    [("Cluster", [
        panel("Brokers up", "none", (f'sum(up{{job="strata",{B}}})', "brokers"), kind="stat", width=6),
        panel("Topics", "none", (f"sum(strata_topics{{{B}}})", "topics"), kind="stat", width=6),
        panel("Partitions", "none", (f"sum(strata_partitions{{{B}}})", "partitions"), kind="stat", width=6),
        panel("Connections", "none", (f"sum(strata_kafka_connections{{{B}}})", "connections"), kind="stat", width=6),
    ]), ("Traffic", [
        panel("Bytes in", "Bps", (f"sum by (instance) (rate(strata_kafka_bytes_in_total{{{B}}}[$__rate_interval]))", "{{instance}}")),
        panel("Bytes out", "Bps", (f"sum by (instance) (rate(strata_kafka_bytes_out_total{{{B}}}[$__rate_interval]))", "{{instance}}")),
        panel("Records in", "ops", (f"sum by (instance) (rate(strata_kafka_records_in_total{{{B}}}[$__rate_interval]))", "{{instance}}")),
        panel("Requests by API", "reqps", (f"sum by (api) (rate(strata_kafka_requests_total{{{B}}}[$__rate_interval]))", "{{api}}")),
    ]), ("Latency and errors", [
        panel("Request p99 by API", "s", (f"histogram_quantile(0.99, sum by (api, le) (rate(strata_kafka_request_duration_seconds_bucket{{{B}}}[$__rate_interval])))", "{{api}}")),
        panel("Response queue p99 by API", "s", (f"histogram_quantile(0.99, sum by (api, le) (rate(strata_kafka_request_queue_seconds_bucket{{{B}}}[$__rate_interval])))", "{{api}}")),
        panel("Errors by code", "reqps", (f"sum by (api, error) (rate(strata_kafka_request_errors_total{{{B}}}[$__rate_interval]))", "{{api}} {{error}}")),
        panel("Waiting requests (purgatory)", "none", (f"sum by (kind) (strata_kafka_purgatory_requests{{{B}}})", "{{kind}}")),
    ])])

storage = dashboard(
    "strata-storage", "Strata / Storage",
    "WAL, caches, uploads, compaction, retention, object-store operations and cost.",
    variables(),
    [("WAL", [
        panel("Append latency p50 / p99", "s",
              (f"histogram_quantile(0.5, sum by (le) (rate(strata_stream_append_duration_seconds_bucket{{{B}}}[$__rate_interval])))", "p50"),
              (f"histogram_quantile(0.99, sum by (le) (rate(strata_stream_append_duration_seconds_bucket{{{B}}}[$__rate_interval])))", "p99")),
        panel("WAL fsync p99", "s", (f"histogram_quantile(0.99, sum by (le) (rate(strata_wal_fsync_seconds_bucket{{{B}}}[$__rate_interval])))", "p99"),
              description=LOCAL_WAL_ONLY),
        panel("Bytes not yet uploaded", "bytes", (f"sum by (instance) (strata_wal_unuploaded_bytes{{{B}}})", "{{instance}}")),
        panel("Back-pressure waits and uploads behind", "ops",
              (f"sum(rate(strata_stream_backpressure_total{{{B}}}[$__rate_interval])) or vector(0)", "append waits"),
              (f"sum(rate(strata_upload_rounds_behind_total{{{B}}}[$__rate_interval])) or vector(0)", "upload rounds behind")),
    ]), ("Object WAL", [
        panel("Windows written", "ops", (f"sum by (instance) (rate(strata_object_wal_window_bytes_count{{{B}}}[$__rate_interval]))", "{{instance}}"), description=OBJECT_WAL_ONLY),
        panel("Window size", "bytes",
              (f"sum(rate(strata_object_wal_window_bytes_sum{{{B}}}[$__rate_interval])) / sum(rate(strata_object_wal_window_bytes_count{{{B}}}[$__rate_interval]))", "mean"),
              (f"histogram_quantile(0.99, sum by (le) (rate(strata_object_wal_window_bytes_bucket{{{B}}}[$__rate_interval])))", "p99"), description=OBJECT_WAL_ONLY),
        panel("Bytes gathered or not yet committed", "bytes", (f"sum by (instance) (strata_object_wal_queued_bytes{{{B}}})", "{{instance}}"), width=8, description=OBJECT_WAL_ONLY),
        panel("Window close delay p99", "s", (f"histogram_quantile(0.99, sum by (le) (rate(strata_object_wal_window_close_delay_seconds_bucket{{{B}}}[$__rate_interval])))", "p99"), width=8, description=OBJECT_WAL_ONLY),
        panel("Failed and hedged windows", "ops",
              (f"sum(rate(strata_object_wal_failures_total{{{B}}}[$__rate_interval])) or vector(0)", "failed"),
              (f"sum(rate(strata_object_wal_hedged_writes_total{{{B}}}[$__rate_interval])) or vector(0)", "hedged"),
              (f"sum(rate(strata_object_wal_hedge_wins_total{{{B}}}[$__rate_interval])) or vector(0)", "hedge won"), width=8,
              description=OBJECT_WAL_ONLY),
    ]), ("Uploads and caches", [
        panel("Upload throughput", "Bps", (f"sum(rate(strata_upload_bytes_total{{{B}}}[$__rate_interval]))", "bytes")),
        panel("Upload latency p99", "s", (f"histogram_quantile(0.99, sum by (le) (rate(strata_upload_duration_seconds_bucket{{{B}}}[$__rate_interval])))", "p99")),
        panel("Cache sizes", "bytes", (f"sum(strata_log_cache_bytes{{{B}}})", "log cache"), (f"sum(strata_block_cache_bytes{{{B}}})", "block cache")),
        panel("Log cache hit ratio", "percentunit", (f"sum(rate(strata_log_cache_hits_total{{{B}}}[$__rate_interval])) / (sum(rate(strata_log_cache_hits_total{{{B}}}[$__rate_interval])) + (sum(rate(strata_log_cache_misses_total{{{B}}}[$__rate_interval])) or vector(0)))", "hit ratio")),
    ]), ("Object store", [
        panel("Operations by kind", "ops", (f"sum by (backend, operation) (rate(strata_object_store_operations_total{{{B}}}[$__rate_interval]))", "{{backend}} {{operation}}")),
        panel("Operation latency p99", "s", (f"histogram_quantile(0.99, sum by (operation, le) (rate(strata_object_store_operation_duration_seconds_bucket{{{B}}}[$__rate_interval])))", "{{operation}}")),
        panel("Errors and throttling", "ops",
              (f"sum(rate(strata_object_store_errors_total{{{B}}}[$__rate_interval])) or vector(0)", "errors"),
              (f"sum(rate(strata_object_store_throttled_total{{{B}}}[$__rate_interval])) or vector(0)", "throttled"),
              (f"sum(rate(strata_object_store_retries_total{{{B}}}[$__rate_interval])) or vector(0)", "retries")),
        panel("PUTs per GiB ingested", "none", (f'sum(increase(strata_object_store_operations_total{{operation="write",{B}}}[1h])) / (sum(increase(strata_stream_append_bytes_total{{{B}}}[1h])) / 1073741824)', "PUTs/GiB")),
    ]), ("Compaction and retention", [
        panel("Compaction", "Bps",
              (f"sum(rate(strata_compaction_read_bytes_total{{{B}}}[$__rate_interval])) or vector(0)", "read"),
              (f"sum(rate(strata_compaction_written_bytes_total{{{B}}}[$__rate_interval])) or vector(0)", "written")),
        panel("Retention and GC", "ops",
              (f"sum(rate(strata_retention_trims_total{{{B}}}[$__rate_interval])) or vector(0)", "trims"),
              (f"sum(rate(strata_retention_deleted_objects_total{{{B}}}[$__rate_interval])) or vector(0)", "objects deleted")),
        panel("Metadata store p99", "s", (f"histogram_quantile(0.99, sum by (operation, le) (rate(strata_meta_operation_duration_seconds_bucket{{{B}}}[$__rate_interval])))", "{{operation}}")),
        panel("Metadata store errors", "ops", (f"sum(rate(strata_meta_errors_total{{{B}}}[$__rate_interval])) or vector(0)", "errors")),
        panel("Objects by kind and state", "none", (f"sum by (kind, state) (strata_objects{{{B}}})", "{{kind}} {{state}}")),
        panel("Object bytes by kind and state", "bytes", (f"sum by (kind, state) (strata_object_bytes{{{B}}})", "{{kind}} {{state}}")),
    ])])

T = 'topic=~"$topic"'
G = 'group=~"$group"'
topics = dashboard(
    "strata-topics", "Strata / Topics & consumer groups",
    "Per-topic throughput, partition offsets, consumer groups and their lag.",
    variables(("topic", "Topic", "label_values(strata_topic_partitions, topic)"),
              ("group", "Consumer group", "label_values(strata_consumer_group_members, group)")),
    [("Topics", [
        panel("Bytes in by topic", "Bps", (f"sum by (topic) (rate(strata_kafka_bytes_in_total{{{T},{B}}}[$__rate_interval]))", "{{topic}}")),
        panel("Bytes out by topic", "Bps", (f"sum by (topic) (rate(strata_kafka_bytes_out_total{{{T},{B}}}[$__rate_interval]))", "{{topic}}")),
        panel("Records in by topic", "ops", (f"sum by (topic) (rate(strata_kafka_records_in_total{{{T},{B}}}[$__rate_interval]))", "{{topic}}")),
        panel("Log end offset by partition", "none", (f"max by (topic, partition) (strata_partition_log_end_offset{{{T},{B}}})", "{{topic}}/{{partition}}")),
    ]), ("Consumer groups", [
        panel("Lag (records) by group and topic", "none", (f"max by (group, topic) (strata_consumer_group_lag_records{{{G},{T},{B}}})", "{{group}} {{topic}}")),
        panel("Lag (seconds) by group and topic", "s", (f"max by (group, topic) (strata_consumer_group_lag_seconds{{{G},{T},{B}}})", "{{group}} {{topic}}")),
        panel("Members by group", "none", (f"max by (group) (strata_consumer_group_members{{{G},{B}}})", "{{group}}")),
        panel("Groups by state", "none", (f"sum by (state) (strata_consumer_groups{{{B}}})", "{{state}}")),
    ])])

runtime = dashboard(
    "strata-runtime", "Strata / Broker runtime",
    "CPU, memory, file descriptors, connections and the async runtime.",
    variables(),
    [("Process", [
        panel("CPU", "percentunit", (f"rate(strata_process_cpu_seconds_total{{{B}}}[$__rate_interval])", "{{instance}}")),
        panel("Resident memory", "bytes", (f"strata_process_resident_memory_bytes{{{B}}}", "{{instance}}")),
        panel("Open file descriptors", "none", (f"strata_process_open_fds{{{B}}}", "{{instance}}")),
        panel("Threads", "none", (f"strata_process_threads{{{B}}}", "{{instance}}")),
    ]), ("Runtime and connections", [
        panel("Busy runtime workers", "none", (f"strata_runtime_busy_workers{{{B}}}", "busy"), (f"strata_runtime_workers{{{B}}}", "workers")),
        panel("Runtime queue depth", "none", (f"strata_runtime_global_queue_depth{{{B}}}", "{{instance}}")),
        panel("Alive tasks", "none", (f"strata_runtime_alive_tasks{{{B}}}", "{{instance}}")),
        panel("Client connections", "none", (f"strata_kafka_connections{{{B}}}", "{{instance}}")),
    ])])

for name, board in [("overview", overview), ("storage", storage), ("topics-groups", topics),
                    ("runtime", runtime)]:
    with open(os.path.join(HERE, "dashboards", f"strata-{name}.json"), "w") as f:
        json.dump(board, f, indent=2)
        f.write("\n")
