//! The load a benchmark run puts on the raw operator and on the store.

use std::time::{Duration, Instant};

use futures::StreamExt;
use opendal::Buffer;
use strata_backends::Storage;
use strata_core::batch::RecordBatch;
use strata_core::store::{StreamId, StreamStore};

use super::room::{self, Room};
use super::{BySecond, Latencies, MIB, Phase};

/// An object of `bytes` holding `batch` back to back: the raw baselines write the
/// bytes the store writes. Their content matters to a server that compresses what it
/// stores (SeaweedFS wrote one repeated byte ~20 % faster than these batches).
fn object_of(batch: &RecordBatch, bytes: usize) -> Buffer {
    let batch = batch.bytes();
    let mut parts = vec![batch.clone(); bytes / batch.len()];
    parts.push(batch.slice(..bytes % batch.len()));
    Buffer::from(parts)
}

/// Latencies of `count` sequential PUTs of `bytes` each.
/// PUTs timed for the object WAL's latency bound.
pub(super) const WINDOW_PUTS: usize = 100;

/// [`WINDOW_PUTS`] PUTs of one window's data at `rate_mib`: the baseline of the
/// object WAL's append latency.
pub(super) async fn window_puts(
    storage: &Storage,
    batch: &RecordBatch,
    rate_mib: f64,
    window: Duration,
) -> Result<Phase, String> {
    let window_bytes = (rate_mib * MIB * window.as_secs_f64()) as usize;
    put_latencies(storage, batch, window_bytes.max(4096), WINDOW_PUTS).await
}

async fn put_latencies(
    storage: &Storage,
    batch: &RecordBatch,
    bytes: usize,
    count: usize,
) -> Result<Phase, String> {
    let body = object_of(batch, bytes);
    let started = Instant::now();
    let mut latencies = Latencies::default();
    for i in 0..count {
        let sent = Instant::now();
        storage
            .operator()
            .write(&format!("put-latency/{i}"), body.clone())
            .await
            .map_err(|e| format!("PUT: {e}"))?;
        latencies.record(sent.elapsed());
    }
    Ok(Phase {
        bytes: (bytes * count) as u64,
        elapsed: started.elapsed(),
        latencies,
        ..Phase::default()
    })
}

/// Writes dirty pages out and drops the kernel's clean page cache, so the next reads
/// of a local directory come from the disk.
pub(super) fn drop_page_cache() -> Result<(), String> {
    const CONTROL: &str = "/proc/sys/vm/drop_caches";
    let synced = std::process::Command::new("sync")
        .status()
        .map_err(|e| format!("--drop-page-cache: running `sync`: {e}"))?;
    if !synced.success() {
        return Err(format!("--drop-page-cache: `sync` exited with {synced}"));
    }
    std::fs::write(CONTROL, "1")
        .map_err(|e| format!("--drop-page-cache needs to write {CONTROL} (Linux, as root): {e}"))
}

/// The raw operator's large-object write: 16 MiB objects, four at a time, each
/// written whole before the next four start.
pub(super) struct RawWriter {
    op: opendal::Operator,
    object: Buffer,
    written: u64,
}

/// The raw objects' prefix: removed whole once read back.
const RAW: &str = "raw/";

impl RawWriter {
    pub(super) fn new(storage: &Storage, batch: &RecordBatch) -> Self {
        RawWriter {
            op: storage.operator().clone(),
            object: object_of(batch, 16 << 20),
            written: 0,
        }
    }

    /// Writes for `turn`; `by_second` counts from `clock`. With `room` (a local
    /// directory), every four objects start only if they fit beside a reserve.
    pub(super) async fn write_for(
        &mut self,
        turn: Duration,
        clock: Instant,
        room: Option<&Room>,
    ) -> Result<Phase, String> {
        let started = Instant::now();
        let mut write = Phase::default();
        while started.elapsed() < turn {
            if let Some(room) = room {
                let needed = 4 * self.object.len() as u64 + room::RESERVE;
                room.ensure(needed, "the raw write's next four objects")?;
            }
            self.write_four(&mut write, clock).await?;
        }
        write.elapsed = started.elapsed();
        Ok(write)
    }

    async fn write_four(&mut self, write: &mut Phase, clock: Instant) -> Result<(), String> {
        let keys: Vec<String> = (self.written..self.written + 4)
            .map(|i| format!("{RAW}{i:06}"))
            .collect();
        self.written += 4;
        let results =
            futures::future::join_all(keys.iter().map(|k| self.op.write(k, self.object.clone())))
                .await;
        for result in results {
            result.map_err(|e| format!("raw write: {e}"))?;
            write.bytes += self.object.len() as u64;
            write
                .by_second
                .add(clock.elapsed(), self.object.len() as u64);
        }
        Ok(())
    }

    /// Removes every object written so far: GiBs on a local directory, whose room
    /// and page cache the store's later phases need.
    async fn remove_all(&mut self) -> Result<(), String> {
        self.op
            .delete_with(RAW)
            .recursive(true)
            .await
            .map_err(|e| format!("removing the raw objects: {e}"))?;
        self.written = 0;
        Ok(())
    }

    /// The raw ranged-read throughput in MiB/s: the objects written so far read back
    /// in 1 MiB ranges four at a time for up to `phase`, then removed.
    pub(super) async fn read_throughput(
        &mut self,
        phase: Duration,
        drop_cache: bool,
    ) -> Result<f64, String> {
        if drop_cache {
            drop_page_cache()?;
        }
        let started = Instant::now();
        let mut read = 0u64;
        let reads = (0..self.written).flat_map(|i| (0..16u64).map(move |part| (i, part)));
        let op = &self.op;
        let mut in_flight = futures::stream::iter(reads)
            .map(|(i, part)| async move {
                op.read_with(&format!("{RAW}{i:06}"))
                    .range(part << 20..(part + 1) << 20)
                    .await
                    .map(|b| b.len() as u64)
            })
            .buffered(4);
        while let Some(result) = in_flight.next().await {
            read += result.map_err(|e| format!("raw read: {e}"))?;
            if started.elapsed() >= phase {
                break;
            }
        }
        let rate = read as f64 / MIB / started.elapsed().as_secs_f64();
        drop(in_flight);
        self.remove_all().await?;
        Ok(rate)
    }
}

/// One producer per stream, each with up to `in_flight` appends outstanding (a Kafka
/// producer's max.in.flight).
pub(super) struct Producers<'a> {
    pub(super) store: &'a StreamStore,
    pub(super) streams: &'a [StreamId],
    pub(super) batch: &'a RecordBatch,
    pub(super) in_flight: usize,
}

impl Producers<'_> {
    /// Appends for `phase` (and waits for what is outstanding then); `rate_mib`
    /// spreads a total rate over the streams. `by_second` counts from `clock`.
    pub(super) async fn run(
        &self,
        phase: Duration,
        rate_mib: Option<f64>,
        clock: Instant,
    ) -> Result<Phase, String> {
        let Producers {
            store,
            streams,
            batch,
            in_flight,
        } = *self;
        let started = Instant::now();
        let in_flight = in_flight.max(1);
        let interval = rate_mib.map(|rate| {
            let batches_per_sec = rate * MIB / batch.len() as f64 / streams.len() as f64;
            Duration::from_secs_f64(1.0 / batches_per_sec)
        });
        let bytes_each = batch.len() as u64;
        let count = streams.len() as u32;
        let producers: Vec<_> = streams
            .iter()
            .zip(0u32..)
            .map(|(&stream, index)| {
                let store = store.clone();
                let batch = batch.clone();
                tokio::spawn(async move {
                    let mut latencies = Latencies::default();
                    let mut by_second = BySecond::default();
                    // Spread over the interval, as independent producers are: started
                    // together they would append in one burst per interval, and with
                    // the object WAL's window equal to that interval every append's
                    // latency would hang on where the burst falls in the window.
                    let mut ticker = interval.map(|every| {
                        let first = tokio::time::Instant::now() + every * index / count;
                        let mut ticker = tokio::time::interval_at(first, every);
                        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        ticker
                    });
                    // Like a Kafka producer's max.in.flight: up to `in_flight` appends
                    // outstanding per stream.
                    let mut outstanding: futures::stream::FuturesUnordered<
                        tokio::task::JoinHandle<Result<Duration, String>>,
                    > = futures::stream::FuturesUnordered::new();
                    let mut done =
                        |latency: Result<Result<Duration, String>, tokio::task::JoinError>| {
                            latencies.record(latency.map_err(|e| e.to_string())??);
                            by_second.add(clock.elapsed(), bytes_each);
                            Ok::<_, String>(())
                        };
                    while started.elapsed() < phase {
                        if outstanding.len() >= in_flight
                            && let Some(latency) = outstanding.next().await
                        {
                            done(latency)?;
                        }
                        if let Some(ticker) = ticker.as_mut() {
                            ticker.tick().await;
                        }
                        let store = store.clone();
                        let batch = batch.clone();
                        let sent = Instant::now();
                        // Spawned, so the append starts now rather than when the set
                        // is next polled.
                        outstanding.push(tokio::spawn(async move {
                            store
                                .append(stream, batch)
                                .await
                                .map_err(|e| e.to_string())?;
                            Ok::<_, String>(sent.elapsed())
                        }));
                    }
                    while let Some(latency) = outstanding.next().await {
                        done(latency)?;
                    }
                    Ok::<_, String>((latencies, by_second))
                })
            })
            .collect();
        let mut latencies = Latencies::default();
        let mut by_second = BySecond::default();
        for producer in producers {
            let (produced, seconds) = producer.await.map_err(|e| e.to_string())??;
            latencies.merge(&produced);
            by_second.merge(seconds);
        }
        let bytes = latencies.count() * bytes_each;
        Ok(Phase {
            bytes,
            elapsed: started.elapsed(),
            latencies,
            by_second,
        })
    }
}

/// Reads every stream to its end, from its start or from `last` offsets before the
/// end, streams in parallel (8 at a time).
pub(super) async fn read_from(
    store: &StreamStore,
    streams: &[StreamId],
    max_bytes: usize,
    last: Option<u64>,
    readers: usize,
) -> Result<Phase, String> {
    let started = Instant::now();
    let mut readers = futures::stream::iter(streams.iter().copied())
        .map(|stream| {
            let store = store.clone();
            async move {
                let (start, end) = store.offsets(stream).map_err(|e| e.to_string())?;
                let mut offset = last.map_or(start, |last| end.saturating_sub(last).max(start));
                let mut bytes = 0u64;
                while offset < end {
                    let batches = store
                        .fetch(stream, offset, max_bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                    let Some(last) = batches.last() else { break };
                    offset = last.end_offset();
                    bytes += batches.iter().map(|b| b.len() as u64).sum::<u64>();
                }
                Ok::<u64, String>(bytes)
            }
        })
        .buffer_unordered(readers.max(1));
    let mut bytes = 0;
    while let Some(result) = readers.next().await {
        bytes += result?;
    }
    Ok(Phase {
        bytes,
        elapsed: started.elapsed(),
        ..Phase::default()
    })
}
