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
    producers: tokio::sync::Mutex<ProducerState>,
    /// Producer state changed since the last snapshot.
    dirty: AtomicBool,
    /// The end offset the persisted snapshot covers: a load replays the log from
    /// there, so it follows the log's end even when no idempotent producer writes.
    snapshot_end: AtomicU64,
}

/// The producer table, and the part of the log not yet replayed into it.
///
/// A load reads only the snapshot; the batches after it are replayed when the table
/// is first needed (an append, DescribeProducers), not at start: after a crash every
/// partition has its last seconds to read back from objects, and a broker taking
/// over thousands of partitions would read them all before serving any.
struct ProducerState {
    table: ProducerTable,
    /// Offsets from here to the end the log had when the partition was loaded are
    /// not in the table yet.
    unreplayed: Option<std::ops::Range<u64>>,
}

/// A partition's producer state ready to persist.
pub struct PreparedSnapshot {
    pub key: Bytes,
    pub value: Bytes,
    end_offset: u64,
}

/// The persisted producer state: the table as of `end_offset`; batches after it are
/// replayed from the log when the partition first needs its producer state.
#[derive(Debug, Serialize, Deserialize)]
struct ProducerSnapshot {
    end_offset: u64,
    table: ProducerTable,
}

fn snapshot_key(stream: StreamId) -> Bytes {
    Bytes::from(format!("k/producers/{}", stream.0))
}

impl Partition {
    /// Opens the partition's stream and reads its producer state's last snapshot;
    /// the batches written after it are replayed when the state is first needed.
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
        let (mut table, offset) = match snapshot {
            Some(s) if s.end_offset <= end => (s.table, s.end_offset.max(start)),
            _ => (ProducerTable::default(), start),
        };
        table.retain_below(offset);
        Ok(Partition {
            index,
            stream,
            producers: tokio::sync::Mutex::new(ProducerState {
                table,
                unreplayed: (offset < end).then_some(offset..end),
            }),
            dirty: AtomicBool::new(false),
            snapshot_end: AtomicU64::new(offset),
        })
    }

    /// The producer state, with the log after its snapshot replayed into it first if
    /// that has not happened yet.
    async fn producer_state(
        &self,
        store: &StreamStore,
    ) -> Result<tokio::sync::MutexGuard<'_, ProducerState>, StoreError> {
        let mut state = self.producers.lock().await;
        if let Some(range) = state.unreplayed.clone() {
            // Retention may have moved the start past the snapshot meanwhile.
            let (start, _) = store.offsets(self.stream)?;
            let mut offset = range.start.max(start);
            let mut replayed = 0usize;
            while offset < range.end {
                let batches = store.fetch(self.stream, offset, 4 << 20).await?;
                let Some(last) = batches.last() else { break };
                offset = last.end_offset();
                for batch in batches {
                    state.table.record(&batch, batch.base_offset());
                    replayed += 1;
                }
            }
            state.unreplayed = None;
            if replayed > 0 {
                self.dirty.store(true, Ordering::Relaxed);
                tracing::debug!(
                    stream = self.stream.0,
                    batches = replayed,
                    "rebuilt producer state"
                );
            }
        }
        Ok(state)
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
        let mut producers = self.producer_state(store).await?;
        if let Verdict::Duplicate { base_offset } = producers.table.check(&batch)? {
            return Ok((PendingAppend::Duplicate { base_offset }, -1));
        }
        let (batch, append_time) = match config.timestamp_type {
            TimestampType::LogAppendTime => (batch.with_log_append_time(now_ms), now_ms),
            TimestampType::CreateTime => (batch, -1),
        };
        let producer_id = batch.producer_id();
        let queued = store.enqueue(self.stream, batch.clone()).await?;
        producers
            .table
            .record(&batch, queued.placement().base_offset);
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
                        // The append replayed the log already.
                        self.producers.lock().await.table.forget(producer_id);
                    }
                    Err(err.into())
                }
            },
        }
    }

    /// A copy of the producer table (DescribeProducers).
    pub async fn producers(&self, store: &StreamStore) -> Result<ProducerTable, StoreError> {
        Ok(self.producer_state(store).await?.table.clone())
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
        let mut table = {
            let state = self.producers.lock().await;
            if state.unreplayed.is_some() {
                // Not loaded yet, so unchanged: the persisted snapshot still holds,
                // and the log cannot have grown without an append replaying it.
                return Ok(None);
            }
            state.table.clone()
        };
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
            reloaded.producers.lock().await.unreplayed.is_none(),
            "the reload has log to replay past the snapshot"
        );
        assert_eq!(reloaded.snapshot_end.load(Ordering::Relaxed), 20);
    }

    #[tokio::test]
    async fn producer_state_is_replayed_at_the_first_append_not_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, meta) = store_on(dir.path()).await;
        let stream = store.create_stream().await.expect("create");
        let config = TopicOverrides::default().effective(&BrokerSection::default());
        let first = crate::topics::producers::tests::idempotent(7, 0, 0, 5);
        let partition = Partition::load(&store, meta.as_ref(), 0, stream)
            .await
            .expect("load");
        let (pending, _) = partition
            .append(&store, first.clone(), &config, 0)
            .await
            .expect("append");
        assert_eq!(partition.complete(pending).await.expect("durable"), 0);
        // No snapshot: a crash right after the append.
        drop(partition);

        let reloaded = Partition::load(&store, meta.as_ref(), 0, stream)
            .await
            .expect("reload");
        assert_eq!(
            reloaded.producers.lock().await.unreplayed,
            Some(0..5),
            "nothing replayed at load"
        );
        let (retry, _) = reloaded
            .append(&store, first, &config, 0)
            .await
            .expect("retried append");
        assert!(
            matches!(retry, PendingAppend::Duplicate { base_offset: 0 }),
            "the producer's retry is found a duplicate once the log is replayed"
        );
        assert_eq!(store.offsets(stream).expect("offsets"), (0, 5));
        let table = reloaded.producers(&store).await.expect("producers");
        assert_eq!(table.entries().count(), 1);
    }
}
