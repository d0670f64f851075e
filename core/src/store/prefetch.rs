//! Read-ahead across objects. A stream written through the object WAL, or uploaded
//! beside many others, has its data spread over many objects, a small range in each:
//! the read-ahead within an object (`read.rs`) then fetches little, and a sequential
//! reader waits on one small GET after another. Here the ranges that follow a
//! reader's position are fetched in the background, up to `read_ahead_bytes` ahead
//! of it, so that its next fetches find their blocks in the block cache.
//!
//! A reader that reaches a range still being fetched waits for that fetch instead of
//! issuing the same GET again. Prefetches take cold-read permits like any other
//! storage read, so they cannot crowd out uploads.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::{Semaphore, oneshot};

use super::metadata::{ObjectRange, StreamId};
use super::{Inner, OpenStream, StoreError, read};
use crate::object::{BlockEntry, ObjectId};

/// Resolves when a background fetch ends (or its task is dropped); readers that reach
/// its range wait on it. It holds nothing of the store: an entry left behind by a
/// task dropped mid-fetch (a runtime shutting down) cannot keep the store alive.
type Fetch = Shared<BoxFuture<'static, ()>>;

/// Background fetches in flight, by object and stream, and the permits that bound
/// them.
pub(super) struct Prefetches {
    in_flight: Mutex<HashMap<(ObjectId, StreamId), Fetch>>,
    /// Prefetches only start while a permit is free; they never queue, so a reader
    /// never waits behind fetches for other readers. Measured on SeaweedFS with
    /// eight readers: prefetching as deep as the cold-read budget (16) made cold
    /// reads of local-WAL objects slower, the server being the bottleneck.
    permits: Arc<Semaphore>,
}

impl Prefetches {
    pub(super) fn new(concurrency: usize) -> Self {
        Prefetches {
            in_flight: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(ObjectId, StreamId), Fetch>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    pub(super) fn is_idle(&self) -> bool {
        self.lock().is_empty()
    }

    /// Waits for the prefetch of `stream`'s range in `object`, if one is running:
    /// its blocks are about to be in the block cache.
    pub(super) async fn wait(&self, object: ObjectId, stream: StreamId) {
        let running = self.lock().get(&(object, stream)).cloned();
        if let Some(running) = running {
            running.await;
        }
    }
}

/// Starts fetching the ranges of `open` from offset `from` on, up to
/// `read_ahead_bytes` of them, as far as free permits allow. A sequential reader
/// hands each range over once: the stream remembers how far it scheduled. A reader
/// behind that point (a second reader, or one that went back) has its whole window
/// considered; ranges already in the block cache cost an index lookup, not a GET.
pub(super) fn schedule(inner: &Arc<Inner>, open: &OpenStream, from: u64) {
    let budget = inner.config.read_ahead_bytes as u64;
    let window: Vec<ObjectRange> = {
        let state = open.lock_state();
        let mut bytes = 0;
        state
            .ranges
            .range(from..)
            .map(|(_, range)| *range)
            .take_while(|range| {
                bytes += range.bytes;
                bytes <= budget
            })
            .collect()
    };
    let Some(window_end) = window.last().map(|range| range.end_offset) else {
        return;
    };
    let scheduled_end = open.prefetched_end.load(Ordering::Relaxed);
    let ahead = window
        .into_iter()
        .filter(|range| scheduled_end > window_end || range.start_offset >= scheduled_end);
    let mut in_flight = inner.prefetches.lock();
    let mut handed_over = None;
    for range in ahead {
        let key = (range.object, open.id);
        if in_flight.contains_key(&key) {
            continue;
        }
        let Ok(permit) = inner.prefetches.permits.clone().try_acquire_owned() else {
            break;
        };
        handed_over = Some(range.end_offset);
        let (finished, fetch_ended) = oneshot::channel::<()>();
        let fetch: Fetch = fetch_ended.map(drop).boxed().shared();
        in_flight.insert(key, fetch);
        let task = inner.clone();
        let stream = open.id;
        inner.tasks.spawn(async move {
            if let Err(err) = fetch_range(&task, stream, range).await {
                // The reader fetches the range itself and reports the error.
                tracing::debug!(object = %range.object, stream = stream.0, error = %err, "prefetch failed");
            }
            task.prefetches.lock().remove(&key);
            drop(permit);
            drop(finished);
        });
    }
    if let Some(end) = handed_over {
        open.prefetched_end.fetch_max(end, Ordering::Relaxed);
    }
}

/// Reads `stream`'s blocks of `range` into the block cache (one ranged GET).
async fn fetch_range(
    inner: &Inner,
    stream: StreamId,
    range: ObjectRange,
) -> Result<(), StoreError> {
    let index = read::load_index(inner, range.object).await?;
    let blocks: Vec<BlockEntry> = index
        .blocks_of(stream.0)
        .iter()
        .filter(|e| e.end_offset > range.start_offset && e.start_offset < range.end_offset)
        .copied()
        .collect();
    let Some(first) = blocks.first() else {
        return Ok(());
    };
    if inner.blocks.get((range.object, first.position)).is_some() {
        return Ok(());
    }
    let run = read::read_run(inner, range.object, &blocks, inner.config.read_ahead_bytes).await?;
    metrics::counter!("strata_read_ahead_blocks_total").increment(run.len() as u64);
    read::cache_blocks(inner, range.object, run);
    Ok(())
}
