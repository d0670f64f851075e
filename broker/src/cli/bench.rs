//! `strata bench store`: the stream store against the raw operator, in one run.
//!
//! Prints, for the configured backend: the raw operator's large-object write and
//! ranged-read throughput; the store's append throughput and latency percentiles
//! (unthrottled, then at a fixed rate); tail-read and cold-read throughput; object
//! store requests per GiB ingested; and the process's peak RSS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use strata_backends::config::BackendConfig;
use strata_backends::{Storage, StorageConfig};
use strata_core::batch::{RecordBatch, synthetic_batch};
use strata_core::meta::{EmbeddedMetaStore, EmbeddedOptions, MetaStore};
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
}

const MIB: f64 = 1024.0 * 1024.0;

struct Phase {
    bytes: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / MIB / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let rank =
            ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(super) fn install_recorder() -> Option<Snapshotter> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).ok()?;
    Some(snapshotter)
}

/// The counters `names` since the previous snapshot (all labels summed), in order.
fn counters_since_last(snapshotter: &Snapshotter, names: &[&str]) -> Vec<u64> {
    let snapshot = snapshotter.snapshot().into_vec();
    names
        .iter()
        .map(|name| {
            snapshot
                .iter()
                .filter(|(key, _, _, _)| key.key().name() == *name)
                .map(|(_, _, _, value)| match value {
                    DebugValue::Counter(n) => *n,
                    _ => 0,
                })
                .sum()
        })
        .collect()
}

/// Object-store operations of kind `operation` since the previous call: a snapshot
/// drains every metric of the debugging recorder.
fn operations_since_last(snapshotter: &Snapshotter, operation: &str) -> u64 {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| {
            key.key().name() == strata_backends::metric_names::OPERATIONS
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "operation" && l.value() == operation)
        })
        .map(|(_, _, _, value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
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

pub(super) async fn run(
    storage_config: &StorageConfig,
    args: BenchArgs,
    snapshotter: Snapshotter,
) -> Result<(), String> {
    let unique = format!("strata-bench-{}-{}", std::process::id(), strata_core_now());
    let config = under(storage_config, &unique);
    let storage = Storage::open(&config).map_err(|e| e.to_string())?;
    let phase_time = Duration::from_secs(args.seconds);
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

    let (raw_write, raw_read) = raw_operator(&storage, phase_time).await?;
    println!(
        "  raw operator     write {:>8.1} MiB/s (16 MiB objects, 4 in flight)",
        raw_write
    );
    println!(
        "  raw operator     read  {:>8.1} MiB/s (1 MiB ranged reads, 4 in flight)",
        raw_read
    );

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let meta: Arc<dyn MetaStore> = Arc::new(
        EmbeddedMetaStore::open(&dir.path().join("meta"), EmbeddedOptions::default())
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut store_config = StoreConfig::new(dir.path().join("wal"));
    if let Some(window_ms) = args.object_wal_window_ms {
        let window = Duration::from_millis(window_ms);
        store_config.wal_mode = WalMode::Object(ObjectWalOptions {
            window,
            max_bytes: 8 << 20,
        });
        // The baseline for the object WAL's latency: PUTs of one window's data.
        let window_bytes = (args.rate_mib * MIB * window.as_secs_f64()) as usize;
        let mut puts = put_latencies(&storage, window_bytes.max(4096), 20).await?;
        println!(
            "  raw PUT of one window ({} KiB)  p50 {:>7.2} ms  p99 {:>7.2} ms",
            window_bytes / 1024,
            ms(puts.percentile(0.50)),
            ms(puts.percentile(0.99))
        );
        println!("  object WAL window           {:>7.2} ms", ms(window));
    }
    let cache_bytes = store_config.log_cache_bytes;
    let store = StreamStore::open(storage.clone(), meta.clone(), store_config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut streams = Vec::with_capacity(args.streams);
    for _ in 0..args.streams {
        let id = store.create_stream().await.map_err(|e| e.to_string())?;
        store.open_stream(id).await.map_err(|e| e.to_string())?;
        streams.push(id);
    }
    let batch = synthetic_batch(
        args.records_per_batch,
        batch_payload - strata_core::batch::HEADER_LEN,
        0,
    );

    operations_since_last(&snapshotter, "write");
    let mut full = ingest(&store, &streams, &batch, phase_time, None, args.in_flight).await?;
    let mut paced = ingest(
        &store,
        &streams,
        &batch,
        phase_time,
        Some(args.rate_mib),
        args.in_flight,
    )
    .await?;
    store.flush().await.map_err(|e| e.to_string())?;
    let puts = operations_since_last(&snapshotter, "write");
    let ingested_gib = (full.bytes + paced.bytes) as f64 / (MIB * 1024.0);
    for (name, phase) in [("unthrottled", &mut full), ("fixed rate", &mut paced)] {
        println!(
            "  append {:<11} {:>8.1} MiB/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms  ({} appends)",
            name,
            phase.mib_per_sec(),
            ms(phase.percentile(0.50)),
            ms(phase.percentile(0.99)),
            ms(phase.percentile(0.999)),
            phase.latencies.len()
        );
    }
    println!(
        "  ingest vs raw write          {:>6.0} %",
        100.0 * full.mib_per_sec() / raw_write
    );
    println!(
        "  PUTs per GiB ingested        {:>8.1}  ({} PUTs, {:.2} GiB)",
        puts as f64 / ingested_gib,
        puts,
        ingested_gib
    );

    // The newest quarter of the log cache, spread over the streams: what a consumer
    // keeping up with producers reads.
    let tail_offsets =
        (cache_bytes / 4 / streams.len() / batch.len()) as u64 * batch.offset_count();
    counters_since_last(&snapshotter, &[]);
    let tail = read_from(&store, &streams, 256 * 1024, Some(tail_offsets)).await?;
    let hits = counters_since_last(
        &snapshotter,
        &[
            "strata_log_cache_hits_total",
            "strata_log_cache_misses_total",
        ],
    );
    println!(
        "  tail read (log cache)  {:>8.1} MiB/s  (newest {} offsets of each stream; {} cache hits, {} misses)",
        tail.mib_per_sec(),
        tail_offsets,
        hits[0],
        hits[1]
    );
    drop(store);

    // A second store over the same metadata: empty cache, every read goes to objects.
    let mut cold_config = store_config;
    cold_config.wal_dir = dir.path().join("wal-cold");
    let cold = StreamStore::open(storage.clone(), meta, cold_config)
        .await
        .map_err(|e| e.to_string())?;
    for id in &streams {
        cold.open_stream(*id).await.map_err(|e| e.to_string())?;
    }
    operations_since_last(&snapshotter, "read");
    let cold_read = read_from(&cold, &streams, 1024 * 1024, None).await?;
    let gets = operations_since_last(&snapshotter, "read");
    println!(
        "  cold read (objects)    {:>8.1} MiB/s  ({:.1} GETs per GiB read)",
        cold_read.mib_per_sec(),
        gets as f64 / (cold_read.bytes as f64 / (MIB * 1024.0))
    );
    println!(
        "  cold read vs raw read        {:>6.0} %",
        100.0 * cold_read.mib_per_sec() / raw_read
    );
    println!(
        "  peak RSS               {:>8.1} MiB  (log cache limit {} MiB)",
        peak_rss_mib(),
        cache_bytes >> 20
    );
    drop(cold);

    storage
        .operator()
        .delete_with("/")
        .recursive(true)
        .await
        .map_err(|e| format!("cleanup: {e}"))?;
    Ok(())
}

/// Latencies of `count` sequential PUTs of `bytes` each.
async fn put_latencies(storage: &Storage, bytes: usize, count: usize) -> Result<Phase, String> {
    let body = Bytes::from(vec![7u8; bytes]);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let sent = Instant::now();
        storage
            .operator()
            .write(&format!("put-latency/{i}"), body.clone())
            .await
            .map_err(|e| format!("PUT: {e}"))?;
        latencies.push(sent.elapsed());
    }
    Ok(Phase {
        bytes: (bytes * count) as u64,
        elapsed: started.elapsed(),
        latencies,
    })
}

fn strata_core_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

async fn raw_operator(storage: &Storage, phase: Duration) -> Result<(f64, f64), String> {
    let op = storage.operator().clone();
    let object = Bytes::from(vec![0x5au8; 16 << 20]);
    let started = Instant::now();
    let mut written = 0u64;
    let mut n = 0u64;
    while started.elapsed() < phase {
        let keys: Vec<String> = (n..n + 4).map(|i| format!("raw/{i:06}")).collect();
        n += 4;
        let results =
            futures::future::join_all(keys.iter().map(|k| op.write(k, object.clone()))).await;
        for result in results {
            result.map_err(|e| format!("raw write: {e}"))?;
            written += object.len() as u64;
        }
    }
    let write = written as f64 / MIB / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut read = 0u64;
    let reads = (0..n).flat_map(|i| (0..16u64).map(move |part| (i, part)));
    let mut in_flight = futures::stream::iter(reads)
        .map(|(i, part)| {
            let op = op.clone();
            async move {
                op.read_with(&format!("raw/{i:06}"))
                    .range(part << 20..(part + 1) << 20)
                    .await
                    .map(|b| b.len() as u64)
            }
        })
        .buffered(4);
    while let Some(result) = in_flight.next().await {
        read += result.map_err(|e| format!("raw read: {e}"))?;
        if started.elapsed() >= phase {
            break;
        }
    }
    let read_rate = read as f64 / MIB / started.elapsed().as_secs_f64();
    Ok((write, read_rate))
}

/// One producer per stream for `phase`; `rate_mib` spreads a total rate over them.
async fn ingest(
    store: &StreamStore,
    streams: &[StreamId],
    batch: &RecordBatch,
    phase: Duration,
    rate_mib: Option<f64>,
    in_flight: usize,
) -> Result<Phase, String> {
    let started = Instant::now();
    let in_flight = in_flight.max(1);
    let interval = rate_mib.map(|rate| {
        let batches_per_sec = rate * MIB / batch.len() as f64 / streams.len() as f64;
        Duration::from_secs_f64(1.0 / batches_per_sec)
    });
    let producers: Vec<_> = streams
        .iter()
        .map(|&stream| {
            let store = store.clone();
            let batch = batch.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut ticker = interval.map(|every| {
                    let mut ticker = tokio::time::interval(every);
                    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    ticker
                });
                // Like a Kafka producer's max.in.flight: up to `in_flight` appends
                // outstanding per stream.
                let mut outstanding: futures::stream::FuturesUnordered<
                    tokio::task::JoinHandle<Result<Duration, String>>,
                > = futures::stream::FuturesUnordered::new();
                while started.elapsed() < phase {
                    if outstanding.len() >= in_flight
                        && let Some(done) = outstanding.next().await
                    {
                        latencies.push(done.map_err(|e| e.to_string())??);
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
                while let Some(done) = outstanding.next().await {
                    latencies.push(done.map_err(|e| e.to_string())??);
                }
                Ok::<_, String>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for producer in producers {
        latencies.extend(producer.await.map_err(|e| e.to_string())??);
    }
    let bytes = latencies.len() as u64 * batch.len() as u64;
    Ok(Phase {
        bytes,
        elapsed: started.elapsed(),
        latencies,
    })
}

/// Reads every stream to its end, from its start or from `last` offsets before the
/// end, streams in parallel (8 at a time).
async fn read_from(
    store: &StreamStore,
    streams: &[StreamId],
    max_bytes: usize,
    last: Option<u64>,
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
        .buffer_unordered(8);
    let mut bytes = 0;
    while let Some(result) = readers.next().await {
        bytes += result?;
    }
    Ok(Phase {
        bytes,
        elapsed: started.elapsed(),
        latencies: Vec::new(),
    })
}
