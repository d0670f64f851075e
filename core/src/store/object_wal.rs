//! The object WAL: no local state. Appends of all streams gather for a window (or
//! until a size), then go out as one stream-set object; each append is acknowledged
//! after that PUT and its metadata commit. One PUT per window, whatever the number of
//! streams. A few windows are written at once and committed in order.
//!
//! If a window's write fails, its appends fail, and so do those of the later windows
//! in flight and the appends queued behind them on the same streams (their offsets
//! may follow the failed ones); those streams' next offsets go back to their
//! committed ends, so offsets stay dense.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::cache::PendingStream;
use super::hedge::{self, Hedger};
use super::metadata::StreamId;
use super::upload::{self, WrittenSet};
use super::{Appended, Inner, OpenStream, StoreError};
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
    hedger: Arc<Hedger>,
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
            hedger: Arc::new(Hedger::new()),
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

/// Windows written concurrently. A PUT takes most of a window's time; with one at a
/// time, a slow PUT also delays every window behind it and ingest is capped at one
/// window per PUT.
const MAX_WINDOWS_IN_FLIGHT: usize = 3;

/// A window taken from the gathering queue, its object being written.
struct InFlight {
    window: Vec<Gathered>,
    streams: Vec<StreamId>,
    write: JoinHandle<Result<WrittenSet, StoreError>>,
}

enum Event {
    /// Time (or size) to take the next window.
    Window,
    /// The store is closing: write what is gathered, then end.
    Stop,
    /// The oldest window in flight finished writing.
    Written(Result<WrittenSet, StoreError>),
}

/// Writes each window's appends as one object until the store is dropped.
///
/// Windows start at a fixed rate, not a window after the previous commit ended:
/// otherwise an append arriving just after a window was taken would wait for that
/// window's commit, a whole window, and its own commit. Up to
/// [`MAX_WINDOWS_IN_FLIGHT`] windows are written at once; they are committed, and
/// their appends acknowledged, strictly in window order, so each stream's ranges
/// are committed in offset order.
///
/// Once `stop` is cancelled (the store is closing and refuses new appends), the
/// gathered appends go out as a last window and the loop ends when every window in
/// flight is committed or failed.
pub(super) async fn run(
    store: Weak<Inner>,
    wake: Arc<Notify>,
    window: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(window);
    // A commit longer than a window: the next window closes as soon as it ends.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut stopping = false;
    loop {
        let room = in_flight.len() < MAX_WINDOWS_IN_FLIGHT && !stopping;
        let event = {
            let oldest = async {
                match in_flight.front_mut() {
                    Some(flight) => match (&mut flight.write).await {
                        Ok(written) => written,
                        Err(err) => Err(StoreError::Task(err.to_string())),
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                written = oldest => Event::Written(written),
                () = wake.notified(), if room => Event::Window,
                _ = ticks.tick(), if room => Event::Window,
                () = stop.cancelled(), if !stopping => Event::Stop,
            }
        };
        let Some(inner) = store.upgrade() else { return };
        let super::Wal::Object(wal) = &inner.wal else {
            return;
        };
        match event {
            Event::Window | Event::Stop => {
                stopping |= matches!(event, Event::Stop);
                let window = wal.take();
                if !window.is_empty() {
                    in_flight.push_back(start_write(&inner, wal, window));
                }
            }
            Event::Written(written) => {
                let Some(flight) = in_flight.pop_front() else {
                    continue;
                };
                let committed = match written {
                    Ok(set) => upload::commit_objects(&inner, set).await.map(drop),
                    Err(err) => Err(err),
                };
                match committed {
                    Ok(()) => acknowledge(&inner, flight.window),
                    Err(err) => fail_from(&inner, wal, flight, &mut in_flight, err).await,
                }
            }
        }
        if stopping && in_flight.is_empty() {
            // Appends that passed the closing check just before it was set.
            let window = wal.take();
            if window.is_empty() {
                return;
            }
            in_flight.push_back(start_write(&inner, wal, window));
        }
    }
}

/// Starts writing `window` as one object (hedged if it is slow).
fn start_write(inner: &Arc<Inner>, wal: &ObjectWal, window: Vec<Gathered>) -> InFlight {
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
    let write = inner.tasks.spawn(hedge::write_window(
        inner.clone(),
        wal.hedger.clone(),
        pending,
    ));
    InFlight {
        window,
        streams,
        write,
    }
}

/// The window is committed: its batches become readable and its appends succeed.
fn acknowledge(inner: &Inner, window: Vec<Gathered>) {
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

/// A window failed: its appends fail, and so do those of every later window in
/// flight (their objects are discarded). A later window may hold offsets that follow
/// the failed ones, and rewinding a stream while an earlier window of it is still to
/// be committed would hand its offsets out twice; failing them all keeps it simple,
/// and failures are rare. The affected streams' queued appends fail too and their
/// next offsets go back to their committed ends.
async fn fail_from(
    inner: &Inner,
    wal: &ObjectWal,
    failed: InFlight,
    in_flight: &mut VecDeque<InFlight>,
    err: StoreError,
) {
    let reason = err.to_string();
    metrics::counter!("strata_object_wal_failures_total").increment(1);
    tracing::warn!(
        error = %reason,
        appends = failed.window.len(),
        later_windows = in_flight.len(),
        "object WAL write failed; failing its appends and those of later windows"
    );
    let mut streams: Vec<StreamId> = failed.streams;
    fail_window(failed.window, &reason);
    while let Some(later) = in_flight.pop_front() {
        if let Ok(Ok(set)) = later.write.await {
            upload::discard_objects(inner, set).await;
        }
        streams.extend(later.streams);
        fail_window(
            later.window,
            &format!("an earlier object-WAL write failed: {reason}"),
        );
    }
    streams.sort_unstable();
    streams.dedup();
    for stream in streams {
        rewind(inner, wal, stream, &reason).await;
    }
}

fn fail_window(window: Vec<Gathered>, reason: &str) {
    for gathered in window {
        let _ = gathered.done.send(Err(reason.to_string()));
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
