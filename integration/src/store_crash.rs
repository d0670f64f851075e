//! SIGKILL crash test of the stream store against a real server.
//!
//! The test binary runs itself as a child that appends under load — with small,
//! frequent uploads and, every so often, merging of small stream-set objects,
//! compaction, retention and garbage collection — and
//! prints each batch's offsets once its append is acknowledged. The parent kills it
//! with SIGKILL at varying moments, reopens the store, and checks: every acknowledged
//! batch at or after the start offset is there, exactly once, in order; and after
//! cleanup, every object in the bucket is referenced and every referenced object is
//! in the bucket.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_backends::{Storage, StorageConfig};
use strata_core::batch::{RecordBatch, synthetic_batch};
use strata_core::meta::{EmbeddedMetaStore, EmbeddedOptions, MetaStore};
use strata_core::object::ObjectId;
use strata_core::store::{
    ObjectWalOptions, RetentionPolicy, StoreConfig, StreamId, StreamStore, WalMode,
};

const CHILD_DIR: &str = "STRATA_STORE_CRASH_DIR";
const CHILD_CONFIG: &str = "STRATA_STORE_CRASH_CONFIG";
const CHILD_OBJECT_WAL: &str = "STRATA_STORE_CRASH_OBJECT_WAL";

async fn open_store(
    dir: &Path,
    wal_dir: &Path,
    storage_config: &str,
    child: bool,
    wal: ChildWal,
) -> Result<StreamStore, String> {
    let config = StorageConfig::from_document(storage_config).map_err(|e| e.to_string())?;
    let storage = Storage::open(&config).map_err(|e| e.to_string())?;
    let meta: Arc<dyn MetaStore> = Arc::new(
        EmbeddedMetaStore::open(&dir.join("meta"), EmbeddedOptions::default())
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut store_config = StoreConfig::new(wal_dir.to_path_buf());
    if wal == ChildWal::Object {
        store_config.wal_mode = WalMode::Object(ObjectWalOptions {
            window: Duration::from_millis(15),
            max_bytes: 64 * 1024,
        });
    }
    if child {
        // Small, frequent uploads: kills land in the middle of them.
        store_config.upload_bytes = 32 * 1024;
        store_config.upload_interval = Duration::from_millis(30);
        store_config.compaction_min_ranges = 3;
    } else {
        store_config.upload_interval = Duration::from_secs(3600);
        store_config.retention_interval = Duration::from_secs(3600);
    }
    StreamStore::open(storage, meta, store_config)
        .await
        .map_err(|e| format!("open the store: {e}"))
}

fn batch(seed: u64) -> RecordBatch {
    synthetic_batch(3, 300 + (seed % 200) as usize, seed as i64)
}

/// When the test binary was started as the crash child, runs it (never returns).
pub fn run_child_if_requested() {
    let (Ok(dir), Ok(config)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_CONFIG)) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = Path::new(&dir);
        let wal = match std::env::var_os(CHILD_OBJECT_WAL) {
            Some(_) => ChildWal::Object,
            None => ChildWal::Local,
        };
        let store = open_store(dir, &dir.join("wal"), &config, true, wal)
            .await
            .expect("child store");
        let stream = StreamId(0);
        if store.open_stream(stream).await.is_err() {
            let created = store.create_stream().await.expect("create");
            assert_eq!(created, stream);
            store.open_stream(stream).await.expect("open");
        }
        let mut stdout = std::io::stdout();
        for round in 0u64.. {
            let pending: Vec<_> = (0..4)
                .map(|k| store.append(stream, batch(round * 4 + k)))
                .collect();
            for append in pending {
                let appended = append.await.expect("append");
                writeln!(stdout, "{} {}", appended.base_offset, appended.end_offset)
                    .expect("stdout");
            }
            stdout.flush().expect("flush");
            if round % 50 == 24 {
                // A handover to itself, so a kill can land while the stream is being
                // closed (its appends settling, its batches uploading) or is closed.
                store.close_stream(stream).await.expect("close the stream");
                store.open_stream(stream).await.expect("reopen the stream");
            }
            if round % 50 == 49 {
                // The background task's work, so a kill can land in any of it:
                // merging small stream-set objects, compacting, retention, GC.
                store.merge_stream_sets().await.expect("merge");
                store.compact(stream).await.expect("compaction");
                // Keep roughly the newest 256 KiB uploaded; drop and collect the rest.
                let policy = RetentionPolicy {
                    max_age: None,
                    max_bytes: Some(256 * 1024),
                };
                store
                    .enforce_retention(stream, policy, 0)
                    .await
                    .expect("retention");
                store.collect_garbage(Duration::ZERO).await.expect("gc");
            }
        }
    });
    std::process::exit(0);
}

/// Which WAL the crash child appends through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildWal {
    Local,
    Object,
}

/// Kills the child `rounds` times against `storage_config`; returns what failed.
pub fn sigkill_rounds(storage_config: &str, rounds: u64, wal: ChildWal) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut acked: Vec<(u64, u64)> = Vec::new();
    for round in 0..rounds {
        let mut command = std::process::Command::new(&exe);
        if wal == ChildWal::Object {
            command.env(CHILD_OBJECT_WAL, "1");
        }
        let mut child = command
            .env(CHILD_DIR, dir.path())
            .env(CHILD_CONFIG, storage_config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn the child: {e}"))?;
        std::thread::sleep(Duration::from_millis(700 + 370 * round));
        child.kill().map_err(|e| format!("SIGKILL: {e}"))?;
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        let this_round: Vec<(u64, u64)> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| {
                let (a, b) = l.split_once(' ')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect();
        if this_round.is_empty() {
            return Err(format!("round {round}: the child acknowledged nothing"));
        }
        acked.extend(this_round);
        let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        runtime.block_on(verify(dir.path(), storage_config, &acked, round, wal))?;
        eprintln!(
            "round {round}: {} acknowledged batches verified",
            acked.len()
        );
    }
    Ok(())
}

async fn verify(
    dir: &Path,
    storage_config: &str,
    acked: &[(u64, u64)],
    round: u64,
    wal: ChildWal,
) -> Result<(), String> {
    // The object WAL keeps nothing local: verify with a fresh local WAL, so only
    // what reached the bucket and the metadata counts.
    let wal_dir = match wal {
        ChildWal::Local => dir.join("wal"),
        ChildWal::Object => {
            if dir.join("wal").exists() {
                return Err(format!(
                    "round {round}: the object WAL wrote local WAL files"
                ));
            }
            dir.join(format!("wal-verify-{round}"))
        }
    };
    let store = open_store(dir, &wal_dir, storage_config, false, ChildWal::Local).await?;
    let stream = StreamId(0);
    store
        .open_stream(stream)
        .await
        .map_err(|e| format!("round {round}: open: {e}"))?;
    let (start, end) = store.offsets(stream).map_err(|e| e.to_string())?;
    let mut offset = start;
    let mut found = HashSet::new();
    while offset < end {
        let batches = store
            .fetch(stream, offset, 64 * 1024)
            .await
            .map_err(|e| format!("round {round}: fetch at {offset}: {e}"))?;
        let first = batches
            .first()
            .ok_or(format!("round {round}: no progress at {offset}"))?;
        if first.base_offset() > offset || (offset > start && first.base_offset() != offset) {
            return Err(format!("round {round}: gap or overlap at offset {offset}"));
        }
        for batch in &batches {
            if !found.insert((batch.base_offset(), batch.end_offset())) {
                return Err(format!(
                    "round {round}: batch {} twice",
                    batch.base_offset()
                ));
            }
            offset = batch.end_offset();
        }
    }
    for (base, batch_end) in acked.iter().filter(|(_, e)| *e > start) {
        if !found.contains(&(*base, *batch_end)) {
            return Err(format!(
                "round {round}: acknowledged batch {base}..{batch_end} lost (stream {start}..{end})"
            ));
        }
    }
    // Cleanup: what is in the bucket is exactly what the metadata references.
    store
        .collect_garbage(Duration::ZERO)
        .await
        .map_err(|e| e.to_string())?;
    store
        .collect_garbage(Duration::ZERO)
        .await
        .map_err(|e| e.to_string())?;
    let referenced = store
        .referenced_objects()
        .await
        .map_err(|e| e.to_string())?;
    let config = StorageConfig::from_document(storage_config).map_err(|e| e.to_string())?;
    let storage = Storage::open(&config).map_err(|e| e.to_string())?;
    let listed = storage
        .operator()
        .list_with("objects/")
        .recursive(true)
        .await
        .map_err(|e| format!("list: {e}"))?;
    let in_bucket: HashSet<ObjectId> = listed
        .iter()
        .filter_map(|e| {
            e.path()
                .rsplit('/')
                .next()?
                .strip_suffix(".obj")
                .map(str::to_string)
        })
        .filter_map(|hex| u64::from_str_radix(&hex, 16).ok().map(ObjectId))
        .collect();
    if in_bucket != referenced {
        let orphans: Vec<_> = in_bucket.difference(&referenced).collect();
        let missing: Vec<_> = referenced.difference(&in_bucket).collect();
        return Err(format!(
            "round {round}: orphan objects {orphans:?}, missing objects {missing:?}"
        ));
    }
    // The next round's child opens these directories: nothing of this store may
    // still run then.
    store
        .close()
        .await
        .map_err(|e| format!("round {round}: close: {e}"))
}

/// Appends while the object store misbehaves (errors, throttling, resets, cut
/// transfers) and retries are nearly off, so failures reach the store. With the
/// local WAL every append must still be acknowledged (uploads retry behind it); with
/// the object WAL an append may fail, but only cleanly: the failed ones leave no
/// offsets behind. Once the store behaves again, every acknowledged batch must be
/// readable exactly once, in order, from objects, with no orphan object left after
/// cleanup. Several appends per stream are in flight, so object-WAL windows are
/// written concurrently and a failed window takes later ones with it.
pub fn backend_faults(
    endpoint: &str,
    bucket: &str,
    access: &str,
    secret: &str,
    wal: ChildWal,
) -> Result<(), String> {
    let upstream: std::net::SocketAddr = endpoint
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("endpoint {endpoint}: {e}"))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let chaos = crate::chaos::ChaosProxy::start(upstream, 300, 7).await.map_err(|e| e.to_string())?;
        let unique = format!("faults-{wal:?}-{}", std::process::id());
        let document = |endpoint: &str| {
            format!(
                "[storage]\nkind = \"minio\"\nbucket = \"{bucket}\"\nroot = \"/{unique}\"\nendpoint = \"{endpoint}\"\n\
                 access_key_id = \"{access}\"\nsecret_access_key = \"{secret}\"\n\
                 [storage.timeouts]\noperation = \"2s\"\nio = \"2s\"\n\
                 [storage.retry]\nmax_retries = 1\nmin_delay = \"10ms\"\nmax_delay = \"20ms\"\n"
            )
        };
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let chaotic = document(&chaos.endpoint());
        let store = open_store(dir.path(), &dir.path().join("wal"), &chaotic, true, wal).await?;
        let streams = 8u64;
        for s in 0..streams {
            let id = store.create_stream().await.map_err(|e| e.to_string())?;
            store.open_stream(id).await.map_err(|e| e.to_string())?;
            assert_eq!(id, StreamId(s));
        }
        let producers: Vec<_> = (0..streams)
            .map(|s| {
                let store = store.clone();
                tokio::spawn(async move { produce_through_faults(&store, StreamId(s), Duration::from_secs(4)).await })
            })
            .collect();
        let mut acked = Vec::new();
        let mut failed = 0usize;
        for (s, producer) in (0..streams).zip(producers) {
            let outcome = producer.await.map_err(|e| e.to_string())?;
            failed += outcome.failed.len();
            if wal == ChildWal::Local && let Some(err) = outcome.failed.first() {
                return Err(format!("append failed while only the object store misbehaved: {err}"));
            }
            acked.extend(outcome.acked.into_iter().map(|(base, end)| (s, base, end)));
        }
        acked.sort_unstable();
        if chaos.injected() == 0 {
            return Err("the chaos proxy injected no fault".to_string());
        }
        chaos.disable();
        let mut flushed = false;
        for _ in 0..20 {
            if store.flush().await.is_ok() && store.unuploaded_bytes() == 0 {
                flushed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !flushed {
            return Err("the store did not upload its backlog once the object store recovered".to_string());
        }
        // Closing waits for its background work: a maintenance round left running
        // would go on writing beside the store opened next.
        store.close().await.map_err(|e| format!("close: {e}"))?;
        drop(store);

        // A fresh store straight to the server, with an empty cache: objects only.
        let direct = document(endpoint);
        let mut cold_dir_config = StoreConfig::new(dir.path().join("wal-verify"));
        cold_dir_config.upload_interval = Duration::from_secs(3600);
        let meta: Arc<dyn MetaStore> = Arc::new(
            EmbeddedMetaStore::open(&dir.path().join("meta"), EmbeddedOptions::default())
                .await
                .map_err(|e| e.to_string())?,
        );
        let storage = Storage::open(&StorageConfig::from_document(&direct).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let verify = StreamStore::open(storage.clone(), meta, cold_dir_config).await.map_err(|e| e.to_string())?;
        for s in 0..streams {
            let stream = StreamId(s);
            verify.open_stream(stream).await.map_err(|e| e.to_string())?;
            let expected: Vec<(u64, u64)> = acked.iter().filter(|a| a.0 == s).map(|a| (a.1, a.2)).collect();
            // Failed appends must leave no offsets behind: what was acknowledged is dense.
            if let Some(gap) = expected.windows(2).find(|pair| pair[0].1 != pair[1].0) {
                return Err(format!("stream {s}: acknowledged offsets jump from {} to {}", gap[0].1, gap[1].0));
            }
            let mut got = Vec::new();
            let mut offset = 0;
            let (_, end) = verify.offsets(stream).map_err(|e| e.to_string())?;
            while offset < end {
                let batches = verify.fetch(stream, offset, 64 * 1024).await.map_err(|e| format!("fetch: {e}"))?;
                for b in &batches {
                    got.push((b.base_offset(), b.end_offset()));
                    offset = b.end_offset();
                }
            }
            if got != expected {
                return Err(format!("stream {s}: read {} batches, {} acknowledged, or out of order", got.len(), expected.len()));
            }
        }
        verify.collect_garbage(Duration::ZERO).await.map_err(|e| e.to_string())?;
        verify.collect_garbage(Duration::ZERO).await.map_err(|e| e.to_string())?;
        let referenced = verify.referenced_objects().await.map_err(|e| e.to_string())?;
        let listed = storage.operator().list_with("objects/").recursive(true).await.map_err(|e| e.to_string())?;
        let in_bucket: Vec<&str> = listed.iter().map(|e| e.path()).filter(|p| p.ends_with(".obj")).collect();
        if in_bucket.len() != referenced.len() {
            return Err(format!(
                "{} objects in the bucket, {} referenced; in the bucket: {in_bucket:?}; referenced: {referenced:?}",
                in_bucket.len(),
                referenced.len()
            ));
        }
        eprintln!(
            "backend faults ({wal:?} WAL): {} faults injected, {} batches verified, {failed} appends failed cleanly",
            chaos.injected(),
            acked.len()
        );
        Ok(())
    })
}

/// What one producer saw: the offsets of its acknowledged appends and the errors of
/// its failed ones.
struct Produced {
    acked: Vec<(u64, u64)>,
    failed: Vec<String>,
}

/// Appends to `stream` for `time`, four appends in flight (a producer's
/// `max.in.flight`).
async fn produce_through_faults(store: &StreamStore, stream: StreamId, time: Duration) -> Produced {
    // At most this many waves, spread over `time`, so uploads meet the faults all
    // along; unpaced, the local WAL took ~300 MB in 4 s and the test then spent over
    // a minute uploading it. (The object WAL is slower than the pace anyway.)
    const MAX_WAVES: u32 = 1_000;
    let pace = time / MAX_WAVES;
    let started = tokio::time::Instant::now();
    let mut produced = Produced {
        acked: Vec::new(),
        failed: Vec::new(),
    };
    let mut seed = stream.0 << 32;
    let mut waves = 0;
    while started.elapsed() < time {
        tokio::time::sleep_until(started + pace * waves).await;
        waves += 1;
        let wave: Vec<_> = (0..4)
            .map(|_| {
                seed += 1;
                store.append(stream, batch(seed))
            })
            .collect();
        for result in futures::future::join_all(wave).await {
            match result {
                Ok(appended) => produced
                    .acked
                    .push((appended.base_offset, appended.end_offset)),
                Err(err) => produced.failed.push(err.to_string()),
            }
        }
    }
    produced
}
