//! Group commit for the metadata log.
//!
//! A commit appends its frame and applies it under the state lock, then waits for
//! an fsync outside it. One thread at a time syncs (the leader); an fsync covers
//! every frame appended before it began, so commits that arrive while one runs share
//! the next. Before, each commit fsynced under the state lock: commits queued one
//! fsync each, and every read waited behind the fsync in progress.
//!
//! State applied but not yet synced is visible under the lock, so nothing may act
//! on it before it is durable: a commit's reply, a read's answer and a watch event
//! all wait until the log is synced past what they observed. Positions count bytes
//! appended since open, across log compactions (a compaction syncs everything it
//! folds into its snapshot).
//!
//! A failed fsync may have lost frames that others already observed in memory, and
//! retrying it proves nothing: the store then refuses every operation until it is
//! reopened from what the log holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::Shared;
use crate::meta::MetaError;

pub(super) struct Durability {
    /// Log position up to which everything is on disk.
    synced: AtomicU64,
    /// Why an fsync failed, once one has.
    failed: OnceLock<String>,
    /// Held by the thread that syncs; the others wait here and mostly find their
    /// frames synced when they get it.
    leader: Mutex<()>,
    syncs: AtomicU64,
}

impl Durability {
    pub(super) fn new() -> Self {
        Durability {
            synced: AtomicU64::new(0),
            failed: OnceLock::new(),
            leader: Mutex::new(()),
            syncs: AtomicU64::new(0),
        }
    }

    /// `Err` once the store has failed; then nothing it holds in memory is to be
    /// trusted.
    pub(super) fn check(&self) -> Result<(), MetaError> {
        match self.failed.get() {
            Some(reason) => Err(MetaError::SyncFailed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Whether everything before `position` is on disk.
    pub(super) fn covers(&self, position: u64) -> Result<bool, MetaError> {
        self.check()?;
        Ok(self.synced.load(Ordering::Acquire) >= position)
    }

    /// Marks the store failed (the first reason stays).
    pub(super) fn fail(&self, reason: String) -> MetaError {
        tracing::error!(reason = %reason, "metadata store failed; refusing every operation until it is reopened");
        let _ = self.failed.set(reason);
        MetaError::SyncFailed(self.failed.get().cloned().unwrap_or_default())
    }

    /// fsyncs of the log so far (commits share them).
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

impl Shared {
    /// Returns once everything appended to the log before `position` is on disk,
    /// syncing it if no other thread is about to. Blocks: call off the async
    /// workers.
    pub(super) fn make_durable(&self, position: u64) -> Result<(), MetaError> {
        let durability = &self.durability;
        if durability.covers(position)? {
            return Ok(());
        }
        let _leader = durability
            .leader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if durability.covers(position)? {
            return Ok(());
        }
        let (log, target) = {
            let inner = self.lock();
            (inner.log.clone(), inner.appended)
        };
        durability.syncs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_meta_log_syncs_total").increment(1);
        if let Err(err) = log.sync_data() {
            return Err(durability.fail(format!("fsync {}: {err}", self.path.display())));
        }
        durability.synced.fetch_max(target, Ordering::Release);
        // Only the leader publishes, so events go out in revision order.
        let ready = self.lock().take_events(target);
        for event in ready {
            // No receivers is fine: nobody watches.
            let _ = self.events.send(event);
        }
        Ok(())
    }
}
