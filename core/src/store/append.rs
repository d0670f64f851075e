//! What an append hands back, and the bookkeeping that makes every placed append
//! settle whether or not its caller waits for it.
//!
//! An append is placed (its offsets fixed) before it is durable. Until it settles —
//! enters the log cache, or fails — its stream cannot be given up, and with the local
//! WAL its LSN holds the WAL's trim point. Settling must therefore not depend on the
//! caller polling [`QueuedAppend::durable`] to the end: a caller that drops it (a
//! timeout, a cancelled task) would otherwise leave a hole in the stream's
//! acknowledged prefix, so later appends of the stream, though acknowledged, would
//! stay unreadable and un-uploaded, and the WAL would never be trimmed again.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::sync::Notify;

use super::StoreError;

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    /// One past the batch's last offset.
    pub end_offset: u64,
}

type Settle = Pin<Box<dyn Future<Output = Result<Appended, StoreError>> + Send>>;

/// An append whose offsets are fixed and whose WAL write is under way.
#[must_use = "the batch is acknowledged only once `durable` resolves"]
pub struct QueuedAppend {
    appended: Appended,
    settle: FinishOnDrop,
    queued_at: std::time::Instant,
}

impl QueuedAppend {
    pub(super) fn new(appended: Appended, settle: Settle) -> Self {
        QueuedAppend {
            appended,
            settle: FinishOnDrop(Some(settle)),
            queued_at: std::time::Instant::now(),
        }
    }

    /// Where the batch will be once durable.
    pub fn placement(&self) -> Appended {
        self.appended
    }

    /// Resolves once the batch is durable (then it is acknowledged and readable), or
    /// with the error that kept it from being written. Dropped before then, the
    /// append still settles: the batch becomes readable if its write succeeds.
    pub async fn durable(self) -> Result<Appended, StoreError> {
        let result = self.settle.await;
        metrics::histogram!("strata_stream_append_duration_seconds")
            .record(self.queued_at.elapsed().as_secs_f64());
        result
    }
}

/// A settling future that, dropped before it finished, finishes in a task of its
/// own.
struct FinishOnDrop(Option<Settle>);

impl Future for FinishOnDrop {
    type Output = Result<Appended, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(settle) = self.0.as_mut() else {
            return Poll::Ready(Err(StoreError::Task(
                "append polled after it settled".to_string(),
            )));
        };
        let outcome = settle.as_mut().poll(cx);
        if outcome.is_ready() {
            self.0 = None;
        }
        outcome
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let Some(settle) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(settle);
            }
            // No runtime: the store's tasks are gone with it, and the next open
            // replays the WAL.
            Err(_) => tracing::warn!("an append dropped outside a runtime cannot settle"),
        }
    }
}

/// Appends of one stream placed and not yet settled.
#[derive(Default)]
pub(super) struct Unsettled {
    count: AtomicUsize,
    none_left: Notify,
}

impl Unsettled {
    /// Counts one more placed append until the returned guard drops.
    pub(super) fn placed(self: &Arc<Self>) -> SettleGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        SettleGuard(self.clone())
    }

    /// Resolves once no placed append of the stream is left unsettled.
    pub(super) async fn all_settled(&self) {
        loop {
            let none_left = self.none_left.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            none_left.await;
        }
    }
}

/// Held by a placed append until it entered the log cache or failed.
pub(super) struct SettleGuard(Arc<Unsettled>);

impl Drop for SettleGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}
