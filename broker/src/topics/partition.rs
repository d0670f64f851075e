//! One partition: a stream of the store plus the producer state that guards it.

use std::sync::atomic::{AtomicBool, Ordering};

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

    /// Persists the producer state if it changed. Taken under the append lock, so
    /// the table and the end offset agree.
    pub async fn snapshot_producers(
        &self,
        store: &StreamStore,
        meta: &dyn MetaStore,
    ) -> Result<(), StoreError> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        // `end` first: every batch below it is durable and already in the table
        // cloned after; batches queued but not yet durable lie at or past `end` and
        // are dropped here, and loading replays the log from `end`, which brings them
        // back only if they were written.
        let (_, end) = store.offsets(self.stream)?;
        let mut table = self.producers.lock().await.clone();
        table.retain_below(end);
        let snapshot = ProducerSnapshot {
            end_offset: end,
            table,
        };
        let value = serde_json::to_vec(&snapshot).map_err(|e| StoreError::Task(e.to_string()))?;
        if let Err(err) = meta
            .put(snapshot_key(self.stream), Bytes::from(value))
            .await
        {
            self.dirty.store(true, Ordering::Relaxed);
            return Err(err.into());
        }
        Ok(())
    }

    /// Removes the persisted producer state (the partition is being deleted).
    pub async fn forget_snapshot(&self, meta: &dyn MetaStore) -> Result<(), StoreError> {
        meta.delete(snapshot_key(self.stream)).await?;
        Ok(())
    }
}
