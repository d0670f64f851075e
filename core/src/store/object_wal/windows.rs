//! Writing the object WAL's windows: several PUTs at once, commits in window order.
//!
//! Windows start at a fixed rate (or as soon as one is full), not a window after the
//! previous commit: otherwise an append arriving just after a window was taken would
//! wait for that window's commit, a whole window, and its own commit. Up to
//! [`MAX_WRITES`] windows are written at once. A window is committed, and its
//! appends acknowledged, only after every earlier window, so each stream's ranges are
//! committed in offset order; but a window whose PUT ended early frees its write slot
//! at once, so one slow PUT delays the commits behind it without also stopping the
//! writes behind it.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::clock::Ticks;
use super::{Gathered, ObjectWal, Refused};
use crate::store::cache::PendingStream;
use crate::store::commit::{self, Committed};
use crate::store::hedge;
use crate::store::metadata::StreamId;
use crate::store::upload::{self, WrittenSet};
use crate::store::{Inner, StoreError, Wal};

/// Window writes (PUTs) in flight at once, as many as the raw write baseline keeps.
/// Six and eight did no better on SeaweedFS: the server's throughput, not the number
/// of PUTs, was then the limit, and each PUT only took longer.
pub(super) const MAX_WRITES: usize = 4;

type WriteResult = Result<WrittenSet, StoreError>;

/// A window taken from the queue and not yet committed.
struct Window {
    seq: u64,
    gathered: Vec<Gathered>,
    bytes: usize,
    streams: Vec<StreamId>,
    /// How its write ended; `None` while it is being written.
    written: Option<WriteResult>,
}

enum Event {
    /// Time (or size) to take the next window.
    Window,
    /// The store is closing: write what is gathered, then end.
    Stop,
    /// The write of the window with this sequence number ended.
    Written(u64, WriteResult),
    /// The commit of these windows (front first) ended.
    Committed(Vec<Window>, Result<Committed, StoreError>),
}

/// Writes each window's appends as one object until the store is dropped.
///
/// Once `stop` is cancelled (the store is closing and refuses new appends), the
/// gathered appends go out as a last window and the loop ends when every window
/// taken is committed or failed.
pub(in crate::store) async fn run(
    store: Weak<Inner>,
    wake: Arc<Notify>,
    mut ticks: Ticks,
    stop: CancellationToken,
) {
    let mut windows: VecDeque<Window> = VecDeque::new();
    let mut writes = FuturesUnordered::new();
    // One commit at a time, so windows commit in order. It runs beside the loop, not
    // in it: a write slot freed while a commit waits for the metadata store's sync
    // takes the next window at once.
    let mut commits = FuturesUnordered::new();
    let mut next_seq = 0u64;
    let mut stopping = false;
    loop {
        let room = writes.len() < MAX_WRITES && !stopping;
        let event = tokio::select! {
            Some((group, outcome)) = commits.next(), if !commits.is_empty() => {
                Event::Committed(group, outcome)
            }
            Some((seq, written)) = writes.next(), if !writes.is_empty() => {
                Event::Written(seq, written)
            }
            () = wake.notified(), if room => Event::Window,
            Some(scheduled) = ticks.recv(), if room => {
                // A tick waits while every write slot is busy (a commit or PUT longer
                // than a window); the window then closes as soon as one frees.
                metrics::histogram!("strata_object_wal_window_close_delay_seconds")
                    .record(scheduled.elapsed().as_secs_f64());
                Event::Window
            }
            () = stop.cancelled(), if !stopping => Event::Stop,
        };
        let Some(inner) = store.upgrade() else { return };
        let Wal::Object(wal) = &inner.wal else { return };
        match event {
            Event::Window | Event::Stop => {
                stopping |= matches!(event, Event::Stop);
                // Everything gathered, in windows of at most the window size, as far
                // as write slots allow (all of it when closing).
                while writes.len() < MAX_WRITES || stopping {
                    let Some((seq, write)) = start(&inner, wal, &mut next_seq, &mut windows) else {
                        break;
                    };
                    writes.push(ended(seq, write));
                }
            }
            Event::Written(seq, written) => {
                if let Some(window) = windows.iter_mut().find(|w| w.seq == seq) {
                    window.written = Some(written);
                }
            }
            Event::Committed(group, outcome) => {
                settle(&inner, wal, group, outcome, &mut windows, &mut writes).await;
            }
        }
        if commits.is_empty()
            && let Some((group, sets)) = next_commit(&inner, wal, &mut windows, &mut writes).await
        {
            commits.push(commit_group(inner.clone(), group, sets));
        }
        if stopping && windows.is_empty() && commits.is_empty() {
            // Appends that passed the closing check just before it was set.
            let Some((seq, write)) = start(&inner, wal, &mut next_seq, &mut windows) else {
                return;
            };
            writes.push(ended(seq, write));
        }
    }
}

/// Takes what gathered as the next window (numbered from `next_seq`, queued behind
/// `windows`) and starts writing it as one object (hedged if it is slow); returns
/// its number and write, or `None` if nothing gathered.
fn start(
    inner: &Arc<Inner>,
    wal: &ObjectWal,
    next_seq: &mut u64,
    windows: &mut VecDeque<Window>,
) -> Option<(u64, JoinHandle<WriteResult>)> {
    let (gathered, bytes) = wal.take();
    if gathered.is_empty() {
        return None;
    }
    let mut pending: Vec<PendingStream> = Vec::new();
    for appended in &gathered {
        match pending.iter_mut().find(|p| p.stream == appended.stream) {
            Some(stream) => stream.batches.push(appended.batch.clone()),
            None => pending.push(PendingStream {
                stream: appended.stream,
                batches: vec![appended.batch.clone()],
            }),
        }
    }
    metrics::histogram!("strata_object_wal_window_bytes").record(bytes as f64);
    let streams = pending.iter().map(|p| p.stream).collect();
    let write = inner.tasks.spawn(hedge::write_window(
        inner.clone(),
        wal.hedger.clone(),
        pending,
    ));
    let seq = *next_seq;
    *next_seq += 1;
    windows.push_back(Window {
        seq,
        gathered,
        bytes,
        streams,
        written: None,
    });
    Some((seq, write))
}

/// Resolves with the window's sequence number when its write ends.
async fn ended(seq: u64, write: JoinHandle<WriteResult>) -> (u64, WriteResult) {
    let written = match write.await {
        Ok(written) => written,
        Err(err) => Err(StoreError::Task(err.to_string())),
    };
    (seq, written)
}

/// Takes the written windows at the front, in order, as the next group to commit,
/// with their written objects; `None` while the front window is still being written.
/// If the front window's write failed, it fails here, and every window behind it.
///
/// The windows written by then go in one metadata transaction: under load several
/// writes end while a commit runs, and one commit (one sync of the metadata store)
/// for all of them keeps commits from becoming the pipeline's narrowest step.
///
/// Called only while no commit runs: a failure rewinds streams to their committed
/// ends, which must not pass over a commit still in flight.
async fn next_commit<F>(
    inner: &Inner,
    wal: &ObjectWal,
    windows: &mut VecDeque<Window>,
    writes: &mut FuturesUnordered<F>,
) -> Option<(Vec<Window>, Vec<WrittenSet>)>
where
    F: Future<Output = (u64, WriteResult)>,
{
    let ready = windows
        .iter()
        .take_while(|w| matches!(w.written, Some(Ok(_))))
        .count();
    if ready == 0 {
        let failed = windows
            .front_mut()
            .and_then(|w| w.written.take_if(|written| written.is_err()));
        if let Some(Err(err)) = failed
            && let Some(window) = windows.pop_front()
        {
            fail_from(inner, wal, window, windows, writes, err).await;
        }
        return None;
    }
    let mut group: Vec<Window> = windows.drain(..ready).collect();
    let sets = group
        .iter_mut()
        .filter_map(|w| match w.written.take() {
            Some(Ok(set)) => Some(set),
            _ => None,
        })
        .collect();
    Some((group, sets))
}

/// Commits one group's objects in one transaction; resolves with the group.
async fn commit_group(
    inner: Arc<Inner>,
    group: Vec<Window>,
    sets: Vec<WrittenSet>,
) -> (Vec<Window>, Result<Committed, StoreError>) {
    let outcome = commit::commit(&inner, sets).await;
    (group, outcome)
}

/// A group's commit ended: its appends succeed (but those of streams a newer owner
/// took, which fail as fenced), or it fails with every window behind it.
async fn settle<F>(
    inner: &Inner,
    wal: &ObjectWal,
    group: Vec<Window>,
    outcome: Result<Committed, StoreError>,
    windows: &mut VecDeque<Window>,
    writes: &mut FuturesUnordered<F>,
) where
    F: Future<Output = (u64, WriteResult)>,
{
    match outcome {
        Ok(committed) => {
            for window in group {
                // Settled first: its bytes then count once, as cached, not also as
                // queued while the cache makes room for them.
                wal.settled(window.bytes);
                acknowledge(inner, window.gathered, &committed);
            }
        }
        Err(err) => fail_group(inner, wal, group, windows, writes, err).await,
    }
}

/// The commit of `group` failed: its windows fail, and every window behind them.
/// Their objects are not discarded here: a fenced commit's were, and a failed
/// commit's may have been committed.
async fn fail_group<F>(
    inner: &Inner,
    wal: &ObjectWal,
    group: Vec<Window>,
    windows: &mut VecDeque<Window>,
    writes: &mut FuturesUnordered<F>,
    err: StoreError,
) where
    F: Future<Output = (u64, WriteResult)>,
{
    let mut group = group.into_iter();
    let Some(first) = group.next() else {
        return;
    };
    for window in group.rev() {
        windows.push_front(window);
    }
    fail_from(inner, wal, first, windows, writes, err).await;
}

/// The window is committed: its batches become readable and its appends succeed,
/// but those of streams the commit left out as taken over, which fail.
fn acknowledge(inner: &Inner, gathered: Vec<Gathered>, committed: &Committed) {
    {
        let mut cache = inner.lock_cache();
        for appended in &gathered {
            if committed.fenced_stream(appended.stream).is_none() {
                cache.insert_committed(appended.stream, appended.batch.clone());
            }
        }
    }
    for appended in gathered {
        let outcome = match committed.fenced_stream(appended.stream) {
            Some(open) => Err(Refused::Fenced {
                stream: open.id,
                epoch: open.epoch,
            }),
            None => Ok(()),
        };
        let _ = appended.done.send(outcome);
    }
}

/// A window failed: its appends fail, and so do those of every later window not yet
/// committed (their objects are discarded). A later window may hold offsets that
/// follow the failed ones, and rewinding a stream while an earlier window of it is
/// still to be committed would hand its offsets out twice; failing them all keeps it
/// simple, and failures are rare. The affected streams' queued appends fail too and
/// their next offsets go back to their committed ends.
async fn fail_from<F>(
    inner: &Inner,
    wal: &ObjectWal,
    failed: Window,
    later: &mut VecDeque<Window>,
    writes: &mut FuturesUnordered<F>,
    err: StoreError,
) where
    F: Future<Output = (u64, WriteResult)>,
{
    let reason = err.to_string();
    metrics::counter!("strata_object_wal_failures_total").increment(1);
    tracing::warn!(
        error = %reason,
        appends = failed.gathered.len(),
        later_windows = later.len(),
        "object WAL write failed; failing its appends and those of later windows"
    );
    // Every later window is failed below, so wait for all their writes to end.
    while let Some((seq, written)) = writes.next().await {
        if let Some(window) = later.iter_mut().find(|w| w.seq == seq) {
            window.written = Some(written);
        }
    }
    let mut streams = failed.streams;
    fail_window(failed.gathered, &reason);
    wal.settled(failed.bytes);
    for window in later.drain(..) {
        if let Some(Ok(set)) = window.written {
            upload::discard_objects(inner, set).await;
        }
        streams.extend(window.streams);
        fail_window(
            window.gathered,
            &format!("an earlier object-WAL write failed: {reason}"),
        );
        wal.settled(window.bytes);
    }
    streams.sort_unstable();
    streams.dedup();
    for stream in streams {
        rewind(inner, wal, stream, &reason).await;
    }
}

fn fail_window(gathered: Vec<Gathered>, reason: &str) {
    for appended in gathered {
        let _ = appended.done.send(Err(Refused::Failed(reason.to_string())));
    }
}

/// Fails the appends queued behind a failed window on `stream` and moves its next
/// offset back to the committed end.
async fn rewind(inner: &Inner, wal: &ObjectWal, stream: StreamId, reason: &str) {
    let Some(open) = inner.open_stream_state(stream) else {
        return;
    };
    let mut next = open.next_offset.lock().await;
    for appended in wal.remove_gathered(stream) {
        let _ = appended.done.send(Err(Refused::Failed(format!(
            "an earlier write of this stream failed: {reason}"
        ))));
    }
    *next = inner.lock_cache().acked_end(stream).unwrap_or(*next);
}
