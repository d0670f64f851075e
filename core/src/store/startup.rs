//! Opening a store: the WAL recovered and replayed (every acknowledged batch not
//! yet in an object goes back into the log cache and is uploaded), objects a crash
//! left uncommitted removed, and the background tasks started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes};
use strata_backends::Storage;
use tokio::sync::Notify;

use super::cache::LogCache;
use super::{
    Inner, StoreConfig, StoreError, StreamId, StreamStore, Wal, WalMode, background, block_cache,
    lifecycle, object_wal, prefetch, range_migration, read, retention, upload,
};
use crate::batch::RecordBatch;
use crate::buffer_pool::{BufferPool, Layout};
use crate::meta::MetaStore;
use crate::wal::{LocalWal, Lsn};

impl StreamStore {
    /// Opens the store: replays the WAL (every acknowledged batch not yet in an
    /// object goes back into the cache and is uploaded), removes objects a crash left
    /// uncommitted, and starts the background tasks (the uploader or the object WAL's
    /// window loop, and the maintenance round).
    pub async fn open(
        storage: Storage,
        meta: Arc<dyn MetaStore>,
        config: StoreConfig,
    ) -> Result<StreamStore, StoreError> {
        let (wal, recovered, first_lsn) = match config.wal_mode {
            WalMode::Local => {
                let (wal, recovered) = LocalWal::open(&config.wal_dir, config.wal).await?;
                let first = wal.first_lsn();
                (Wal::Local(wal), recovered, first)
            }
            WalMode::Object(options) => (
                Wal::Object(object_wal::ObjectWal::new(options, config.log_cache_bytes)),
                Vec::new(),
                Lsn(0),
            ),
        };
        let mut cache = LogCache::new(config.log_cache_bytes, first_lsn);
        if let Wal::Object(wal) = &wal {
            cache.charge(wal.queued_bytes());
        }
        // The log cache turns its batches over at the ingest rate; a quarter of its
        // size kept free covers what one eviction releases before appends reuse it.
        // The object WAL's cache drops batches in the order windows committed them,
        // about the order they were copied, so batches can share chunks; the local
        // WAL's uploads take one stream's backlog at a time, and a chunk would live
        // as long as the batch of its most lagging stream (the benchmark's
        // local-WAL ingest: 481 MiB live in chunks against 281 a buffer each).
        let layout = match config.wal_mode {
            WalMode::Object(_) => Layout::Carved,
            WalMode::Local => Layout::PerBatch,
        };
        let batch_buffers = BufferPool::new(config.log_cache_bytes / 4, layout);
        let blocks = block_cache::BlockCache::new(config.block_cache_bytes);
        let cold_reads = tokio::sync::Semaphore::new(config.cold_read_concurrency.max(1));
        // A quarter of the cold-read budget may go to reading ahead of readers.
        let config_prefetches = config.cold_read_concurrency / 4;
        let inner = Arc::new(Inner {
            storage,
            meta,
            wal,
            config,
            cache: Mutex::new(cache),
            streams: Mutex::new(HashMap::new()),
            upload_wanted: Arc::new(Notify::new()),
            uploaded: Notify::new(),
            upload_lock: tokio::sync::Mutex::new(()),
            rewrite_job: tokio::sync::Mutex::new(()),
            background: background::Background::start()?,
            indexes: read::IndexCache::new(1024),
            blocks,
            cold_reads,
            prefetches: prefetch::Prefetches::new(config_prefetches),
            object_ids: Arc::default(),
            batch_buffers,
            tasks: lifecycle::Tasks::new(),
        });
        let store = StreamStore { inner };
        range_migration::migrate_range_keys(store.inner.meta.as_ref()).await?;
        upload::remove_uncommitted_objects(&store.inner).await?;
        store.replay(recovered).await?;
        if store.inner.lock_cache().unuploaded_bytes() > 0 {
            upload::upload_all(&store.inner).await?;
        }
        let (inner, tasks) = (&store.inner, &store.inner.tasks);
        tasks.spawn(retention::run(
            Arc::downgrade(inner),
            inner.config.retention_interval,
            tasks.stop_signal(),
        ));
        match (&inner.wal, inner.config.wal_mode) {
            (Wal::Object(wal), WalMode::Object(options)) => {
                tasks.spawn(object_wal::run(
                    Arc::downgrade(inner),
                    wal.wake_handle(),
                    object_wal::start_clock(options.window)?,
                    tasks.stop_signal(),
                ));
            }
            _ => {
                tasks.spawn(upload::run(
                    Arc::downgrade(inner),
                    inner.upload_wanted.clone(),
                    inner.config.upload_interval,
                    tasks.stop_signal(),
                ));
            }
        }
        Ok(store)
    }

    async fn replay(&self, recovered: Vec<crate::wal::RecoveredRecord>) -> Result<(), StoreError> {
        let mut records = Vec::with_capacity(recovered.len());
        for record in recovered {
            let (stream, batch) = decode_wal_record(record.record)
                .ok_or(StoreError::MalformedWalRecord { lsn: record.lsn })?;
            records.push((stream, batch, record.lsn));
        }
        // Every stream in the WAL at once: one read of the object records for all.
        let streams: Vec<StreamId> = records.iter().map(|(stream, _, _)| *stream).collect();
        let mut deleted = std::collections::HashSet::new();
        for (stream, outcome) in self.open_each(&streams).await? {
            match outcome {
                Ok(()) => {}
                // Deleted after its records were written: nothing to bring back.
                Err(StoreError::UnknownStream(_)) => {
                    deleted.insert(stream);
                }
                Err(err) => return Err(err),
            }
        }
        let (mut replayed, mut uploaded) = (0usize, 0usize);
        for (stream, batch, lsn) in records {
            if deleted.contains(&stream) {
                continue;
            }
            let open = self
                .inner
                .open_stream_state(stream)
                .ok_or(StoreError::StreamNotOpen(stream))?;
            // Batches already in committed objects stay there.
            let end = batch.end_offset();
            {
                let mut cache = self.inner.lock_cache();
                if cache.is_uploaded(stream, end) {
                    uploaded += 1;
                } else {
                    cache.insert(stream, batch, lsn);
                    replayed += 1;
                }
            }
            let mut next = open
                .next_offset
                .try_lock()
                .map_err(|_| StoreError::StreamNotOpen(stream))?;
            *next = (*next).max(end);
        }
        if replayed > 0 {
            tracing::info!(
                batches = replayed,
                "replayed acknowledged batches from the WAL"
            );
        }
        if uploaded > 0 {
            tracing::debug!(
                batches = uploaded,
                "WAL records already in objects were left there"
            );
        }
        Ok(())
    }
}

/// `[stream id: u64 LE][batch]`.
pub(super) fn encode_wal_record(stream: StreamId, batch: &RecordBatch) -> Bytes {
    let mut out = Vec::with_capacity(8 + batch.len());
    out.put_u64_le(stream.0);
    out.extend_from_slice(batch.bytes());
    Bytes::from(out)
}

fn decode_wal_record(mut record: Bytes) -> Option<(StreamId, RecordBatch)> {
    if record.len() < 8 {
        return None;
    }
    let stream = StreamId(record.get_u64_le());
    RecordBatch::parse(record).ok().map(|batch| (stream, batch))
}
