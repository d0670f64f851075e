//! `strata bench store`: the stream store against the raw operator, in one run.
//!
//! Prints, for the configured backend: the store's append throughput and latency
//! percentiles at a fixed rate, then unthrottled in turns with the raw operator's
//! large-object write (`turns`); the raw operator's ranged-read throughput;
//! tail-read and cold-read throughput; object store requests per GiB ingested; and
//! the process's peak RSS.

mod by_second;
mod latencies;
mod memory;
pub mod meta;
mod recorded;
mod room;
mod targets;
mod turns;
mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_backends::config::BackendConfig;
use strata_backends::{Storage, StorageConfig, StorageKind};
use strata_core::batch::synthetic_batch;
use strata_core::meta::{EmbeddedMetaStore, EmbeddedOptions, MetaStore, MeteredMetaStore};
use strata_core::store::{ObjectWalOptions, StoreConfig, StreamId, StreamStore, WalMode};

/// Knobs of one benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Streams appended to concurrently (one producer each).
    #[arg(long, default_value_t = 64)]
    pub streams: usize,
    /// Records of 1 KiB per batch.
    #[arg(long, default_value_t = 16)]
    pub records_per_batch: u32,
    /// Target rate of the fixed-rate phase, MiB/s.
    #[arg(long, default_value_t = 50.0)]
    pub rate_mib: f64,
    /// Appends outstanding per stream (a producer's max.in.flight).
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    /// Use the object WAL with this window (ms) instead of the local WAL.
    #[arg(long)]
    pub object_wal_window_ms: Option<u64>,
    /// With the object WAL: a window is written early once this many MiB gathered
    /// (the `[wal] window_bytes` setting; default the store's).
    #[arg(long)]
    pub object_wal_window_mib: Option<usize>,
    /// Streams read concurrently in the read phases (each read start to end).
    #[arg(long, default_value_t = 8)]
    pub readers: usize,
    /// Drop the kernel's page cache before the raw read and each cold read (Linux,
    /// root): on a local directory the reads then come from the disk, as reads of
    /// data older than the page cache do, not from memory the writes just filled.
    #[arg(long)]
    pub drop_page_cache: bool,
}

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Default)]
struct Phase {
    bytes: u64,
    elapsed: Duration,
    latencies: Latencies,
    by_second: BySecond,
}

impl Phase {
    fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / MIB / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        self.latencies.quantile(p)
    }

    /// Adds a later part of the same phase (`by_second` on the same clock).
    fn absorb(&mut self, part: Phase) {
        self.bytes += part.bytes;
        self.elapsed += part.elapsed;
        self.latencies.merge(&part.latencies);
        self.by_second.merge(part.by_second);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The same backend with every key under `sub`, so a run never touches other data.
fn under(config: &StorageConfig, sub: &str) -> StorageConfig {
    let mut config = config.clone();
    match &mut config.backend {
        BackendConfig::Fs(fs) => fs.root = fs.root.join(sub),
        BackendConfig::S3(s3) => s3.root = format!("{}/{sub}", s3.root.trim_end_matches('/')),
        BackendConfig::Hdfs(hdfs) => {
            hdfs.root = format!("{}/{sub}", hdfs.root.trim_end_matches('/'))
        }
        BackendConfig::Memory(_) => {}
    }
    config
}

use by_second::BySecond;
use latencies::Latencies;
use memory::{Memory, PhasePeak};
pub(super) use recorded::install_recorder;
use recorded::{BenchMetrics, Recorded};
use room::Room;
use turns::Turns;
use workload::{Producers, RawWriter, WINDOW_PUTS, drop_page_cache, read_from, window_puts};

pub(super) async fn run(
    storage_config: &StorageConfig,
    args: BenchArgs,
    metrics: BenchMetrics,
) -> Result<(), String> {
    let unique = format!("strata-bench-{}-{}", std::process::id(), strata_core_now());
    let config = under(storage_config, &unique);
    let storage = Storage::open(&config).map_err(|e| e.to_string())?;
    let batch_payload = args.records_per_batch as usize * 1024;
    let wal = args
        .object_wal_window_ms
        .map_or("local".to_string(), |ms| format!("object ({ms} ms window)"));
    println!(
        "strata bench store: kind={} wal={wal} streams={} batch={} KiB ({} x 1 KiB records), {} s per phase",
        storage.kind(),
        args.streams,
        batch_payload / 1024,
        args.records_per_batch,
        args.seconds
    );

    // Both sides' data stays on a local directory's disk through the turns.
    let room = match &config.backend {
        BackendConfig::Fs(fs) => Some(Room::new(&fs.root)),
        _ => None,
    };
    let measured = measure(&storage, &args, &metrics, room.as_ref()).await;
    // Whatever the run wrote goes, however it ended: a failed phase left tens of GiB.
    let cleanup = storage
        .operator()
        .delete_with("/")
        .recursive(true)
        .await
        .map_err(|e| format!("cleanup: {e}"));
    measured.and(cleanup)
}

/// The phases of one run, printing as they go.
async fn measure(
    storage: &Storage,
    args: &BenchArgs,
    metrics: &BenchMetrics,
    room: Option<&Room>,
) -> Result<(), String> {
    let phase_time = Duration::from_secs(args.seconds);
    let batch_payload = args.records_per_batch as usize * 1024;
    let batch = synthetic_batch(
        args.records_per_batch,
        batch_payload - strata_core::batch::HEADER_LEN,
        0,
    );
    let mut raw = RawWriter::new(storage, &batch);
    let memory = Memory::start();
    let mut peaks = Vec::new();

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let meta: Arc<dyn MetaStore> = Arc::new(MeteredMetaStore::new(
        EmbeddedMetaStore::open(&dir.path().join("meta"), EmbeddedOptions::default())
            .await
            .map_err(|e| e.to_string())?,
    ));
    let mut store_config = StoreConfig::new(dir.path().join("wal"));
    let mut window_put_p99 = None;
    if let Some(window_ms) = args.object_wal_window_ms {
        let window = Duration::from_millis(window_ms);
        store_config.wal_mode = WalMode::Object(ObjectWalOptions {
            window,
            max_bytes: args
                .object_wal_window_mib
                .map_or(ObjectWalOptions::default().max_bytes, |mib| mib << 20),
        });
        let puts = window_puts(storage, &batch, args.rate_mib, window).await?;
        println!(
            "  raw PUT of one window ({} KiB)  p50 {:>7.2} ms  p99 {:>7.2} ms  ({WINDOW_PUTS} PUTs)",
            puts.bytes / WINDOW_PUTS as u64 / 1024,
            ms(puts.percentile(0.50)),
            ms(puts.percentile(0.99))
        );
        println!("  object WAL window           {:>7.2} ms", ms(window));
        window_put_p99 = Some(puts.percentile(0.99));
    }
    let cache_bytes = store_config.log_cache_bytes;
    let block_cache_bytes = store_config.block_cache_bytes;
    let store = StreamStore::open(storage.clone(), meta.clone(), store_config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut streams = Vec::with_capacity(args.streams);
    for _ in 0..args.streams {
        let id = store.create_stream().await.map_err(|e| e.to_string())?;
        store.open_stream(id).await.map_err(|e| e.to_string())?;
        streams.push(id);
    }

    let producers = Producers {
        store: &store,
        streams: &streams,
        batch: &batch,
        in_flight: args.in_flight,
    };
    // The fixed rate first, on a quiet machine, as a broker at that load runs: after
    // the unthrottled phase a local directory is still writing back (a window's
    // PUT p99 went from 1.9 to 4.4 ms) and its page cache is full of the phase.
    Recorded::since_last(metrics);
    memory.reset();
    let paced = producers
        .run(phase_time, Some(args.rate_mib), Instant::now())
        .await?;
    let during_paced = Recorded::since_last(metrics);
    store.flush().await.map_err(|e| e.to_string())?;
    let after_paced = Recorded::since_last(metrics);
    let paced_peak = memory.peak("ingest");
    // Each store turn ends flushed: its uploads are its own.
    let Turns {
        raw: raw_write,
        ingest: full,
        recorded: during_full,
        turns,
        span,
        peak: turns_peak,
    } = turns::raw_write_and_ingest(
        &mut raw, &store, &producers, phase_time, metrics, &memory, room,
    )
    .await?;
    let ingestion = [during_full, during_paced, after_paced];
    let raw_write_rate = raw_write.mib_per_sec();
    println!(
        "  raw operator     write {:>8.1} MiB/s in turns ({turns} of {:.1} s, alternating with the store's unthrottled appends)",
        raw_write_rate,
        (phase_time / turns as u32).as_secs_f64()
    );
    println!(
        "    raw write by second:   {} MiB/s",
        raw_write.by_second.line(span)
    );
    // The raw write's objects read back (the ranged-read baseline), then removed.
    // Its buffers are the bench's, not the store's: left out of the ingest peak.
    let raw_read = raw
        .read_throughput(phase_time, args.drop_page_cache)
        .await?;
    memory.reset();
    println!(
        "  raw operator     read  {:>8.1} MiB/s (1 MiB ranged reads, 4 in flight)",
        raw_read
    );
    let total = |count: &dyn Fn(&Recorded) -> u64| ingestion.iter().map(count).sum::<u64>();
    // A PUT is one object written; on a local directory an upload is written in
    // synced pieces, so the operator's write calls are reported beside it.
    let objects = total(&|r| r.counter("strata_upload_objects_total"));
    let write_calls = total(&|r| r.operations("write"));
    let meta_bytes = total(&|r| r.counter("strata_meta_log_bytes_total"));
    let ingested_gib = (full.bytes + paced.bytes) as f64 / (MIB * 1024.0);
    for (name, phase) in [("unthrottled", &full), ("fixed rate", &paced)] {
        println!(
            "  append {:<11} {:>8.1} MiB/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms  ({} appends)",
            name,
            phase.mib_per_sec(),
            ms(phase.percentile(0.50)),
            ms(phase.percentile(0.99)),
            ms(phase.percentile(0.999)),
            phase.latencies.count()
        );
    }
    println!(
        "    unthrottled by second: {} MiB/s",
        full.by_second.line(span)
    );
    let object_wal_bound = args
        .object_wal_window_ms
        .zip(window_put_p99)
        .map(|(window_ms, put_p99)| Duration::from_millis(window_ms) + 2 * put_p99);
    if let Some(bound) = object_wal_bound {
        println!(
            "    bound at fixed rate: window + 2 PUT p99s {:>7.2} ms: {}",
            ms(bound),
            if paced.percentile(0.99) <= bound {
                "met"
            } else {
                "not met"
            }
        );
    }
    let ingest_share = 100.0 * full.mib_per_sec() / raw_write_rate;
    println!("  ingest vs raw write          {ingest_share:>6.0} %");
    let fsyncs = ingestion[1].durations("strata_wal_fsync_seconds");
    print_timings("WAL write+fsync at fixed rate  ", &fsyncs, "group commits");
    // Stalls of the store itself, beside the appends' latency: a slow PUT (or a slow
    // synced piece on a local directory) holds every append waiting for it.
    for (name, recorded) in [
        ("unthrottled", &ingestion[0]),
        ("fixed rate", &ingestion[1]),
    ] {
        let writes = recorded.operation_durations("write");
        print_timings(
            &format!("object-store writes, {name:<11} "),
            &writes,
            "calls",
        );
        // Every commit waits for a metadata transaction, synced to the local disk.
        let commits = recorded.meta_durations("txn");
        print_timings(
            &format!("metadata commits, {name:<11}     "),
            &commits,
            "transactions",
        );
        if args.object_wal_window_ms.is_none() {
            println!(
                "  upload rounds behind the WAL, {:<11} {} (objects flushed at once, not in paced pieces)",
                name,
                recorded.counter("strata_upload_rounds_behind_total")
            );
        } else {
            println!(
                "  object WAL hedged writes, {:<11} {} ({} won by the second write)",
                name,
                recorded.counter("strata_object_wal_hedged_writes_total"),
                recorded.counter("strata_object_wal_hedge_wins_total")
            );
            // Part of every append's wait beyond its window: how late windows close.
            let closes = recorded.durations("strata_object_wal_window_close_delay_seconds");
            print_timings(
                &format!("window close delay, {name:<11}    "),
                &closes,
                "closed by the clock",
            );
        }
    }
    let puts_per_gib = objects as f64 / ingested_gib;
    println!(
        "  PUTs per GiB ingested        {:>8.1}  ({} objects, {:.2} GiB, {:.1} MiB per object; {} operator write calls)",
        puts_per_gib,
        objects,
        ingested_gib,
        ingested_gib * 1024.0 / objects.max(1) as f64,
        write_calls
    );
    println!(
        "  metadata log per GiB ingested {:>7.1} KiB",
        meta_bytes as f64 / 1024.0 / ingested_gib
    );
    // One object per window whatever the number of streams: windows counted as the
    // object WAL starts writing them, objects as they are committed.
    let object_wal = object_wal_bound.map(|bound| targets::ObjectWalFigures {
        bound,
        windows: total(&|r| r.counter("strata_object_wal_window_bytes_count")),
        objects,
    });
    if let Some(object_wal) = &object_wal {
        println!(
            "  object WAL windows written   {:>8}  ({} objects committed for them)",
            object_wal.windows, object_wal.objects
        );
    }

    // The newest quarter of the log cache, spread over the streams: what a consumer
    // keeping up with producers reads.
    let tail_offsets =
        (cache_bytes / 4 / streams.len() / batch.len()) as u64 * batch.offset_count();
    Recorded::since_last(metrics);
    peaks.push(memory.peak("ingest").max(turns_peak).max(paced_peak));
    memory.reset();
    let tail = read_from(
        &store,
        &streams,
        256 * 1024,
        Some(tail_offsets),
        args.readers,
    )
    .await?;
    let during_tail = Recorded::since_last(metrics);
    let hits = [
        during_tail.counter("strata_log_cache_hits_total"),
        during_tail.counter("strata_log_cache_misses_total"),
    ];
    println!(
        "  tail read (log cache)  {:>8.1} MiB/s  (newest {} offsets of each stream; {} cache hits, {} misses)",
        tail.mib_per_sec(),
        tail_offsets,
        hits[0],
        hits[1]
    );
    store.close().await.map_err(|e| e.to_string())?;
    drop(store);

    // The writing store's log cache is freed; jemalloc's background thread hands the
    // pages back within about a second, so the cold phase's peak is its own.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A second store over the same metadata: empty cache, every read goes to objects.
    let open_cold = |wal_dir: &str| {
        let mut config = store_config.clone();
        config.wal_dir = dir.path().join(wal_dir);
        let (storage, meta, streams) = (storage.clone(), meta.clone(), streams.clone());
        async move {
            let store = StreamStore::open(storage, meta, config)
                .await
                .map_err(|e| e.to_string())?;
            // Loading the streams' ranges reads every object record, once for all.
            let started = Instant::now();
            store
                .open_streams(&streams)
                .await
                .map_err(|e| e.to_string())?;
            let together = started.elapsed();
            let objects: u64 = store
                .object_counts()
                .await
                .map_err(|e| e.to_string())?
                .values()
                .map(|(count, _)| count)
                .sum();
            println!(
                "  open {} streams together {:>6.1} ms  ({objects} object records)",
                streams.len(),
                ms(together)
            );
            Ok::<_, String>(store)
        }
    };
    // The baseline: the same streams opened one by one (each reading every object
    // record), by a store of their own that the cold store then takes them from.
    {
        let mut config = store_config.clone();
        config.wal_dir = dir.path().join("wal-one-by-one");
        let store = StreamStore::open(storage.clone(), meta.clone(), config)
            .await
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        for id in &streams {
            store.open_stream(*id).await.map_err(|e| e.to_string())?;
        }
        println!(
            "  open {} streams one by one {:>4.1} ms",
            streams.len(),
            ms(started.elapsed())
        );
        store.close().await.map_err(|e| e.to_string())?;
    }
    let cold = open_cold("wal-cold").await?;
    let cold_read = ColdRead {
        streams: &streams,
        readers: args.readers,
        raw_read,
        memory: &memory,
        metrics,
        drop_page_cache: args.drop_page_cache,
    };
    let (peak, cold_share) = cold_read
        .run(&cold, "cold read (objects)", "cold read")
        .await?;
    peaks.push(peak);

    // What the store's maintenance does to old data within a minute: small
    // stream-set objects are merged, then each stream's small ranges become stream
    // objects. Then cold reads again, from a fresh store.
    memory.reset();
    let started = Instant::now();
    let merged = cold.merge_stream_sets().await.map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let during_merge = Recorded::since_last(metrics);
    println!(
        "  merge                  {:>8.1} MiB/s  ({} small stream-set objects into {}, {:.1} s; {} GETs; {:.1} MiB of metadata log)",
        merged.bytes as f64 / MIB / took.as_secs_f64().max(1e-9),
        merged.objects_merged,
        merged.objects_written,
        took.as_secs_f64(),
        during_merge.operations("read"),
        during_merge.counter("strata_meta_log_bytes_total") as f64 / MIB
    );
    let started = Instant::now();
    let compacted = cold.compact_all().await.map_err(|e| e.to_string())?;
    let took = started.elapsed();
    peaks.push(memory.peak("compaction"));
    let during_compaction = Recorded::since_last(metrics);
    println!(
        "  compaction             {:>8.1} MiB/s  ({} ranges into {} stream objects, {:.1} s; {} GETs, {} write calls, {} copies discarded; {:.1} MiB of metadata log)",
        compacted.bytes as f64 / MIB / took.as_secs_f64(),
        compacted.ranges_merged,
        compacted.objects_written,
        took.as_secs_f64(),
        during_compaction.operations("read"),
        during_compaction.operations("write"),
        during_compaction.counter("strata_compaction_discarded_objects_total"),
        during_compaction.counter("strata_meta_log_bytes_total") as f64 / MIB
    );
    // Closed, not only dropped: a dropped store leaves the object ids it allocated
    // ahead prepared, and the next open removes them as a crash's leftovers.
    cold.close().await.map_err(|e| e.to_string())?;
    drop(cold);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cold = open_cold("wal-compacted").await?;
    let (peak, compacted_share) = cold_read
        .run(&cold, "cold read, compacted", "cold read, compacted")
        .await?;
    peaks.push(peak);
    // The store's budget: what its caches may hold, plus 128 MiB for everything else.
    let budget = (cache_bytes + block_cache_bytes) as f64 / MIB + targets::RSS_ALLOWANCE_MIB;
    let store_peak = peaks.iter().map(|p| p.rss).fold(0.0, f64::max);
    println!(
        "  peak RSS               {:>8.1} MiB  (budget {budget:.0} MiB = caches {} + {} MiB + 128)",
        store_peak,
        cache_bytes >> 20,
        block_cache_bytes >> 20,
    );
    for peak in &peaks {
        println!("    {peak}");
    }
    println!("  targets (docs/benchmarks.md), judged on this run:");
    let figures = targets::Figures {
        fixed_rate_mib: paced.mib_per_sec(),
        fixed_p99: paced.percentile(0.99),
        object_wal,
        ingest_share,
        puts_per_gib,
        cold_share,
        compacted_share,
        peak_rss_mib: store_peak,
        rss_budget_mib: budget,
    };
    for verdict in targets::judge(&figures) {
        println!("{verdict}");
    }
    if storage.kind() == StorageKind::Fs && !args.drop_page_cache {
        // Then the raw read is a copy out of memory, which no read that checks every
        // block's checksum matches (docs/benchmarks.md, cold reads).
        println!(
            "    (the local directory's reads came from the page cache; --drop-page-cache reads the disk)"
        );
    }
    cold.close().await.map_err(|e| e.to_string())
}

/// A read of every stream, start to end, from a store with nothing cached: what it
/// is measured against and with.
struct ColdRead<'a> {
    streams: &'a [StreamId],
    readers: usize,
    raw_read: f64,
    memory: &'a Memory,
    metrics: &'a BenchMetrics,
    drop_page_cache: bool,
}

impl ColdRead<'_> {
    /// Reads, prints throughput, GETs per GiB and the share of the raw read, and
    /// returns the phase's memory peak as `phase` and that share (percent).
    async fn run(
        &self,
        store: &StreamStore,
        name: &str,
        phase: &'static str,
    ) -> Result<(PhasePeak, f64), String> {
        if self.drop_page_cache {
            drop_page_cache()?;
        }
        Recorded::since_last(self.metrics);
        self.memory.reset();
        let read = read_from(store, self.streams, 1024 * 1024, None, self.readers).await?;
        let peak = self.memory.peak(phase);
        let gets = Recorded::since_last(self.metrics).operations("read");
        println!(
            "  {name:<22} {:>8.1} MiB/s  ({:.1} GETs per GiB read, {} streams at a time)",
            read.mib_per_sec(),
            gets as f64 / (read.bytes as f64 / (MIB * 1024.0)),
            self.readers,
        );
        let share = 100.0 * read.mib_per_sec() / self.raw_read;
        println!("  {:<28} {share:>6.0} %", format!("{name} vs raw read"));
        Ok((peak, share))
    }
}

fn strata_core_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// One line of a stall's timings, `label` then p50, p99 and max and how many
/// `counted`; nothing when none were recorded.
fn print_timings(label: &str, timings: &Latencies, counted: &str) {
    if timings.count() > 0 {
        println!(
            "  {label}{}  ({} {counted})",
            p50_p99_max(timings),
            timings.count()
        );
    }
}

/// "p50 … ms  p99 … ms  max … ms", widths fixed so that lines align.
fn p50_p99_max(durations: &Latencies) -> String {
    let ms = |q: f64| durations.quantile(q).as_secs_f64() * 1000.0;
    format!(
        "p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        ms(0.50),
        ms(0.99),
        ms(1.0)
    )
}
