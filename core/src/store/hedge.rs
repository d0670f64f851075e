//! Hedged writes for the object WAL.
//!
//! Windows are committed in order, so one PUT that takes ten times its usual
//! latency (object stores have such outliers; a run on SeaweedFS showed a 1 s PUT
//! among 50 ms ones) holds every window behind it and sets the appends' tail. When a
//! window's write runs past the recent writes' p95 (and twice their median, see
//! [`Hedger::delay`]), the same data is written again
//! under a new object id; whichever write completes first is committed and the other
//! object is discarded once its write ends. Both writes have prepared records, so a
//! crash meanwhile leaves nothing behind that the next open does not remove.
//!
//! A few hedges at a time, as many as the object WAL writes at once: a store that
//! stalls some requests stalls several (SeaweedFS held three of four PUTs for
//! 1.25 s while the fourth and the next five took 70 ms each), and with one hedge
//! the others held every commit behind them. A hedge's slot is free again as soon
//! as one of its two writes succeeds; the loser may hang on for as long as the
//! stall. When the store is slow for every request, hedging them all would double
//! its load; the recent p95 then rises and hedges stop.
//!
//! The p95 of the last 32 writes, the second slowest: a single outlier does not
//! push every later hedge back by its own length (a 1 s PUT on SeaweedFS made the
//! next one wait a second before being hedged), and the delay follows the load
//! within a few seconds. Over the last 256 writes it did not: after a burst, whose
//! 8 MiB windows four at a time took 250–400 ms, the windows of a steady 50 MiB/s
//! (5 MiB, 40 ms) were hedged after 400 ms for half a minute.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_backends::Flush;
use tokio::task::JoinHandle;

use super::cache::PendingStream;
use super::upload::{self, Grouping, WrittenSet};
use super::{Inner, StoreError};

/// Writes remembered for the p95.
const SAMPLES: usize = 32;
/// Before this many writes are known there is no p95 to hedge on.
const MIN_SAMPLES: usize = 16;
/// Never hedge sooner: below this, a hedge costs more than the tail it would cut.
const MIN_DELAY: Duration = Duration::from_millis(10);

/// Recent window-write durations and how many hedges are in flight.
pub(super) struct Hedger {
    recent: Mutex<VecDeque<Duration>>,
    hedging: AtomicUsize,
    max_hedging: usize,
}

impl Hedger {
    /// At most `max_hedging` hedges at once (the object WAL's concurrent writes).
    pub(super) fn new(max_hedging: usize) -> Self {
        Hedger {
            recent: Mutex::new(VecDeque::with_capacity(SAMPLES)),
            hedging: AtomicUsize::new(0),
            max_hedging,
        }
    }

    fn record(&self, took: Duration) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == SAMPLES {
            recent.pop_front();
        }
        recent.push_back(took);
    }

    /// How long a write may run before it is hedged: the recent p95, but at least
    /// twice the recent median, or `None` while too few writes are known.
    ///
    /// A hedge only wins if it ends first, a median write after it starts: against
    /// writes that all take about as long, one hedged at the p95 never wins and is a
    /// second PUT for nothing. The p95 (the second slowest of 32) is passed by one
    /// write in sixteen by definition, so on SeaweedFS, whose 5 MiB PUTs took 45–60 ms
    /// with a p95 close to the median, 5–12 of ~110 windows in a phase were hedged
    /// and 1 won, and the hedges' load raised the store's PUT p99 from 61–66 ms
    /// (no hedging) to 83–196 ms. Twice the median leaves the writes that are
    /// stalled, not merely slower, to be hedged.
    fn delay(&self) -> Option<Duration> {
        let mut sorted: Vec<Duration> = {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() < MIN_SAMPLES {
                return None;
            }
            recent.iter().copied().collect()
        };
        sorted.sort_unstable();
        let p95 = sorted[(sorted.len() * 95).div_ceil(100) - 1];
        let median = sorted[sorted.len() / 2];
        Some(p95.max(median * 2).max(MIN_DELAY))
    }

    /// Takes a hedge slot if one is free; released when the returned guard drops.
    fn try_start(self: &Arc<Self>) -> Option<HedgeSlot> {
        self.hedging
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |hedging| {
                (hedging < self.max_hedging).then_some(hedging + 1)
            })
            .ok()
            .map(|_| HedgeSlot(self.clone()))
    }
}

struct HedgeSlot(Arc<Hedger>);

impl Drop for HedgeSlot {
    fn drop(&mut self) {
        self.0.hedging.fetch_sub(1, Ordering::AcqRel);
    }
}

type Write = JoinHandle<Result<WrittenSet, StoreError>>;

/// Writes `pending` as one object, hedged after [`Hedger::delay`].
pub(super) async fn write_window(
    inner: Arc<Inner>,
    hedger: Arc<Hedger>,
    pending: Vec<PendingStream>,
) -> Result<WrittenSet, StoreError> {
    let started = Instant::now();
    let mut first = spawn_write(&inner, pending.clone());
    let delay = hedger.delay();
    let hedge_at = async {
        match delay {
            Some(delay) => tokio::time::sleep(delay).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        written = &mut first => {
            hedger.record(started.elapsed());
            return joined(written);
        }
        () = hedge_at => {}
    }
    let Some(slot) = hedger.try_start() else {
        let written = first.await;
        hedger.record(started.elapsed());
        return joined(written);
    };
    metrics::counter!("strata_object_wal_hedged_writes_total").increment(1);
    tracing::debug!(
        after_ms = started.elapsed().as_millis() as u64,
        "object WAL write past its hedge delay; writing the window again"
    );
    let mut second = spawn_write(&inner, pending);
    tokio::select! {
        written = &mut first => {
            hedger.record(started.elapsed());
            settle(&inner, joined(written), second, slot).await
        }
        written = &mut second => {
            let outcome = joined(written);
            if outcome.is_ok() {
                metrics::counter!("strata_object_wal_hedge_wins_total").increment(1);
            }
            // The first write's duration is what the p95 is about, winner or not.
            let first = async move {
                let written = joined(first.await);
                hedger.record(started.elapsed());
                written
            };
            settle(&inner, outcome, inner.tasks.spawn(first), slot).await
        }
    }
}

/// One write has ended with `outcome`. If it succeeded, the hedge is decided (its
/// slot is free) and the other write's object is discarded whenever that write ends
/// (in the background: the window goes on now); if it failed, the other write
/// decides.
async fn settle(
    inner: &Arc<Inner>,
    outcome: Result<WrittenSet, StoreError>,
    other: Write,
    slot: HedgeSlot,
) -> Result<WrittenSet, StoreError> {
    if outcome.is_ok() {
        drop(slot);
        let task = inner.clone();
        inner.tasks.spawn(async move {
            if let Ok(set) = joined(other.await) {
                upload::discard_objects(&task, set).await;
            }
        });
        return outcome;
    }
    let fallback = joined(other.await);
    drop(slot);
    match fallback {
        Ok(set) => Ok(set),
        Err(_) => outcome,
    }
}

fn spawn_write(inner: &Arc<Inner>, pending: Vec<PendingStream>) -> Write {
    let task = inner.clone();
    // No WAL on the disk to protect, and appends wait for this write: one flush.
    inner.tasks.spawn(async move {
        upload::write_objects(&task, pending, Grouping::Single, Flush::Once).await
    })
}

fn joined(
    written: Result<Result<WrittenSet, StoreError>, tokio::task::JoinError>,
) -> Result<WrittenSet, StoreError> {
    written.unwrap_or_else(|err| Err(StoreError::Task(err.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_is_the_recent_p95_but_at_least_twice_the_median() {
        let hedger = Hedger::new(1);
        for _ in 0..MIN_SAMPLES - 1 {
            hedger.record(Duration::from_millis(40));
        }
        assert_eq!(hedger.delay(), None, "too few writes to know a p95");
        // One slow write among the last 32: the p95 (the second slowest) is a fast one.
        for i in 0..SAMPLES {
            let slow = i == 7;
            hedger.record(Duration::from_millis(if slow { 900 } else { 40 }));
        }
        assert_eq!(
            hedger.delay(),
            Some(Duration::from_millis(80)),
            "one outlier does not move the p95; writes that all take 40 ms are \
             hedged at twice that"
        );
        hedger.record(Duration::from_millis(900));
        assert_eq!(hedger.delay(), Some(Duration::from_millis(900)));
        // The older slow write leaves the window once 32 newer writes are known.
        for _ in 0..SAMPLES - 8 {
            hedger.record(Duration::from_millis(40));
        }
        assert_eq!(hedger.delay(), Some(Duration::from_millis(80)));
        for _ in 0..SAMPLES {
            hedger.record(Duration::from_micros(800));
        }
        assert_eq!(hedger.delay(), Some(MIN_DELAY), "never below the floor");
    }

    #[test]
    fn a_spread_out_tail_is_hedged_at_its_p95() {
        let hedger = Hedger::new(1);
        // Half the writes take 20 ms, the rest 30 to 180 ms: the p95 is past twice
        // the median.
        for i in 0..SAMPLES as u64 {
            let took = if i % 2 == 0 { 20 } else { 30 + 10 * (i / 2) };
            hedger.record(Duration::from_millis(took));
        }
        assert_eq!(hedger.delay(), Some(Duration::from_millis(170)));
    }

    #[test]
    fn hedges_in_flight_are_bounded() {
        let hedger = Arc::new(Hedger::new(2));
        let first = hedger.try_start().expect("free");
        let second = hedger.try_start().expect("free");
        assert!(hedger.try_start().is_none());
        drop(first);
        let third = hedger.try_start().expect("a slot was released");
        assert!(hedger.try_start().is_none());
        drop((second, third));
        assert!(hedger.try_start().is_some());
    }
}
