//! The object WAL: no local state. Appends of all streams gather for a window (or
//! until a size), then go out as one stream-set object; each append is acknowledged
//! after that PUT and its metadata commit. One PUT per window, whatever the number of
//! streams. Several windows are written at once and committed in order
//! ([`windows`]), each window closed on time by a [`clock`] thread.
//!
//! If a window's write fails, its appends fail, and so do those of the later windows
//! not yet committed and the appends queued behind them on the same streams (their
//! offsets may follow the failed ones); those streams' next offsets go back to their
//! committed ends, so offsets stay dense.

mod clock;
mod windows;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use super::append::SettleGuard;
use super::hedge::Hedger;
use super::metadata::StreamId;
use super::{Appended, OpenStream, StoreError};
use crate::batch::RecordBatch;
use crate::buffer_pool::BufferPool;

pub(super) use self::clock::start as start_clock;
pub(super) use self::windows::run;

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

/// Appends wait while this many windows' worth of bytes is gathered or written and
/// not yet committed (and at most half the log cache, below): a slow store must not
/// make the broker buffer without bound. Twelve 8 MiB windows, 96 MiB: enough that
/// the PUTs in flight can hold as much as the raw write keeps at the server (four
/// 16 MiB objects) while the next window gathers.
const UNCOMMITTED_WINDOWS: usize = 12;

pub(super) struct ObjectWal {
    options: ObjectWalOptions,
    /// Gathered plus uncommitted bytes at which appends wait.
    limit: usize,
    /// Gathered plus uncommitted bytes, published for the log cache: they are
    /// charged to its size, so the store's memory stays within the configured cache
    /// however much producers keep outstanding.
    queued: Arc<AtomicUsize>,
    queue: Mutex<Queue>,
    wake: Arc<Notify>,
    /// Signalled when gathered or uncommitted bytes go down: appends waiting for
    /// room may go on.
    room: Notify,
    hedger: Arc<Hedger>,
}

/// Appends not yet committed: those gathering for the next window, and how many
/// bytes the windows taken from it still hold.
#[derive(Default)]
struct Queue {
    /// Oldest first; windows are taken from the front, a backlog several at a time.
    gathered: VecDeque<Gathered>,
    gathered_bytes: usize,
    /// Bytes of windows taken and not yet committed or failed.
    taken_bytes: usize,
}

struct Gathered {
    stream: StreamId,
    batch: RecordBatch,
    done: oneshot::Sender<Result<(), Refused>>,
}

/// Why a queued append was not committed.
#[derive(Debug, Clone)]
pub(super) enum Refused {
    /// A newer owner took the stream.
    Fenced { stream: StreamId, epoch: u64 },
    /// Its window, or one before it, failed for this reason.
    Failed(String),
}

impl ObjectWal {
    /// An object WAL whose queued bytes count against a log cache of `cache_bytes`.
    pub(super) fn new(options: ObjectWalOptions, cache_bytes: usize) -> Self {
        // Half the cache at most: the other half keeps the committed tail for readers.
        let limit = options
            .max_bytes
            .saturating_mul(UNCOMMITTED_WINDOWS)
            .min(cache_bytes / 2)
            .max(options.max_bytes);
        ObjectWal {
            options,
            limit,
            queued: Arc::new(AtomicUsize::new(0)),
            queue: Mutex::new(Queue::default()),
            wake: Arc::new(Notify::new()),
            room: Notify::new(),
            hedger: Arc::new(Hedger::new(windows::MAX_WRITES)),
        }
    }

    pub(super) fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Gathered plus uncommitted bytes, kept current.
    pub(super) fn queued_bytes(&self) -> Arc<AtomicUsize> {
        self.queued.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, queue: &Queue) {
        self.queued
            .store(queue.gathered_bytes + queue.taken_bytes, Ordering::Relaxed);
    }

    /// Exports the queued bytes. Once per window taken or settled, not per append:
    /// a gauge sampled every window is what a scrape can show anyway.
    fn export_queued(&self, queue: &Queue) {
        metrics::gauge!("strata_object_wal_queued_bytes")
            .set((queue.gathered_bytes + queue.taken_bytes) as f64);
    }

    /// Takes the oldest gathered appends, up to the window size (at least one), as
    /// the next window; its bytes count as taken until [`ObjectWal::settled`] is
    /// called with them.
    ///
    /// Capped so that a backlog (appends that gathered while every write slot was
    /// busy) goes out as several windows written at once, not as one large PUT whose
    /// commit acknowledges every producer at the same moment: they would all send
    /// again at once, and the next window would again hold everything.
    fn take(&self) -> (Vec<Gathered>, usize) {
        let mut queue = self.lock();
        let mut bytes = 0;
        let mut count = 0;
        for appended in &queue.gathered {
            if bytes >= self.options.max_bytes {
                break;
            }
            bytes += appended.batch.len();
            count += 1;
        }
        queue.gathered_bytes -= bytes;
        queue.taken_bytes += bytes;
        self.export_queued(&queue);
        (queue.gathered.drain(..count).collect(), bytes)
    }

    /// A taken window of `bytes` was committed or failed: its room is free again.
    fn settled(&self, bytes: usize) {
        {
            let mut queue = self.lock();
            queue.taken_bytes = queue.taken_bytes.saturating_sub(bytes);
            self.publish(&queue);
            self.export_queued(&queue);
        }
        self.room.notify_waiters();
    }

    /// Removes the gathered appends of `stream` (they follow a failed write).
    fn remove_gathered(&self, stream: StreamId) -> VecDeque<Gathered> {
        let removed = {
            let mut queue = self.lock();
            let (removed, keep): (VecDeque<_>, VecDeque<_>) =
                queue.gathered.drain(..).partition(|g| g.stream == stream);
            queue.gathered = keep;
            queue.gathered_bytes -= removed.iter().map(|g| g.batch.len()).sum::<usize>();
            self.publish(&queue);
            self.export_queued(&queue);
            removed
        };
        self.room.notify_waiters();
        removed
    }

    async fn wait_for_room(&self) {
        let limit = self.limit;
        loop {
            let room = self.room.notified();
            let queued = {
                let queue = self.lock();
                queue.gathered_bytes + queue.taken_bytes
            };
            if queued < limit {
                return;
            }
            metrics::counter!("strata_stream_backpressure_total").increment(1);
            self.wake.notify_one();
            room.await;
        }
    }
}

/// A batch placed at its stream's end and queued for the next window.
pub(super) struct Queued {
    pub(super) appended: Appended,
    /// Says how the write of its window ended.
    pub(super) done: oneshot::Receiver<Result<(), Refused>>,
    /// Counts it unsettled until dropped.
    pub(super) settling: SettleGuard,
}

/// Places `batch` at the stream's end and queues it for the next window.
pub(super) async fn enqueue(
    wal: &ObjectWal,
    open: &Arc<OpenStream>,
    batch: RecordBatch,
    buffers: &BufferPool,
) -> Result<Queued, StoreError> {
    wal.wait_for_room().await;
    let mut next = open.next_offset.lock().await;
    open.check_accepts_appends()?;
    let settling = open.unsettled.placed();
    let placed = batch.placed_in(*next, buffers);
    let appended = Appended {
        base_offset: placed.base_offset(),
        end_offset: placed.end_offset(),
    };
    let (sender, done) = oneshot::channel();
    let full = {
        let mut queue = wal.lock();
        queue.gathered_bytes += placed.len();
        queue.gathered.push_back(Gathered {
            stream: open.id,
            batch: placed,
            done: sender,
        });
        wal.publish(&queue);
        queue.gathered_bytes >= wal.options.max_bytes
    };
    *next = appended.end_offset;
    if full {
        wal.wake.notify_one();
    }
    Ok(Queued {
        appended,
        done,
        settling,
    })
}

/// Resolves once the window holding a queued batch is committed.
pub(super) async fn durable(
    done: oneshot::Receiver<Result<(), Refused>>,
) -> Result<(), StoreError> {
    match done.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Refused::Fenced { stream, epoch })) => Err(StoreError::Fenced { stream, epoch }),
        Ok(Err(Refused::Failed(reason))) => Err(StoreError::ObjectWal(reason)),
        Err(_) => Err(StoreError::Task("the object WAL stopped".to_string())),
    }
}
