//! The raw write and the store's unthrottled ingest, taking turns.
//!
//! A local directory's writes go through the page cache, and on the project's VM
//! the page cache is what sets their speed: the kernel hands free memory back to
//! the host (free page reporting) and every page it takes again is faulted in from
//! the host. Written through memory the kernel already holds, the same 16 MiB
//! objects go at 1,000-1,900 MiB/s; through memory just given back, at 180-450
//! (the disk itself takes 1,300-2,600 MiB/s with direct I/O, wherever it writes).
//! A write phase right after objects were removed, or after a phase that left
//! memory free, ran in one state or the other for seconds at a time: measured one
//! after the other, the raw write and the store's ingest each got their own mix,
//! and the ratio between them moved with it (64-106 % in runs of one build).
//! Taking turns of a few seconds, and removing nothing in between, both sides grow
//! the page cache the same way.

use std::time::{Duration, Instant};

use strata_core::store::StreamStore;

use super::Phase;
use super::memory::{Memory, PhasePeak};
use super::recorded::{BenchMetrics, Recorded};
use super::room::Room;
use super::workload::{Producers, RawWriter};

/// How long each side writes before the other takes over. Short, so that both
/// share the memory's fast and slow stretches (with 5 s turns one side still had a
/// fast turn the other did not: 60-99 % in ten runs; with 2 s,
/// 83-91 % in three); long against the store's pipeline: its first window fills
/// for tens of ms at a turn's start, and the last PUTs drain at the disk's speed.
const TURN: Duration = Duration::from_secs(2);

/// Both sides' figures, each over its own turns only.
pub(super) struct Turns {
    pub(super) raw: Phase,
    pub(super) ingest: Phase,
    /// The store's metrics in its turns (the raw writes go through the same
    /// metered operator).
    pub(super) recorded: Recorded,
    /// The memory peaks of the store's turns: the raw write's buffers are the
    /// bench's, not the store's.
    pub(super) peak: PhasePeak,
    pub(super) turns: usize,
    /// From the first turn's start to the last one's end: the span of both sides'
    /// `by_second`.
    pub(super) span: Duration,
}

/// `phase` of raw writes and `phase` of unthrottled appends, alternating after a
/// raw turn that is not counted. A store turn ends when everything appended in it
/// is uploaded: a local WAL's uploads belong to the ingest they follow, and must
/// not run in the raw write's turn. The raw objects stay until the caller reads them back: removed
/// between turns, they would hand the side after the removal the memory they held
/// (see the module's note). With `room` (a local directory), each pair of turns
/// starts only if what it would write still fits on the disk.
pub(super) async fn raw_write_and_ingest(
    raw: &mut RawWriter,
    store: &StreamStore,
    producers: &Producers<'_>,
    phase: Duration,
    metrics: &BenchMetrics,
    memory: &Memory,
    room: Option<&Room>,
) -> Result<Turns, String> {
    let turns = (phase.as_secs_f64() / TURN.as_secs_f64()).round().max(1.0) as u32;
    let turn = phase / turns;
    // Not counted: memory freed just before (the previous run's page cache, on a
    // local directory) is taken up fast by whoever writes first, before the kernel
    // hands it back; this turn takes it, so neither side's first turn does.
    // Checked object by object: before it, no rate is known to check a turn with.
    let warm_up = raw.write_for(turn, Instant::now(), room).await?;
    let clock = Instant::now();
    Recorded::since_last(metrics);
    let (mut raw_side, mut ingest) = (Phase::default(), Phase::default());
    let mut recorded = Recorded::default();
    let mut peak: Option<PhasePeak> = None;
    for done in 0..turns {
        if let Some(room) = room {
            let needed = next_pair(&warm_up, &raw_side, &ingest, turn);
            let what = format!("the next pair of turns ({done} of {turns} done)");
            room.ensure(needed, &what)?;
        }
        raw_side.absorb(raw.write_for(turn, clock, None).await?);
        Recorded::since_last(metrics);

        memory.reset();
        let started = Instant::now();
        let mut appended = producers.run(turn, None, clock).await?;
        store.flush().await.map_err(|e| e.to_string())?;
        appended.elapsed = started.elapsed();
        ingest.absorb(appended);
        recorded.absorb(Recorded::since_last(metrics));
        let this_turn = memory.peak("ingest");
        peak = Some(match peak {
            Some(before) => before.max(this_turn),
            None => this_turn,
        });
    }
    Ok(Turns {
        raw: raw_side,
        ingest,
        recorded,
        peak: peak.unwrap_or_else(|| memory.peak("ingest")),
        turns: turns as usize,
        span: clock.elapsed(),
    })
}

/// Bytes the next pair of turns would write, at the rates seen so far: the raw
/// write's including the warm-up turn, the store's (before its first turn) taken as
/// the raw write's, which it seldom exceeds. Only the next pair: the first turns
/// run through memory the kernel still holds, two to three times faster than the
/// rest, so a run's whole need cannot be told from them, but checked before every
/// pair the run stops before the disk fills.
fn next_pair(warm_up: &Phase, raw: &Phase, ingest: &Phase, turn: Duration) -> u64 {
    let rate = |bytes: u64, elapsed: Duration| bytes as f64 / elapsed.as_secs_f64().max(1e-3);
    let raw_rate = rate(warm_up.bytes + raw.bytes, warm_up.elapsed + raw.elapsed);
    let store_rate = if ingest.bytes == 0 {
        raw_rate
    } else {
        rate(ingest.bytes, ingest.elapsed)
    };
    ((raw_rate + store_rate) * turn.as_secs_f64()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrote(mib: u64, secs: u64) -> Phase {
        Phase {
            bytes: mib << 20,
            elapsed: Duration::from_secs(secs),
            ..Phase::default()
        }
    }

    #[test]
    fn room_for_the_next_pair_follows_the_rates_seen_so_far() {
        let turn = Duration::from_secs(2);
        // Before the store's first turn: both sides at the raw write's 100 MiB/s.
        let first = next_pair(&wrote(200, 2), &Phase::default(), &Phase::default(), turn);
        assert_eq!(first, 400 << 20);
        // Raw 300 MiB over 3 s (warm-up included), store 50 MiB/s.
        let later = next_pair(&wrote(200, 2), &wrote(100, 1), &wrote(100, 2), turn);
        assert_eq!(later, 300 << 20);
    }
}
