//! The stream store: append-only streams of record batches, made durable by a WAL
//! (a local file with group commit, or the object WAL's windows), served from a log
//! cache, and kept as stream-set and stream objects in the bucket.
//!
//! Guarantees:
//! - [`StreamStore::append`] resolves `Ok` only once the batch is durable: fsynced
//!   in the local WAL, or in a committed object with the object WAL. After a crash,
//!   recovery replays every local-WAL batch that was not yet in a committed object,
//!   so no acknowledged batch is lost, and none appears twice.
//! - Offsets of a stream are dense and assigned in the order appends are called.
//! - A stream has one owner at a time: opening it bumps its epoch, and every metadata
//!   commit compares the epoch, so a stale owner can never change it.

mod append;
mod background;
mod block_cache;
mod cache;
mod commit;
mod compaction;
mod compaction_copy;
mod compaction_reads;
mod compaction_round;
mod config;
mod error;
mod hedge;
mod lifecycle;
mod merge;
mod metadata;
mod object_ids;
mod object_ranges;
mod object_wal;
mod open;
mod pieces;
mod prefetch;
mod range_migration;
mod read;
mod retention;
mod startup;
mod upload;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use strata_backends::Storage;
use tokio::sync::Notify;

use crate::batch::RecordBatch;
use crate::buffer_pool::BufferPool;
use crate::meta::{Compare, MetaStore, Op, Txn};
use crate::wal::{LocalWal, WalError};

use self::append::Unsettled;
pub use self::append::{Appended, QueuedAppend};
use self::cache::LogCache;
pub use self::compaction::CompactionReport;
pub use self::config::{StoreConfig, WalMode};
pub use self::error::StoreError;
pub use self::merge::MergeReport;
pub use self::metadata::{ObjectRange, StoreMetaError, StreamId};
pub use self::object_wal::ObjectWalOptions;
pub use self::retention::{GcReport, RetentionPolicy};
use self::startup::encode_wal_record;

/// The stream store. Cheap to clone.
#[derive(Clone)]
pub struct StreamStore {
    inner: Arc<Inner>,
}

enum Wal {
    Local(LocalWal),
    Object(object_wal::ObjectWal),
}

struct Inner {
    storage: Storage,
    meta: Arc<dyn MetaStore>,
    wal: Wal,
    config: StoreConfig,
    cache: Mutex<LogCache>,
    streams: Mutex<HashMap<StreamId, Arc<OpenStream>>>,
    /// Wakes the uploader early; shared with the uploader task, which holds no
    /// strong reference to the store.
    upload_wanted: Arc<Notify>,
    /// Wakes appends waiting for room after an upload.
    uploaded: Notify,
    upload_lock: tokio::sync::Mutex<()>,
    /// Held by a merge or a compaction for its whole run. They copy without the
    /// streams' locks, so two at once (the maintenance round and a caller's
    /// `compact_all`) would copy the same groups, each holding its copies' memory,
    /// and one would discard its work at the commit.
    rewrite_job: tokio::sync::Mutex<()>,
    /// Builds uploads away from the threads that acknowledge appends.
    background: background::Background,
    indexes: read::IndexCache,
    blocks: block_cache::BlockCache,
    /// Permits for storage reads of cold fetches.
    cold_reads: tokio::sync::Semaphore,
    prefetches: prefetch::Prefetches,
    /// Ids for new objects, allocated ahead of their writes.
    object_ids: Arc<object_ids::ObjectIds>,
    /// Memory of appended batches, reused once the log cache drops them.
    batch_buffers: BufferPool,
    tasks: lifecycle::Tasks,
}

struct OpenStream {
    id: StreamId,
    epoch: u64,
    /// Serialises changes to this stream's ranges (retention, trim, deletion, and
    /// the commits of merges and compactions): each rewrites its ranges as the
    /// in-memory state lists them.
    maintenance: tokio::sync::Mutex<()>,
    /// Next offset to assign; held while an append is queued so offsets follow call order.
    next_offset: tokio::sync::Mutex<u64>,
    state: Mutex<StreamState>,
    /// Ranges starting below this were already handed to the prefetcher.
    prefetched_end: std::sync::atomic::AtomicU64,
    /// A newer owner took the stream (a commit found its epoch changed): appends are
    /// refused and what this store still holds of it is never committed.
    fenced: std::sync::atomic::AtomicBool,
    /// [`StreamStore::close_stream`] began: appends are refused.
    closing: std::sync::atomic::AtomicBool,
    /// Appends placed and not yet in the log cache or failed.
    unsettled: Arc<Unsettled>,
}

struct StreamState {
    start_offset: u64,
    retention: RetentionPolicy,
    /// Committed ranges by start offset.
    ranges: BTreeMap<u64, ObjectRange>,
}

impl StreamStore {
    /// Creates a new, empty stream and returns its id (not yet open).
    pub async fn create_stream(&self) -> Result<StreamId, StoreError> {
        let id = metadata::next_id(self.inner.meta.as_ref(), "c/stream", |id| {
            let stream = StreamId(id);
            vec![
                Op::put(metadata::epoch_key(stream), metadata::u64_value(0)),
                Op::put(metadata::start_key(stream), metadata::u64_value(0)),
            ]
        })
        .await?;
        Ok(StreamId(id))
    }

    /// Appends `batch` at the stream's end; resolves once it is durable.
    pub async fn append(
        &self,
        stream: StreamId,
        batch: RecordBatch,
    ) -> Result<Appended, StoreError> {
        self.enqueue(stream, batch).await?.durable().await
    }

    /// Places `batch` at the stream's end and queues it for the WAL; resolves once its
    /// offsets are fixed (waiting for room while too much is not yet uploaded).
    ///
    /// Appends queued one after another on a stream keep that order, so a caller that
    /// awaits `enqueue` in request order may wait for durability concurrently. The batch
    /// is acknowledged, and readable, only when [`QueuedAppend::durable`] resolves `Ok`.
    pub async fn enqueue(
        &self,
        stream: StreamId,
        batch: RecordBatch,
    ) -> Result<QueuedAppend, StoreError> {
        self.inner.tasks.check_open()?;
        let open = self
            .inner
            .open_stream_state(stream)
            .ok_or(StoreError::StreamNotOpen(stream))?;
        open.check_accepts_appends()?;
        let bytes = batch.len() as u64;
        let wal = match &self.inner.wal {
            Wal::Local(wal) => wal,
            Wal::Object(wal) => {
                let object_wal::Queued {
                    appended,
                    done,
                    settling,
                } = object_wal::enqueue(wal, &open, batch, &self.inner.batch_buffers).await?;
                let durable = async move {
                    let _settling = settling;
                    object_wal::durable(done).await?;
                    metrics::counter!("strata_stream_append_bytes_total").increment(bytes);
                    Ok(appended)
                };
                return Ok(QueuedAppend::new(appended, Box::pin(durable)));
            }
        };
        self.wait_for_room().await;
        let (placed, lsn, written, settling) = {
            let mut next = open.next_offset.lock().await;
            open.check_accepts_appends()?;
            let settling = open.unsettled.placed();
            let placed = batch.placed_in(*next, &self.inner.batch_buffers);
            let record = encode_wal_record(stream, &placed);
            // Reserve the LSN and queue under one lock, so LSNs match queue order.
            let (lsn, written) = {
                let mut cache = self.inner.lock_cache();
                (cache.reserve_lsn(), wal.append(record))
            };
            *next = placed.end_offset();
            (placed, lsn, written, settling)
        };
        let appended = Appended {
            base_offset: placed.base_offset(),
            end_offset: placed.end_offset(),
        };
        let inner = self.inner.clone();
        let fenced = open.fenced_error();
        let durable = async move {
            let _settling = settling;
            match written.await {
                Ok(written) if written == lsn => {}
                Ok(written) => {
                    inner.lock_cache().abandon(lsn);
                    return Err(StoreError::Wal(WalError::Failed(format!(
                        "WAL assigned {written:?}, expected {lsn:?}"
                    ))));
                }
                Err(err) => {
                    inner.lock_cache().abandon(lsn);
                    return Err(err.into());
                }
            }
            let unuploaded = {
                let mut cache = inner.lock_cache();
                if cache.is_taken_over(stream) {
                    // Fenced while in the WAL: never to be uploaded from here.
                    cache.abandon(lsn);
                    return Err(fenced);
                }
                cache.insert(stream, placed, lsn);
                cache.unuploaded_bytes()
            };
            metrics::counter!("strata_stream_append_bytes_total").increment(bytes);
            if unuploaded >= inner.config.upload_bytes {
                inner.upload_wanted.notify_one();
            }
            Ok(appended)
        };
        Ok(QueuedAppend::new(appended, Box::pin(durable)))
    }

    async fn wait_for_room(&self) {
        let mut blocked_since = None;
        loop {
            let waiting = self.inner.uploaded.notified();
            if self.inner.lock_cache().unuploaded_bytes() < self.inner.config.max_unuploaded_bytes {
                if let Some(since) = blocked_since {
                    metrics::histogram!("strata_stream_backpressure_seconds")
                        .record(std::time::Instant::elapsed(&since).as_secs_f64());
                }
                return;
            }
            if blocked_since.is_none() {
                blocked_since = Some(std::time::Instant::now());
                metrics::counter!("strata_stream_backpressure_total").increment(1);
            }
            self.inner.upload_wanted.notify_one();
            waiting.await;
        }
    }

    /// `start..end` of the stream: the first retained offset and one past the last
    /// acknowledged one.
    pub fn offsets(&self, stream: StreamId) -> Result<(u64, u64), StoreError> {
        let open = self
            .inner
            .open_stream_state(stream)
            .ok_or(StoreError::StreamNotOpen(stream))?;
        let start = open.lock_state().start_offset;
        let end = self.inner.lock_cache().acked_end(stream).unwrap_or(start);
        Ok((start, end))
    }

    /// Whole batches from `offset` on, about `max_bytes` (at least one batch if any
    /// exists at `offset`). Empty at the end of the stream.
    pub async fn fetch(
        &self,
        stream: StreamId,
        offset: u64,
        max_bytes: usize,
    ) -> Result<Vec<RecordBatch>, StoreError> {
        let (start, end) = self.offsets(stream)?;
        if offset < start || offset > end {
            return Err(StoreError::OffsetOutOfRange {
                stream,
                offset,
                start,
                end,
            });
        }
        if offset == end {
            return Ok(Vec::new());
        }
        if let Some(batches) = self.inner.lock_cache().read(stream, offset, max_bytes) {
            metrics::counter!("strata_log_cache_hits_total").increment(1);
            return Ok(batches);
        }
        metrics::counter!("strata_log_cache_misses_total").increment(1);
        read::from_objects(&self.inner, stream, offset, max_bytes).await
    }

    /// Moves the stream's start to `new_start`; earlier offsets are no longer read,
    /// and objects only they used become garbage.
    pub async fn trim(&self, stream: StreamId, new_start: u64) -> Result<(), StoreError> {
        let open = self
            .inner
            .open_stream_state(stream)
            .ok_or(StoreError::StreamNotOpen(stream))?;
        let (start, end) = self.offsets(stream)?;
        if new_start <= start {
            return Ok(());
        }
        if new_start > end {
            return Err(StoreError::OffsetOutOfRange {
                stream,
                offset: new_start,
                start,
                end,
            });
        }
        retention::move_start(&self.inner, &open, new_start).await
    }

    /// The first batch holding a record with a timestamp at or after `timestamp_ms`
    /// (Kafka's offset-for-time lookup), or `None` when no record is that late.
    ///
    /// Committed ranges carry their largest timestamp, so ranges wholly earlier are
    /// skipped without reading; the rest is read in order.
    pub async fn first_batch_at_or_after(
        &self,
        stream: StreamId,
        timestamp_ms: i64,
    ) -> Result<Option<RecordBatch>, StoreError> {
        let open = self
            .inner
            .open_stream_state(stream)
            .ok_or(StoreError::StreamNotOpen(stream))?;
        let (start, end) = self.offsets(stream)?;
        let mut offset = {
            let state = open.lock_state();
            let committed_end = state.ranges.values().map(|r| r.end_offset).max();
            state
                .ranges
                .values()
                .find(|r| r.end_offset > start && r.max_timestamp >= timestamp_ms)
                .map(|r| r.start_offset)
                .or(committed_end)
                .unwrap_or(start)
                .max(start)
        };
        while offset < end {
            let batches = match self.fetch(stream, offset, 1 << 20).await {
                Ok(batches) => batches,
                // Retention moved the start past us while we read: go on from there.
                Err(StoreError::OffsetOutOfRange { start, .. }) if offset < start => {
                    offset = start;
                    continue;
                }
                Err(err) => return Err(err),
            };
            let Some(last) = batches.last() else { break };
            let next = last.end_offset();
            if let Some(found) = batches
                .into_iter()
                .find(|b| b.end_offset() > offset && b.max_timestamp() >= timestamp_ms)
            {
                return Ok(Some(found));
            }
            offset = next;
        }
        Ok(None)
    }

    /// Deletes the stream: everything acknowledged is uploaded first (so no upload
    /// can follow the deletion), then its keys are removed and its ranges taken out
    /// of their objects' records in one transaction conditional on our epoch;
    /// objects left with no range become garbage.
    pub async fn delete_stream(&self, stream: StreamId) -> Result<(), StoreError> {
        let open = self
            .inner
            .open_stream_state(stream)
            .ok_or(StoreError::StreamNotOpen(stream))?;
        self.flush().await?;
        let _exclusive = open.maintenance.lock().await;
        let ranges: Vec<ObjectRange> = open.lock_state().ranges.values().copied().collect();
        object_ranges::commit_removal(self.inner.meta.as_ref(), &open, &ranges, || {
            Txn::new()
                .when(Compare::Value(
                    metadata::epoch_key(stream),
                    metadata::u64_value(open.epoch),
                ))
                .and_then(Op::Delete {
                    key: metadata::epoch_key(stream),
                })
                .and_then(Op::Delete {
                    key: metadata::start_key(stream),
                })
        })
        .await?;
        self.inner.lock_streams().remove(&stream);
        Ok(())
    }

    /// Bytes of the stream in committed objects (what retention by size counts).
    pub fn stream_bytes(&self, stream: StreamId) -> Result<u64, StoreError> {
        let open = self
            .inner
            .open_stream_state(stream)
            .ok_or(StoreError::StreamNotOpen(stream))?;
        Ok(open.lock_state().ranges.values().map(|r| r.bytes).sum())
    }

    /// Objects recorded in the metadata, `(kind, state) -> (count, bytes)`, with kind
    /// `stream-set` or `stream` and state `prepared`, `committed` or
    /// `marked-for-deletion`. Prepared objects are uploads in flight and what a crash
    /// left; the ids this store allocated ahead and holds unused are not counted.
    /// Reads every object record: for metrics, not hot paths.
    pub async fn object_counts(
        &self,
    ) -> Result<BTreeMap<(&'static str, &'static str), (u64, u64)>, StoreError> {
        let mut out = BTreeMap::new();
        let unused = self.inner.object_ids.unused();
        for kv in self
            .inner
            .meta
            .scan_prefix(metadata::OBJECTS_PREFIX, 0)
            .await?
        {
            if unused.contains(&metadata::parse_object_key(&kv.key)?) {
                continue;
            }
            let record = metadata::ObjectRecord::parse(&kv)?;
            let kind = match record.kind {
                crate::object::ObjectKind::StreamSet => "stream-set",
                crate::object::ObjectKind::Stream => "stream",
            };
            let state = match record.state {
                metadata::ObjectState::Prepared => "prepared",
                metadata::ObjectState::Committed => "committed",
                metadata::ObjectState::MarkedForDeletion { .. } => "marked-for-deletion",
            };
            let entry: &mut (u64, u64) = out.entry((kind, state)).or_default();
            entry.0 += 1;
            entry.1 += record.size;
        }
        Ok(out)
    }

    /// Sets the policy the background retention applies to `stream`.
    pub fn set_retention(
        &self,
        stream: StreamId,
        policy: RetentionPolicy,
    ) -> Result<(), StoreError> {
        let open = self
            .inner
            .open_stream_state(stream)
            .ok_or(StoreError::StreamNotOpen(stream))?;
        open.lock_state().retention = policy;
        Ok(())
    }

    /// Uploads everything acknowledged so far (for shutdown and tests).
    pub async fn flush(&self) -> Result<(), StoreError> {
        upload::upload_all(&self.inner).await
    }

    /// Bytes acknowledged but not yet in objects.
    pub fn unuploaded_bytes(&self) -> usize {
        self.inner.lock_cache().unuploaded_bytes()
    }
}

impl Inner {
    fn lock_cache(&self) -> MutexGuard<'_, LogCache> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_streams(&self) -> MutexGuard<'_, HashMap<StreamId, Arc<OpenStream>>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open_stream_state(&self, stream: StreamId) -> Option<Arc<OpenStream>> {
        self.lock_streams().get(&stream).cloned()
    }

    /// An id for a new object, with its prepared record stored; see `object_ids`.
    async fn new_object(
        &self,
        kind: crate::object::ObjectKind,
        size: u64,
    ) -> Result<(crate::object::ObjectId, metadata::ObjectRecord), StoreError> {
        self.object_ids
            .take(&self.meta, &self.tasks, kind, size)
            .await
    }
}

impl OpenStream {
    fn lock_state(&self) -> MutexGuard<'_, StreamState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_fenced(&self) -> bool {
        self.fenced.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the stream taken over; `true` the first time.
    fn fence(&self) -> bool {
        !self.fenced.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// Whether [`StreamStore::close_stream`] began: the stream is leaving this store.
    fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The lock that serialises merge, compaction and retention of this stream, or
    /// `None` once it is closing: a stream leaving this store is left alone.
    /// `close_stream` takes the lock itself after setting the flag, so a round that
    /// got it before runs to its end and none starts after.
    async fn maintenance(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let exclusive = self.maintenance.lock().await;
        (!self.is_closing()).then_some(exclusive)
    }

    /// Whether `ranges` are all still this stream's, as they were read: a merge or
    /// a compaction planned from them may commit.
    fn holds_ranges(&self, ranges: &[ObjectRange]) -> bool {
        let state = self.lock_state();
        ranges
            .iter()
            .all(|range| state.ranges.get(&range.start_offset) == Some(range))
    }

    /// `Err` once the stream is taken over or being closed.
    fn check_accepts_appends(&self) -> Result<(), StoreError> {
        if self.is_fenced() {
            return Err(self.fenced_error());
        }
        if self.is_closing() {
            return Err(StoreError::StreamClosing(self.id));
        }
        Ok(())
    }

    fn fenced_error(&self) -> StoreError {
        StoreError::Fenced {
            stream: self.id,
            epoch: self.epoch,
        }
    }
}

#[cfg(test)]
mod tests;
