//! HELP texts and units of every metric family the broker exports.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// `(name, kind, unit, help)` of every family; `docs/observability.md` mirrors it.
pub const FAMILIES: &[(&str, Kind, Unit, &str)] = &[
    // Kafka API
    (
        "strata_kafka_requests_total",
        Kind::Counter,
        Unit::Count,
        "Kafka requests received, by API.",
    ),
    (
        "strata_kafka_request_errors_total",
        Kind::Counter,
        Unit::Count,
        "Error codes returned, by API and Kafka error name (per partition where the API answers per partition).",
    ),
    (
        "strata_kafka_request_duration_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "Time from a request's arrival to its response being written, by API.",
    ),
    (
        "strata_kafka_request_queue_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "Time a finished response waited behind earlier responses of its connection, by API.",
    ),
    (
        "strata_kafka_rejected_requests_total",
        Kind::Counter,
        Unit::Count,
        "Connections closed for bad input: oversized, malformed, unknown API or version.",
    ),
    (
        "strata_kafka_connections",
        Kind::Gauge,
        Unit::Count,
        "Open client connections.",
    ),
    (
        "strata_kafka_purgatory_requests",
        Kind::Gauge,
        Unit::Count,
        "Requests waiting: produce for durability, fetch for data (long-poll), join for a rebalance.",
    ),
    (
        "strata_kafka_bytes_in_total",
        Kind::Counter,
        Unit::Bytes,
        "Record batch bytes produced, by topic.",
    ),
    (
        "strata_kafka_records_in_total",
        Kind::Counter,
        Unit::Count,
        "Records produced, by topic.",
    ),
    (
        "strata_kafka_bytes_out_total",
        Kind::Counter,
        Unit::Bytes,
        "Record batch bytes fetched, by topic.",
    ),
    (
        "strata_produce_refused_total",
        Kind::Counter,
        Unit::Count,
        "Produced batches refused, by error.",
    ),
    // Topics, partitions, groups
    (
        "strata_topics",
        Kind::Gauge,
        Unit::Count,
        "Topics on this broker.",
    ),
    (
        "strata_partitions",
        Kind::Gauge,
        Unit::Count,
        "Partitions on this broker.",
    ),
    (
        "strata_topic_partitions",
        Kind::Gauge,
        Unit::Count,
        "Partitions of each topic.",
    ),
    (
        "strata_partition_log_start_offset",
        Kind::Gauge,
        Unit::Count,
        "First retained offset of a partition (capped by metrics.max_partition_series).",
    ),
    (
        "strata_partition_log_end_offset",
        Kind::Gauge,
        Unit::Count,
        "One past the last acknowledged offset of a partition (capped).",
    ),
    (
        "strata_consumer_groups",
        Kind::Gauge,
        Unit::Count,
        "Consumer groups, by state.",
    ),
    (
        "strata_consumer_group_members",
        Kind::Gauge,
        Unit::Count,
        "Members of each group.",
    ),
    (
        "strata_consumer_group_lag_records",
        Kind::Gauge,
        Unit::Count,
        "Records behind the log end, summed over a group's committed partitions of a topic.",
    ),
    (
        "strata_consumer_group_lag_seconds",
        Kind::Gauge,
        Unit::Seconds,
        "Age of the oldest unconsumed record among a group's partitions of a topic.",
    ),
    (
        "strata_consumer_lag_records",
        Kind::Gauge,
        Unit::Count,
        "Records behind the log end, per group and partition (capped).",
    ),
    (
        "strata_consumer_lag_seconds",
        Kind::Gauge,
        Unit::Seconds,
        "Age of the first unconsumed record, per group and partition (capped).",
    ),
    // Stream store
    (
        "strata_stream_append_bytes_total",
        Kind::Counter,
        Unit::Bytes,
        "Bytes appended durably to streams.",
    ),
    (
        "strata_stream_append_duration_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "Time from queueing an append to its durability (WAL fsync or object WAL commit).",
    ),
    (
        "strata_stream_backpressure_total",
        Kind::Counter,
        Unit::Count,
        "Appends that waited because too much data was not yet uploaded.",
    ),
    (
        "strata_stream_backpressure_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "How long appends waited for uploads to make room.",
    ),
    (
        "strata_wal_bytes_total",
        Kind::Counter,
        Unit::Bytes,
        "Bytes written to the local WAL.",
    ),
    (
        "strata_wal_fsync_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "Duration of each WAL group commit's write and fsync.",
    ),
    (
        "strata_wal_rotate_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "Duration of each switch to a new WAL segment (reused or created, then the directory synced); appends wait meanwhile.",
    ),
    (
        "strata_wal_group_commit_records",
        Kind::Histogram,
        Unit::Count,
        "Records made durable by one WAL group commit.",
    ),
    (
        "strata_wal_unuploaded_bytes",
        Kind::Gauge,
        Unit::Bytes,
        "Acknowledged bytes not yet in objects.",
    ),
    (
        "strata_upload_bytes_total",
        Kind::Counter,
        Unit::Bytes,
        "Bytes uploaded as objects.",
    ),
    (
        "strata_upload_objects_total",
        Kind::Counter,
        Unit::Count,
        "Objects uploaded.",
    ),
    (
        "strata_object_id_pool_empty_total",
        Kind::Counter,
        Unit::Count,
        "Object writes that found no id allocated ahead and waited for a metadata commit.",
    ),
    (
        "strata_upload_duration_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "Duration of each upload (PUTs and metadata commit).",
    ),
    (
        "strata_upload_failures_total",
        Kind::Counter,
        Unit::Count,
        "Uploads that failed and will be retried.",
    ),
    (
        "strata_upload_rounds_behind_total",
        Kind::Counter,
        Unit::Count,
        "Upload rounds that started with a quarter of the un-uploaded limit and more than one round's worth waiting, and so flushed each object to a local directory at once rather than in paced pieces.",
    ),
    (
        "strata_object_wal_failures_total",
        Kind::Counter,
        Unit::Count,
        "Object WAL windows that failed (their appends failed).",
    ),
    (
        "strata_object_wal_hedged_writes_total",
        Kind::Counter,
        Unit::Count,
        "Object WAL windows written a second time because the first write ran past the recent p95 and twice the median.",
    ),
    (
        "strata_object_wal_hedge_wins_total",
        Kind::Counter,
        Unit::Count,
        "Hedged object WAL windows whose second write finished first.",
    ),
    (
        "strata_object_wal_window_close_delay_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "How long after its scheduled close a window was taken by the object WAL's window loop (long while every write slot is busy).",
    ),
    (
        "strata_object_wal_window_bytes",
        Kind::Histogram,
        Unit::Bytes,
        "Bytes in each object WAL window taken for writing (a full window holds `[wal] window_bytes`).",
    ),
    (
        "strata_object_wal_queued_bytes",
        Kind::Gauge,
        Unit::Bytes,
        "Object WAL bytes gathered for the next window or written and not yet committed; appends wait once this reaches its limit.",
    ),
    (
        "strata_stream_closed_total",
        Kind::Counter,
        Unit::Count,
        "Streams given up by close_stream: their appends settled and uploaded, then handed back to the metadata for the next owner.",
    ),
    (
        "strata_stream_fenced_total",
        Kind::Counter,
        Unit::Count,
        "Streams a commit found taken over by a newer owner: left out of that commit and every later one, their appends here refused.",
    ),
    (
        "strata_allocator_allocated_bytes",
        Kind::Gauge,
        Unit::Bytes,
        "Bytes in the broker's live allocations (jemalloc).",
    ),
    (
        "strata_allocator_active_bytes",
        Kind::Gauge,
        Unit::Bytes,
        "Bytes in the allocator's pages holding live allocations.",
    ),
    (
        "strata_allocator_resident_bytes",
        Kind::Gauge,
        Unit::Bytes,
        "Bytes of resident pages the allocator maps (RSS above allocated is the allocator's).",
    ),
    (
        "strata_allocator_retained_bytes",
        Kind::Gauge,
        Unit::Bytes,
        "Bytes of address space the allocator returned to the OS but keeps mapped.",
    ),
    (
        "strata_log_cache_bytes",
        Kind::Gauge,
        Unit::Bytes,
        "Bytes held by the log cache.",
    ),
    (
        "strata_log_cache_hits_total",
        Kind::Counter,
        Unit::Count,
        "Fetches served from the log cache.",
    ),
    (
        "strata_log_cache_misses_total",
        Kind::Counter,
        Unit::Count,
        "Fetches that had to read objects.",
    ),
    (
        "strata_block_cache_bytes",
        Kind::Gauge,
        Unit::Bytes,
        "Bytes held by the block cache.",
    ),
    (
        "strata_block_cache_hits_total",
        Kind::Counter,
        Unit::Count,
        "Object blocks served from the block cache.",
    ),
    (
        "strata_block_cache_misses_total",
        Kind::Counter,
        Unit::Count,
        "Object blocks read from the store.",
    ),
    (
        "strata_read_ahead_blocks_total",
        Kind::Counter,
        Unit::Count,
        "Blocks read ahead for sequential readers: later blocks of the object being read, and the next ranges in other objects.",
    ),
    (
        "strata_compaction_runs_total",
        Kind::Counter,
        Unit::Count,
        "Compactions of a stream's small ranges.",
    ),
    (
        "strata_compaction_merged_objects_total",
        Kind::Counter,
        Unit::Count,
        "Small stream-set objects merged into larger ones.",
    ),
    (
        "strata_compaction_discarded_objects_total",
        Kind::Counter,
        Unit::Count,
        "Objects written by a merge or a compaction (job) and discarded at its commit: a stream they hold was trimmed, compacted, closed or taken over while they were written.",
    ),
    (
        "strata_compaction_read_bytes_total",
        Kind::Counter,
        Unit::Bytes,
        "Bytes of small ranges and small stream-set objects read by compaction.",
    ),
    (
        "strata_compaction_written_bytes_total",
        Kind::Counter,
        Unit::Bytes,
        "Bytes of stream objects and merged stream-set objects written by compaction.",
    ),
    (
        "strata_objects",
        Kind::Gauge,
        Unit::Count,
        "Objects in the bucket by kind (stream-set, stream) and state (prepared, committed, marked-for-deletion).",
    ),
    (
        "strata_object_bytes",
        Kind::Gauge,
        Unit::Bytes,
        "Bytes of objects by kind and state.",
    ),
    (
        "strata_retention_trims_total",
        Kind::Counter,
        Unit::Count,
        "Stream starts moved by retention.",
    ),
    (
        "strata_retention_deleted_objects_total",
        Kind::Counter,
        Unit::Count,
        "Objects deleted once nothing referenced them.",
    ),
    (
        "strata_orphan_objects_removed_total",
        Kind::Counter,
        Unit::Count,
        "Objects written but never committed, removed.",
    ),
    // Object store (backends layer)
    (
        "strata_object_store_operations_total",
        Kind::Counter,
        Unit::Count,
        "Object store operations, by backend and operation.",
    ),
    (
        "strata_object_store_operation_duration_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "Object store operation latency, by backend and operation.",
    ),
    (
        "strata_object_store_bytes_total",
        Kind::Counter,
        Unit::Bytes,
        "Bytes read and written, by backend and operation.",
    ),
    (
        "strata_object_store_errors_total",
        Kind::Counter,
        Unit::Count,
        "Failed operations, by backend, operation and error kind.",
    ),
    (
        "strata_object_store_retries_total",
        Kind::Counter,
        Unit::Count,
        "Retries of transient failures.",
    ),
    (
        "strata_object_store_throttled_total",
        Kind::Counter,
        Unit::Count,
        "Throttling responses (429, 503 SlowDown).",
    ),
    (
        "strata_object_store_conditional_conflicts_total",
        Kind::Counter,
        Unit::Count,
        "Conditional writes refused because the object existed or changed.",
    ),
    (
        "strata_object_store_connection_errors_total",
        Kind::Counter,
        Unit::Count,
        "Connections to the store that failed.",
    ),
    // Metadata store
    (
        "strata_meta_operation_duration_seconds",
        Kind::Histogram,
        Unit::Seconds,
        "Metadata store operation latency, by operation.",
    ),
    (
        "strata_meta_errors_total",
        Kind::Counter,
        Unit::Count,
        "Metadata store operations that failed, by operation.",
    ),
    (
        "strata_meta_txn_conflicts_total",
        Kind::Counter,
        Unit::Count,
        "Transactions whose compare failed (fencing, concurrent change).",
    ),
    (
        "strata_meta_log_syncs_total",
        Kind::Counter,
        Unit::Count,
        "fsyncs of the embedded metadata store's log (concurrent commits share one).",
    ),
    (
        "strata_meta_log_bytes_total",
        Kind::Counter,
        Unit::Bytes,
        "Bytes appended to the embedded metadata store's log (commits; not snapshots).",
    ),
    // Runtime
    (
        "strata_runtime_workers",
        Kind::Gauge,
        Unit::Count,
        "Tokio worker threads.",
    ),
    (
        "strata_runtime_busy_workers",
        Kind::Gauge,
        Unit::Count,
        "Worker threads busy over the last refresh interval (0 to workers).",
    ),
    (
        "strata_runtime_alive_tasks",
        Kind::Gauge,
        Unit::Count,
        "Tasks alive in the runtime.",
    ),
    (
        "strata_runtime_global_queue_depth",
        Kind::Gauge,
        Unit::Count,
        "Tasks waiting in the runtime's global queue.",
    ),
];

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

pub fn describe_all() {
    for (name, kind, unit, help) in FAMILIES {
        match kind {
            Kind::Counter => describe_counter!(*name, *unit, *help),
            Kind::Gauge => describe_gauge!(*name, *unit, *help),
            Kind::Histogram => describe_histogram!(*name, *unit, *help),
        }
    }
}
