//! Gauges computed from broker state every `metrics.refresh_interval`: topics,
//! partition offsets, group states and consumer lag, the tokio runtime and the
//! process (CPU, memory, file descriptors).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use metrics::gauge;

use crate::broker::Broker;
use crate::clock::now_ms;

const STATES: &[&str] = &[
    "Empty",
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
];

/// Refreshes the gauges until the broker is dropped.
pub async fn run(broker: Weak<Broker>) {
    let process = metrics_process::Collector::new("strata_");
    process.describe();
    let mut runtime = RuntimeSampler::default();
    loop {
        let Some(live) = broker.upgrade() else { return };
        let interval = live.config.metrics.refresh_interval;
        process.collect();
        super::allocator::record();
        runtime.sample();
        refresh(&live).await;
        drop(live);
        tokio::time::sleep(interval).await;
    }
}

/// Age in seconds of the first record at or after `offset` (0 when there is none).
async fn record_age_seconds(
    broker: &Broker,
    stream: strata_core::store::StreamId,
    offset: u64,
) -> f64 {
    match broker.store.fetch(stream, offset, 1).await {
        Ok(batches) => batches.first().map_or(0.0, |batch| {
            let timestamp = if batch.has_log_append_time() {
                batch.max_timestamp()
            } else {
                batch.base_timestamp()
            };
            ((now_ms() - timestamp).max(0) as f64) / 1000.0
        }),
        Err(_) => 0.0,
    }
}

async fn refresh(broker: &Arc<Broker>) {
    let topics = broker.topics.list();
    gauge!("strata_topics").set(topics.len() as f64);
    let partitions: usize = topics.iter().map(|t| t.partitions.len()).sum();
    gauge!("strata_partitions").set(partitions as f64);
    let cap = broker.config.metrics.max_partition_series;
    let mut ends: BTreeMap<(String, i32), (u64, strata_core::store::StreamId)> = BTreeMap::new();
    let mut exported = 0usize;
    for topic in &topics {
        gauge!("strata_topic_partitions", "topic" => topic.name.clone())
            .set(topic.partitions.len() as f64);
        for partition in &topic.partitions {
            let Ok((start, end)) = broker.store.offsets(partition.stream) else {
                continue;
            };
            ends.insert(
                (topic.name.clone(), partition.index),
                (end, partition.stream),
            );
            if exported < cap {
                exported += 1;
                let labels = [
                    ("topic", topic.name.clone()),
                    ("partition", partition.index.to_string()),
                ];
                gauge!("strata_partition_log_start_offset", &labels).set(start as f64);
                gauge!("strata_partition_log_end_offset", &labels).set(end as f64);
            }
        }
    }
    let mut by_state: BTreeMap<&str, usize> = STATES.iter().map(|s| (*s, 0)).collect();
    let mut lag_series = 0usize;
    for (group, _, state) in broker.groups.list() {
        *by_state.entry(state).or_default() += 1;
        let members = broker
            .groups
            .describe(&group)
            .map_or(0, |g| g.members.len());
        gauge!("strata_consumer_group_members", "group" => group.clone()).set(members as f64);
        let mut per_topic: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        for ((topic, partition), committed) in broker.groups.offsets.fetch_all(&group) {
            let Some((end, stream)) = ends.get(&(topic.clone(), partition)) else {
                continue;
            };
            let position = u64::try_from(committed.offset).unwrap_or(0);
            let lag = end.saturating_sub(position);
            let age = if lag > 0 {
                record_age_seconds(broker, *stream, position).await
            } else {
                0.0
            };
            let entry = per_topic.entry(topic.clone()).or_default();
            entry.0 += lag;
            entry.1 = entry.1.max(age);
            if lag_series < cap {
                lag_series += 1;
                let labels = [
                    ("group", group.clone()),
                    ("topic", topic.clone()),
                    ("partition", partition.to_string()),
                ];
                gauge!("strata_consumer_lag_records", &labels).set(lag as f64);
                gauge!("strata_consumer_lag_seconds", &labels).set(age);
            }
        }
        for (topic, (lag, age)) in per_topic {
            let labels = [("group", group.clone()), ("topic", topic)];
            gauge!("strata_consumer_group_lag_records", &labels).set(lag as f64);
            gauge!("strata_consumer_group_lag_seconds", &labels).set(age);
        }
    }
    for (state, count) in by_state {
        gauge!("strata_consumer_groups", "state" => state).set(count as f64);
    }
    match broker.store.object_counts().await {
        Ok(counts) => {
            for kind in ["stream-set", "stream"] {
                for state in ["prepared", "committed", "marked-for-deletion"] {
                    let (count, bytes) = counts.get(&(kind, state)).copied().unwrap_or_default();
                    let labels = [("kind", kind), ("state", state)];
                    gauge!("strata_objects", &labels).set(count as f64);
                    gauge!("strata_object_bytes", &labels).set(bytes as f64);
                }
            }
        }
        Err(err) => tracing::warn!(%err, "cannot count objects for metrics"),
    }
}

/// Busy time of the runtime's workers between samples.
#[derive(Default)]
struct RuntimeSampler {
    last: Option<(Instant, Duration)>,
}

impl RuntimeSampler {
    fn sample(&mut self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let metrics = handle.metrics();
        let workers = metrics.num_workers();
        gauge!("strata_runtime_workers").set(workers as f64);
        gauge!("strata_runtime_alive_tasks").set(metrics.num_alive_tasks() as f64);
        gauge!("strata_runtime_global_queue_depth").set(metrics.global_queue_depth() as f64);
        let busy: Duration = (0..workers)
            .map(|w| metrics.worker_total_busy_duration(w))
            .sum();
        let now = Instant::now();
        if let Some((then, busy_then)) = self.last {
            let elapsed = now.duration_since(then).as_secs_f64();
            if elapsed > 0.0 {
                let busy_workers = busy.saturating_sub(busy_then).as_secs_f64() / elapsed;
                gauge!("strata_runtime_busy_workers").set(busy_workers);
            }
        }
        self.last = Some((now, busy));
    }
}
