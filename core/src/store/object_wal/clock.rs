//! The object WAL's window clock: a thread of its own that closes a window every
//! window length, on time.
//!
//! tokio's timers round a deadline up to the next millisecond, and its driver waits
//! for I/O in whole milliseconds: with a 20 ms `interval` the windows closed 1.3 ms
//! late at the median and 2.0 ms at p99 (50 MiB/s on a local directory), and every
//! append waited that much longer than its window. A thread sleeping to each
//! deadline wakes within the kernel's timer slack (tens of microseconds) of it.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::store::StoreError;

/// Receives each window's scheduled close.
pub(in crate::store) type Ticks = mpsc::Receiver<Instant>;

/// Starts the clock: every `window`, the scheduled instant goes to the returned
/// receiver. A tick not yet taken when the next is due is not doubled (the window
/// loop takes everything gathered when it gets to it, as with tokio's
/// `MissedTickBehavior::Delay`). The thread ends once the receiver is dropped.
pub(in crate::store) fn start(window: Duration) -> Result<Ticks, StoreError> {
    let (sender, ticks) = mpsc::channel(1);
    std::thread::Builder::new()
        .name("strata-wal-clock".to_string())
        .spawn(move || {
            let mut next = Instant::now() + window;
            loop {
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                match sender.try_send(next) {
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Closed(_)) => return,
                }
                // A late wake (a suspended machine) does not make a burst of ticks.
                next = (next + window).max(Instant::now());
            }
        })
        .map_err(|err| StoreError::Task(format!("cannot start the window clock: {err}")))?;
    Ok(ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ticks_come_a_window_apart() {
        let window = Duration::from_millis(5);
        let started = Instant::now();
        let mut ticks = start(window).expect("the clock starts");
        let mut previous = started;
        for _ in 0..3 {
            let at = ticks.recv().await.expect("a tick");
            assert!(at >= previous + window, "ticks closer than a window apart");
            assert!(Instant::now() >= at, "a tick delivered before its instant");
            previous = at;
        }
    }

    #[tokio::test]
    async fn ticks_not_taken_are_not_doubled() {
        let window = Duration::from_millis(50);
        let mut ticks = start(window).expect("the clock starts");
        // Four windows pass while the loop is busy (no write slot free).
        tokio::time::sleep(window * 4).await;
        assert!(ticks.try_recv().is_ok(), "the missed windows left no tick");
        assert!(
            ticks.try_recv().is_err(),
            "the missed windows left more than one tick"
        );
    }
}
