//! The object WAL: no local state. Appends of all streams gather for a window (or
//! until a size), then go out as one stream-set object; each append is acknowledged
//! after that PUT and its metadata commit. One PUT per window, whatever the number of
//! streams.
//!
//! If a window's write fails, its appends fail, and so do the appends already queued
//! behind them on the same streams (their offsets follow the failed ones); those
//! streams' next offsets go back to their committed ends, so offsets stay dense.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use super::cache::PendingStream;
use super::metadata::StreamId;
use super::{Appended, Inner, OpenStream, StoreError, upload};
use crate::batch::RecordBatch;

/// Settings of the object WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectWalOptions {
    /// How long appends gather before they are written.
    pub window: Duration,
    /// Write early once this many bytes gathered.
    pub max_bytes: usize,
}

impl Default for ObjectWalOptions {
    fn default() -> Self {
        ObjectWalOptions {
            window: Duration::from_millis(100),
            max_bytes: 8 << 20,
        }
    }
}

pub(super) struct ObjectWal {
    options: ObjectWalOptions,
    gathering: Mutex<Vec<Gathered>>,
    gathered_bytes: Mutex<usize>,
    wake: Arc<Notify>,
    /// Signalled when a window is taken: appends waiting for room may go on.
    taken: Notify,
}

/// Appends wait while this many windows' worth of bytes is gathered: a slow store
/// must not make the broker buffer without bound.
const MAX_GATHERED_WINDOWS: usize = 4;

struct Gathered {
    stream: StreamId,
    batch: RecordBatch,
    done: oneshot::Sender<Result<(), String>>,
}

impl ObjectWal {
    pub(super) fn new(options: ObjectWalOptions) -> Self {
        ObjectWal {
            options,
            gathering: Mutex::new(Vec::new()),
            gathered_bytes: Mutex::new(0),
            wake: Arc::new(Notify::new()),
            taken: Notify::new(),
        }
    }

    pub(super) fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Gathered>> {
        self.gathering.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Vec<Gathered> {
        let window = {
            let mut gathering = self.lock();
            *self
                .gathered_bytes
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = 0;
            std::mem::take(&mut *gathering)
        };
        self.taken.notify_waiters();
        window
    }

    async fn wait_for_room(&self) {
        let limit = self.options.max_bytes.saturating_mul(MAX_GATHERED_WINDOWS);
        loop {
            let taken = self.taken.notified();
            if *self
                .gathered_bytes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                < limit
            {
                return;
            }
            metrics::counter!("strata_stream_backpressure_total").increment(1);
            self.wake.notify_one();
            taken.await;
        }
    }
}

/// Places `batch` at the stream's end and waits for its window to be committed.
/// Queues `batch` for the next window; the receiver says how its write ended.
pub(super) async fn enqueue(
    wal: &ObjectWal,
    open: &Arc<OpenStream>,
    batch: RecordBatch,
) -> (Appended, oneshot::Receiver<Result<(), String>>) {
    wal.wait_for_room().await;
    let mut next = open.next_offset.lock().await;
    let placed = batch.with_base_offset(*next);
    let appended = Appended {
        base_offset: placed.base_offset(),
        end_offset: placed.end_offset(),
    };
    let (sender, done) = oneshot::channel();
    let len = placed.len();
    wal.lock().push(Gathered {
        stream: open.id,
        batch: placed,
        done: sender,
    });
    let full = {
        let mut bytes = wal.gathered_bytes.lock().unwrap_or_else(|p| p.into_inner());
        *bytes += len;
        *bytes >= wal.options.max_bytes
    };
    *next = appended.end_offset;
    if full {
        wal.wake.notify_one();
    }
    (appended, done)
}

/// Resolves once the window holding a queued batch is committed.
pub(super) async fn durable(done: oneshot::Receiver<Result<(), String>>) -> Result<(), StoreError> {
    match done.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(StoreError::ObjectWal(reason)),
        Err(_) => Err(StoreError::Task("the object WAL stopped".to_string())),
    }
}

/// Writes each window's appends as one object until the store is dropped.
///
/// Windows start at a fixed rate, not a window after the previous commit ended:
/// otherwise an append arriving just after a window was taken would wait for that
/// window's commit, a whole window, and its own commit.
pub(super) async fn run(store: Weak<Inner>, wake: Arc<Notify>, window: Duration) {
    let mut ticks = tokio::time::interval(window);
    // A commit longer than a window: the next window closes as soon as it ends.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = wake.notified() => {}
            _ = ticks.tick() => {}
        }
        let Some(inner) = store.upgrade() else { return };
        let super::Wal::Object(wal) = &inner.wal else {
            return;
        };
        let window = wal.take();
        if !window.is_empty() {
            commit_window(&inner, wal, window).await;
        }
    }
}

async fn commit_window(inner: &Inner, wal: &ObjectWal, window: Vec<Gathered>) {
    let mut pending: Vec<PendingStream> = Vec::new();
    for gathered in &window {
        match pending.iter_mut().find(|p| p.stream == gathered.stream) {
            Some(stream) => stream.batches.push(gathered.batch.clone()),
            None => pending.push(PendingStream {
                stream: gathered.stream,
                batches: vec![gathered.batch.clone()],
            }),
        }
    }
    let streams: Vec<StreamId> = pending.iter().map(|p| p.stream).collect();
    match upload::write_stream_set(inner, pending, upload::Grouping::Single).await {
        Ok(_) => {
            {
                let mut cache = inner.lock_cache();
                for gathered in &window {
                    cache.insert_committed(gathered.stream, gathered.batch.clone());
                }
            }
            for gathered in window {
                let _ = gathered.done.send(Ok(()));
            }
        }
        Err(err) => {
            let reason = err.to_string();
            metrics::counter!("strata_object_wal_failures_total").increment(1);
            tracing::warn!(error = %reason, appends = window.len(), "object WAL write failed; failing its appends");
            for gathered in window {
                let _ = gathered.done.send(Err(reason.clone()));
            }
            for stream in streams {
                rewind(inner, wal, stream, &reason).await;
            }
        }
    }
}

/// Fails the appends queued behind a failed window on `stream` and moves its next
/// offset back to the committed end.
async fn rewind(inner: &Inner, wal: &ObjectWal, stream: StreamId, reason: &str) {
    let Some(open) = inner.open_stream_state(stream) else {
        return;
    };
    let mut next = open.next_offset.lock().await;
    let behind: Vec<Gathered> = {
        let mut gathering = wal.lock();
        let (behind, keep): (Vec<_>, Vec<_>) =
            gathering.drain(..).partition(|g| g.stream == stream);
        *gathering = keep;
        behind
    };
    for gathered in behind {
        let _ = gathered.done.send(Err(format!(
            "an earlier write of this stream failed: {reason}"
        )));
    }
    *next = inner.lock_cache().acked_end(stream).unwrap_or(*next);
}
