//! The store's background tasks, and how they end: [`StreamStore::close`]; and how
//! one stream leaves the store for its next owner: [`StreamStore::close_stream`].
//!
//! Every task the store spawns (uploader, object-WAL writer, maintenance rounds,
//! hedged writes, prefetches) is tracked, so closing can wait for all of them. Until
//! then a task may hold the store alive, and with it the WAL and metadata directory
//! locks: a maintenance round that went on after its store was dropped once committed
//! through a metadata store that a newer store had opened beside it.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{StoreError, StreamId, StreamStore, upload};

/// The store's spawned tasks and the signal that asks them to stop.
pub(super) struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
    /// Set by `close`: appends are refused from then on.
    closing: AtomicBool,
}

impl Tasks {
    pub(super) fn new() -> Self {
        Tasks {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            closing: AtomicBool::new(false),
        }
    }

    /// Spawns `task` as one of the store's, so that `close` waits for it.
    pub(super) fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Cancelled when the store closes. Long-running loops hold a clone (they keep
    /// no strong reference to the store between rounds); a round checks it between
    /// steps.
    pub(super) fn stop_signal(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// `Err(Closed)` once `close` has begun.
    pub(super) fn check_open(&self) -> Result<(), StoreError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }
}

impl StreamStore {
    /// Closes the store: new appends fail with [`StoreError::Closed`]; with the local
    /// WAL, everything acknowledged is uploaded (what cannot be stays in the WAL for
    /// the next open, and the error is returned); the object WAL writes the windows
    /// it holds; a maintenance round in progress stops after its current step. When
    /// this returns no background task is left, so dropping the last handle releases
    /// the WAL and metadata directories at once. (An object-WAL append that passed
    /// the closing check just before it and gathers after the last window fails when
    /// the store is dropped; it is never acknowledged.)
    pub async fn close(&self) -> Result<(), StoreError> {
        let tasks = &self.inner.tasks;
        tasks.closing.store(true, Ordering::Release);
        let uploaded = upload::upload_all(&self.inner).await;
        tasks.stop.cancel();
        tasks.tracker.close();
        tasks.tracker.wait().await;
        if let Err(err) = self
            .inner
            .object_ids
            .release(self.inner.meta.as_ref())
            .await
        {
            // Harmless: the next open removes prepared records with no object.
            tracing::warn!(error = %err, "closing: cannot delete the object ids allocated ahead");
        }
        if let Err(err) = &uploaded {
            tracing::warn!(error = %err, "closing: upload failed; the data stays in the WAL");
        }
        uploaded
    }

    /// Gives `stream` up, so that another store opening it finds every acknowledged
    /// batch: appends from now on fail with [`StoreError::StreamClosing`], those
    /// already placed settle (become durable or fail), everything acknowledged is
    /// uploaded, and maintenance of the stream in progress ends (none starts after);
    /// then the stream leaves this store, and its cached batches with it. Its epoch
    /// stays: the next owner's open bumps it.
    ///
    /// If an upload fails the error is returned and the stream stays here, refusing
    /// appends; calling again retries. A stream taken over meanwhile leaves this store
    /// and `Err(Fenced)` is returned.
    pub async fn close_stream(&self, stream: StreamId) -> Result<(), StoreError> {
        let open = self
            .inner
            .open_stream_state(stream)
            .ok_or(StoreError::StreamNotOpen(stream))?;
        {
            // Appends are placed under this lock and check the flag there: once it
            // is set, every append of the stream is either placed or refused.
            let _placing = open.next_offset.lock().await;
            open.closing.store(true, Ordering::Release);
        }
        open.unsettled.all_settled().await;
        upload::upload_all(&self.inner).await?;
        let _maintenance = open.maintenance.lock().await;
        self.inner.lock_streams().remove(&stream);
        let dropped = self.inner.lock_cache().close_stream(stream);
        // Freed outside the cache lock, which every append takes.
        drop(dropped);
        metrics::counter!("strata_stream_closed_total").increment(1);
        tracing::info!(stream = stream.0, epoch = open.epoch, "stream closed");
        if open.is_fenced() {
            return Err(open.fenced_error());
        }
        Ok(())
    }
}
