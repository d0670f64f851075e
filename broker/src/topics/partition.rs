//! One partition: a stream of the store plus the producer state that guards it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_core::batch::RecordBatch;
use strata_core::meta::MetaStore;
use strata_core::store::{Appended, QueuedAppend, StoreError, StreamId, StreamStore};

use super::config::{EffectiveConfig, TimestampType};
use super::producers::{ProducerTable, SequenceError, Verdict};

/// Why a produce to the partition failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A produce in flight: its offsets are fixed, its durability is pending.
pub enum PendingAppend {
    Queued {
        queued: QueuedAppend,
        producer_id: i64,
    },
    /// A retried batch already written; nothing to wait for.
    Duplicate { base_offset: u64 },
}

/// Where a produced batch landed.
#[derive(Debug, Clone, Copy)]
pub struct Produced {
    pub base_offset: u64,
    /// The broker's append time when the topic uses `LogAppendTime`, else -1.
    pub log_append_time_ms: i64,
}

pub struct Partition {
    pub index: i32,
    pub stream: StreamId,
    /// Held from the sequence check until the batch is queued, so checks and offsets
    /// follow the same order.
    producers: tokio::sync::Mutex<ProducerTable>,
    /// Producer state changed since the last snapshot.
    dirty: AtomicBool,
    /// The end offset the persisted snapshot covers: a load replays the log from
    /// there, so it follows the log's end even when no idempotent producer writes.
    snapshot_end: AtomicU64,
}

/// A partition's producer state ready to persist.
pub struct PreparedSnapshot {
    pub key: Bytes,
    pub value: Bytes,
    end_offset: u64,
}

/// The persisted producer state: the table as of `end_offset`; batches after it are
/// replayed from the log when the partition is loaded.
#[derive(Debug, Serialize, Deserialize)]
struct ProducerSnapshot {
    end_offset: u64,
    table: ProducerTable,
}

fn snapshot_key(stream: StreamId) -> Bytes {
    Bytes::from(format!("k/producers/{}", stream.0))
}

impl Partition {
    /// Opens the partition's stream and rebuilds its producer state from the last
    /// snapshot plus the batches written after it.
    pub async fn load(
        store: &StreamStore,
        meta: &dyn MetaStore,
        index: i32,
        stream: StreamId,
    ) -> Result<Partition, AppendError> {
        store.open_stream(stream).await?;
        let (start, end) = store.offsets(stream)?;
        let snapshot = meta
            .get(&snapshot_key(stream))
            .await
            .map_err(StoreError::from)?
            .and_then(|kv| serde_json::from_slice::<ProducerSnapshot>(&kv.value).ok());
        let (mut table, mut offset) = match snapshot {
            Some(s) if s.end_offset <= end => (s.table, s.end_offset.max(start)),
            _ => (ProducerTable::default(), start),
        };
        let snapshot_end = offset;
        table.retain_below(offset);
        let mut replayed = 0usize;
        while offset < end {
            let batches = store.fetch(stream, offset, 4 << 20).await?;
            let Some(last) = batches.last() else { break };
            offset = last.end_offset();
            for batch in batches {
                table.record(&batch, batch.base_offset());
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::debug!(
                stream = stream.0,
                batches = replayed,
                "rebuilt producer state"
            );
        }
        Ok(Partition {
            index,
            stream,
            producers: tokio::sync::Mutex::new(table),
            dirty: AtomicBool::new(replayed > 0),
            snapshot_end: AtomicU64::new(snapshot_end),
        })
    }

    /// Checks the batch's producer sequence, stamps it if the topic wants append
    /// time, and queues it. Calls made one after another keep their order.
    pub async fn append(
        &self,
        store: &StreamStore,
        batch: RecordBatch,
        config: &EffectiveConfig,
        now_ms: i64,
    ) -> Result<(PendingAppend, i64), AppendError> {
        let mut producers = self.producers.lock().await;
        if let Verdict::Duplicate { base_offset } = producers.check(&batch)? {
            return Ok((PendingAppend::Duplicate { base_offset }, -1));
        }
        let (batch, append_time) = match config.timestamp_type {
            TimestampType::LogAppendTime => (batch.with_log_append_time(now_ms), now_ms),
            TimestampType::CreateTime => (batch, -1),
        };
        let producer_id = batch.producer_id();
        let queued = store.enqueue(self.stream, batch.clone()).await?;
        producers.record(&batch, queued.placement().base_offset);
        if producer_id >= 0 {
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok((
            PendingAppend::Queued {
                queued,
                producer_id,
            },
            append_time,
        ))
    }

    /// Waits for a pending append; a failed write makes the producer start over, so
    /// its retry is not mistaken for a duplicate of data that was never written.
    pub async fn complete(&self, pending: PendingAppend) -> Result<u64, AppendError> {
        match pending {
            PendingAppend::Duplicate { base_offset } => Ok(base_offset),
            PendingAppend::Queued {
                queued,
                producer_id,
            } => match queued.durable().await {
                Ok(Appended { base_offset, .. }) => Ok(base_offset),
                Err(err) => {
                    if producer_id >= 0 {
                        self.producers.lock().await.forget(producer_id);
                    }
                    Err(err.into())
                }
            },
        }
    }

    /// A copy of the producer table (DescribeProducers).
    pub async fn producers(&self) -> ProducerTable {
        self.producers.lock().await.clone()
    }

    /// The producer state to persist, if it changed or the log grew since the last
    /// snapshot (without the second, data from producers that are not idempotent
    /// was replayed at every start, however much of it there was). Taken under the
    /// append lock, so the table and the end offset agree. Report the outcome with
    /// [`Partition::snapshot_written`] or [`Partition::snapshot_failed`].
    pub async fn prepare_snapshot(
        &self,
        store: &StreamStore,
    ) -> Result<Option<PreparedSnapshot>, StoreError> {
        // `end` first: every batch below it is durable and already in the table
        // cloned after; batches queued but not yet durable lie at or past `end` and
        // are dropped here, and loading replays the log from `end`, which brings them
        // back only if they were written.
        let (_, end) = store.offsets(self.stream)?;
        let changed = self.dirty.swap(false, Ordering::Relaxed);
        if !changed && end <= self.snapshot_end.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let mut table = self.producers.lock().await.clone();
        table.retain_below(end);
        let snapshot = ProducerSnapshot {
            end_offset: end,
            table,
        };
        let value = serde_json::to_vec(&snapshot).map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(Some(PreparedSnapshot {
            key: snapshot_key(self.stream),
            value: Bytes::from(value),
            end_offset: end,
        }))
    }

    /// `prepared` is persisted.
    pub fn snapshot_written(&self, prepared: &PreparedSnapshot) {
        self.snapshot_end
            .fetch_max(prepared.end_offset, Ordering::Relaxed);
    }

    /// `prepared` could not be persisted: the next round tries again.
    pub fn snapshot_failed(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Removes the persisted producer state (the partition is being deleted).
    pub async fn forget_snapshot(&self, meta: &dyn MetaStore) -> Result<(), StoreError> {
        meta.delete(snapshot_key(self.stream)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strata_backends::{Storage, StorageConfig};
    use strata_core::batch::synthetic_batch;
    use strata_core::meta::{EmbeddedMetaStore, EmbeddedOptions};
    use strata_core::store::StoreConfig;

    use super::*;
    use crate::config::BrokerSection;
    use crate::topics::config::TopicOverrides;

    async fn store_on(dir: &std::path::Path) -> (StreamStore, Arc<dyn MetaStore>) {
        let text = format!(
            "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
            dir.join("bucket").display()
        );
        let storage =
            Storage::open(&StorageConfig::from_document(&text).expect("config")).expect("storage");
        let meta: Arc<dyn MetaStore> = Arc::new(
            EmbeddedMetaStore::open(&dir.join("meta"), EmbeddedOptions::default())
                .await
                .expect("meta"),
        );
        let store = StreamStore::open(storage, meta.clone(), StoreConfig::new(dir.join("wal")))
            .await
            .expect("store");
        (store, meta)
    }

    #[tokio::test]
    async fn snapshots_follow_the_log_of_producers_that_are_not_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, meta) = store_on(dir.path()).await;
        let stream = store.create_stream().await.expect("create");
        let partition = Partition::load(&store, meta.as_ref(), 0, stream)
            .await
            .expect("load");
        let config = TopicOverrides::default().effective(&BrokerSection::default());
        for seed in 0..5 {
            // Producer id -1: no producer state to keep, only the log.
            let (pending, _) = partition
                .append(&store, synthetic_batch(4, 100, seed), &config, 0)
                .await
                .expect("append");
            partition.complete(pending).await.expect("durable");
        }

        let prepared = partition
            .prepare_snapshot(&store)
            .await
            .expect("prepare")
            .expect("the log grew: a snapshot is due");
        meta.put(prepared.key.clone(), prepared.value.clone())
            .await
            .expect("put");
        partition.snapshot_written(&prepared);
        assert!(
            partition
                .prepare_snapshot(&store)
                .await
                .expect("prepare")
                .is_none(),
            "nothing changed since"
        );
        let persisted: ProducerSnapshot = serde_json::from_slice(
            &meta
                .get(&snapshot_key(stream))
                .await
                .expect("get")
                .expect("snapshot")
                .value,
        )
        .expect("json");
        assert_eq!(persisted.end_offset, 20);

        let reloaded = Partition::load(&store, meta.as_ref(), 0, stream)
            .await
            .expect("reload");
        assert!(
            !reloaded.dirty.load(Ordering::Relaxed),
            "the reload replayed the log instead of starting at the snapshot"
        );
        assert_eq!(reloaded.snapshot_end.load(Ordering::Relaxed), 20);
    }
}
