use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_backends::{Flush, Storage, StorageConfig};

use super::*;
use crate::batch::synthetic_batch;
use crate::meta::{EmbeddedMetaStore, EmbeddedOptions};
use crate::test_support::StallLayer;

mod close_stream;
mod lifecycle;
mod object_ids;
mod object_ranges;
mod object_wal;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn storage(&self) -> Storage {
        let text = format!(
            "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
            self.dir.path().join("bucket").display()
        );
        Storage::open(&StorageConfig::from_document(&text).expect("config")).expect("storage")
    }

    async fn meta(&self) -> Arc<dyn MetaStore> {
        Arc::new(
            EmbeddedMetaStore::open(&self.dir.path().join("meta"), EmbeddedOptions::default())
                .await
                .expect("meta"),
        )
    }

    fn config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(self.dir.path().join("wal"));
        config.upload_interval = Duration::from_secs(3600);
        config
    }

    /// `config()` with the object WAL and a window of `window_ms`.
    fn object_wal_config(&self, window_ms: u64) -> StoreConfig {
        self.object_wal_config_with(window_ms, ObjectWalOptions::default().max_bytes)
    }

    /// [`Fixture::object_wal_config`] with windows written early at `max_bytes`.
    fn object_wal_config_with(&self, window_ms: u64, max_bytes: usize) -> StoreConfig {
        let mut config = self.config();
        config.wal_mode = WalMode::Object(ObjectWalOptions {
            window: Duration::from_millis(window_ms),
            max_bytes,
        });
        config
    }

    async fn store(&self) -> StreamStore {
        self.store_with(self.config()).await
    }

    /// A store on the fixture's bucket and metadata with `config`.
    async fn store_with(&self, config: StoreConfig) -> StreamStore {
        StreamStore::open(self.storage(), self.meta().await, config)
            .await
            .expect("store")
    }

    /// A store on the fixture's bucket and WAL directory over `meta`, with `config`.
    async fn store_on(&self, meta: Arc<dyn MetaStore>, config: StoreConfig) -> StreamStore {
        StreamStore::open(self.storage(), meta, config)
            .await
            .expect("store")
    }

    /// A store on the fixture's bucket seen through `stall` (writes held, reads
    /// delayed when the test asks), over `meta`, with `config`.
    async fn stalled_store(
        &self,
        stall: &StallLayer,
        meta: Arc<dyn MetaStore>,
        config: StoreConfig,
    ) -> StreamStore {
        StreamStore::open(self.storage().with_layer(stall.clone()), meta, config)
            .await
            .expect("store")
    }

    /// A second store on the fixture's bucket and `meta`, with `config` but a WAL
    /// directory of its own: the next owner of streams another store held.
    async fn next_owner(&self, meta: Arc<dyn MetaStore>, mut config: StoreConfig) -> StreamStore {
        config.wal_dir = self.dir.path().join("wal-new-owner");
        StreamStore::open(self.storage(), meta, config)
            .await
            .expect("the next owner's store")
    }

    fn objects(&self) -> usize {
        count_files(&self.dir.path().join("bucket/objects"))
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

fn batch(records: u32, seed: i64) -> RecordBatch {
    synthetic_batch(records, 200 + (seed as usize % 300), seed)
}

/// Creates and opens `count` streams.
async fn open_new_streams(store: &StreamStore, count: usize) -> Vec<StreamId> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let id = store.create_stream().await.expect("create");
        store.open_stream(id).await.expect("open");
        streams.push(id);
    }
    streams
}

/// Every batch of the stream from `from`, fetched in small pieces.
async fn read_all(store: &StreamStore, stream: StreamId, from: u64) -> Vec<RecordBatch> {
    let (_, end) = store.offsets(stream).expect("offsets");
    let mut out: Vec<RecordBatch> = Vec::new();
    let mut offset = from;
    while offset < end {
        let batches = store.fetch(stream, offset, 2000).await.expect("fetch");
        assert!(
            !batches.is_empty(),
            "no progress at offset {offset} of {end}"
        );
        offset = batches
            .last()
            .map(RecordBatch::end_offset)
            .expect("non-empty");
        out.extend(batches);
    }
    out
}

fn assert_dense(batches: &[RecordBatch], from: u64) {
    let mut expected = from;
    for batch in batches {
        assert_eq!(batch.base_offset(), expected, "offsets not dense");
        expected = batch.end_offset();
    }
}

#[tokio::test]
async fn appends_get_dense_offsets_and_tail_reads_come_from_the_cache() {
    let fixture = Fixture::new();
    let store = fixture.store().await;
    let stream = open_new_streams(&store, 1).await[0];
    let mut expected = 0;
    for i in 0..20 {
        let appended = store.append(stream, batch(5, i)).await.expect("append");
        assert_eq!(
            appended,
            Appended {
                base_offset: expected,
                end_offset: expected + 5
            }
        );
        expected += 5;
    }
    assert_eq!(store.offsets(stream).expect("offsets"), (0, 100));
    let all = read_all(&store, stream, 0).await;
    assert_eq!(all.len(), 20);
    assert_dense(&all, 0);
    let middle = store.fetch(stream, 52, 1).await.expect("fetch");
    assert_eq!(
        middle[0].base_offset(),
        50,
        "a fetch inside a batch returns that whole batch"
    );
    assert!(
        store
            .fetch(stream, 100, 1000)
            .await
            .expect("fetch at end")
            .is_empty()
    );
    assert!(matches!(
        store.fetch(stream, 101, 1000).await,
        Err(StoreError::OffsetOutOfRange { .. })
    ));
    assert_eq!(fixture.objects(), 0, "nothing uploaded yet");
}

#[tokio::test]
async fn uploaded_data_is_read_back_from_objects_after_a_restart() {
    let fixture = Fixture::new();
    let (stream_a, stream_b, written) = {
        let store = fixture.store().await;
        let a = store.create_stream().await.expect("create");
        let b = store.create_stream().await.expect("create");
        store.open_stream(a).await.expect("open");
        store.open_stream(b).await.expect("open");
        let mut written = Vec::new();
        for i in 0..30 {
            written.push(store.append(a, batch(3, i)).await.expect("append"));
            store.append(b, batch(7, i)).await.expect("append");
        }
        store.flush().await.expect("flush");
        assert_eq!(store.unuploaded_bytes(), 0);
        (a, b, written)
    };
    assert_eq!(
        fixture.objects(),
        1,
        "one stream-set object for both streams"
    );
    let store = fixture.store().await;
    store.open_stream(stream_a).await.expect("open");
    store.open_stream(stream_b).await.expect("open");
    assert_eq!(store.offsets(stream_a).expect("offsets"), (0, 90));
    let a = read_all(&store, stream_a, 0).await;
    assert_eq!(
        a.iter().map(RecordBatch::base_offset).collect::<Vec<_>>(),
        written.iter().map(|w| w.base_offset).collect::<Vec<_>>()
    );
    for (i, got) in a.iter().enumerate() {
        assert_eq!(
            got,
            &batch(3, i as i64).with_base_offset(written[i].base_offset),
            "batch {i} differs"
        );
    }
    assert_dense(&read_all(&store, stream_b, 0).await, 0);
    let appended = store
        .append(stream_a, batch(1, 99))
        .await
        .expect("append after restart");
    assert_eq!(appended.base_offset, 90);
}

#[tokio::test]
async fn acknowledged_appends_survive_a_restart_without_upload() {
    let fixture = Fixture::new();
    let stream = {
        let store = fixture.store().await;
        let stream = open_new_streams(&store, 1).await[0];
        for i in 0..25 {
            store.append(stream, batch(4, i)).await.expect("append");
        }
        stream
    };
    assert_eq!(fixture.objects(), 0);
    let store = fixture.store().await;
    store.open_stream(stream).await.expect("open");
    assert_eq!(fixture.objects(), 1, "recovery uploads what the WAL held");
    let all = read_all(&store, stream, 0).await;
    assert_eq!(all.len(), 25);
    assert_dense(&all, 0);
    drop(store);
    // A second restart finds everything in objects and nothing left to replay twice.
    let store = fixture.store().await;
    store.open_stream(stream).await.expect("open");
    assert_eq!(read_all(&store, stream, 0).await.len(), 25);
    assert_eq!(fixture.objects(), 1);
}

/// A stream with one batch appended (not uploaded) on `old`, then taken over by
/// `new`, a second store on the same bucket and metadata: `old` is a fenced owner.
async fn taken_over(fixture: &Fixture) -> (StreamStore, StreamStore, StreamId) {
    let meta = fixture.meta().await;
    let old = StreamStore::open(fixture.storage(), meta.clone(), fixture.config())
        .await
        .expect("store");
    let stream = open_new_streams(&old, 1).await[0];
    old.append(stream, batch(2, 1)).await.expect("append");

    let new = fixture.next_owner(meta, fixture.config()).await;
    new.open_stream(stream).await.expect("take over");
    (old, new, stream)
}

#[tokio::test]
async fn a_stale_owner_cannot_commit() {
    let fixture = Fixture::new();
    let (old, _new, taken) = taken_over(&fixture).await;

    old.flush()
        .await
        .expect("a taken stream is left out of the upload, not retried");
    assert_eq!(
        fixture.objects(),
        0,
        "the object holding only it was deleted"
    );
    assert_eq!(
        old.unuploaded_bytes(),
        0,
        "its data no longer waits for upload"
    );
    match old.append(taken, batch(1, 9)).await {
        Err(StoreError::Fenced { stream, .. }) => assert_eq!(stream, taken),
        other => panic!("an append to the taken stream must be fenced, got {other:?}"),
    }
}

#[tokio::test]
async fn a_taken_stream_does_not_hold_back_the_upload_of_the_others() {
    let fixture = Fixture::new();
    let (old, new, taken) = taken_over(&fixture).await;
    // Still the old store's own, with data in its WAL beside the taken stream's.
    let kept = open_new_streams(&old, 1).await[0];
    let appended = old.append(kept, batch(2, 2)).await.expect("append");

    old.flush()
        .await
        .expect("the upload commits the streams still owned");
    assert_eq!(old.unuploaded_bytes(), 0);
    new.open_stream(kept).await.expect("open");
    assert_eq!(
        read_all(&new, kept, 0).await,
        vec![batch(2, 2).with_base_offset(appended.base_offset)],
        "the kept stream's data was committed"
    );
    assert_eq!(
        new.offsets(taken).expect("offsets"),
        (0, 0),
        "nothing of the taken stream was committed by the old owner"
    );
}

#[tokio::test]
async fn trim_moves_the_start() {
    let fixture = Fixture::new();
    let store = fixture.store().await;
    let stream = open_new_streams(&store, 1).await[0];
    for i in 0..10 {
        store.append(stream, batch(10, i)).await.expect("append");
    }
    store.trim(stream, 40).await.expect("trim");
    assert_eq!(store.offsets(stream).expect("offsets"), (40, 100));
    assert!(matches!(
        store.fetch(stream, 39, 100).await,
        Err(StoreError::OffsetOutOfRange { start: 40, .. })
    ));
    assert!(store.trim(stream, 101).await.is_err());
}

#[tokio::test]
async fn objects_left_prepared_by_a_crash_are_removed_on_open() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let storage = fixture.storage();
    let id = crate::object::ObjectId(777);
    storage
        .operator()
        .write(&crate::object::object_key(id), vec![1u8; 10])
        .await
        .expect("write");
    let record = metadata::ObjectRecord {
        state: metadata::ObjectState::Prepared,
        kind: crate::object::ObjectKind::StreamSet,
        size: 10,
        created_ms: 0,
    };
    meta.put(metadata::object_key(id), record.value())
        .await
        .expect("put");
    drop(meta);
    let _store = fixture.store().await;
    assert_eq!(fixture.objects(), 0, "the orphan object survived");
}

#[tokio::test]
async fn backpressure_bounds_unuploaded_data() {
    let fixture = Fixture::new();
    let mut config = fixture.config();
    config.max_unuploaded_bytes = 8 * 1024;
    config.upload_bytes = 4 * 1024;
    let store = fixture.store_with(config).await;
    let stream = open_new_streams(&store, 1).await[0];
    for i in 0..200 {
        store.append(stream, batch(1, i)).await.expect("append");
        assert!(
            store.unuploaded_bytes() < 8 * 1024 + 600,
            "{} bytes waiting",
            store.unuploaded_bytes()
        );
    }
    assert!(fixture.objects() > 1);
    assert_dense(&read_all(&store, stream, 0).await, 0);
}

#[tokio::test]
async fn an_upload_behind_the_wal_flushes_its_objects_at_once() {
    // Behind: at least a quarter of the limit (16 KiB) and more than a round takes.
    let fixture = Fixture::new();
    let mut config = fixture.config();
    config.max_unuploaded_bytes = 64 * 1024;
    config.upload_bytes = 4 * 1024;
    let store = fixture.store_with(config.clone()).await;
    let stream = open_new_streams(&store, 1).await[0];
    let mut seed = 0;
    {
        // Uploads wait for this lock: the test decides when data leaves the WAL.
        let _no_uploads = store.inner.upload_lock.lock().await;
        append_until_waiting(&store, stream, 12 * 1024, &mut seed).await;
        assert_eq!(upload::upload_flush(&store.inner), Flush::Paced);
        append_until_waiting(&store, stream, 16 * 1024, &mut seed).await;
        assert_eq!(upload::upload_flush(&store.inner), Flush::Once);
    }
    store.flush().await.expect("flush");
    assert_eq!(store.unuploaded_bytes(), 0);
    assert_eq!(upload::upload_flush(&store.inner), Flush::Paced);
    let read = read_all(&store, stream, 0).await;
    assert_eq!(read.len(), seed as usize);
    assert_dense(&read, 0);
    drop(store);

    // Rounds of up to 32 KiB: 16 KiB waiting is one round's work, not a backlog.
    config.upload_bytes = 16 * 1024;
    config.wal_dir = fixture.dir.path().join("large-rounds");
    let store = fixture.store_with(config).await;
    let stream = open_new_streams(&store, 1).await[0];
    let _no_uploads = store.inner.upload_lock.lock().await;
    append_until_waiting(&store, stream, 20 * 1024, &mut 0).await;
    assert_eq!(upload::upload_flush(&store.inner), Flush::Paced);
}

/// Appends one-record batches (seeded from `seed` on) until `bytes` wait for upload.
async fn append_until_waiting(store: &StreamStore, stream: StreamId, bytes: usize, seed: &mut i64) {
    while store.unuploaded_bytes() < bytes {
        store.append(stream, batch(1, *seed)).await.expect("append");
        *seed += 1;
    }
}

/// Child side of the crash test; does nothing unless started by the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_appends_until_killed() {
    let Ok(dir) = std::env::var("STRATA_STORE_CRASH_DIR") else {
        return;
    };
    let root = Path::new(&dir);
    let text = format!(
        "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
        root.join("bucket").display()
    );
    let storage =
        Storage::open(&StorageConfig::from_document(&text).expect("config")).expect("storage");
    let meta: Arc<dyn MetaStore> = Arc::new(
        EmbeddedMetaStore::open(&root.join("meta"), EmbeddedOptions::default())
            .await
            .expect("meta"),
    );
    let mut config = StoreConfig::new(root.join("wal"));
    // Small uploads, often: kills land during uploads too.
    config.upload_bytes = 16 * 1024;
    config.upload_interval = Duration::from_millis(20);
    let store = StreamStore::open(storage, meta.clone(), config)
        .await
        .expect("store");
    let stream = match meta.get(b"c/stream").await.expect("get") {
        Some(_) => StreamId(0),
        None => store.create_stream().await.expect("create"),
    };
    store.open_stream(stream).await.expect("open");
    let mut stdout = std::io::stdout();
    for i in 0.. {
        let pending: Vec<_> = (0..4)
            .map(|k| store.append(stream, batch(3, i * 4 + k)))
            .collect();
        for append in pending {
            let appended = append.await.expect("append");
            writeln!(stdout, "{} {}", appended.base_offset, appended.end_offset).expect("stdout");
        }
        stdout.flush().expect("flush");
    }
}

#[test]
fn every_acknowledged_append_survives_sigkill_exactly_once_and_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked: Vec<(u64, u64)> = Vec::new();
    for round in 0..4u64 {
        let lines = crate::test_support::run_until_sigkill(
            "store::tests::crash_child_appends_until_killed",
            "STRATA_STORE_CRASH_DIR",
            dir.path(),
            Duration::from_millis(400 + 230 * round),
        );
        let this_round = crate::test_support::number_pairs(&lines);
        assert!(
            !this_round.is_empty(),
            "round {round}: nothing acknowledged"
        );
        acked.extend(this_round);

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let root = dir.path();
            let text = format!(
                "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
                root.join("bucket").display()
            );
            let storage = Storage::open(&StorageConfig::from_document(&text).expect("config"))
                .expect("storage");
            let meta: Arc<dyn MetaStore> = Arc::new(
                EmbeddedMetaStore::open(&root.join("meta"), EmbeddedOptions::default())
                    .await
                    .expect("meta"),
            );
            let mut config = StoreConfig::new(root.join("wal"));
            config.upload_interval = Duration::from_secs(3600);
            let store = StreamStore::open(storage, meta.clone(), config)
                .await
                .expect("reopen after SIGKILL");
            let stream = StreamId(0);
            store.open_stream(stream).await.expect("open");
            let all = read_all(&store, stream, 0).await;
            assert_dense(&all, 0);
            let ends: std::collections::HashSet<(u64, u64)> = all
                .iter()
                .map(|b| (b.base_offset(), b.end_offset()))
                .collect();
            for (base, end) in &acked {
                assert!(
                    ends.contains(&(*base, *end)),
                    "round {round}: acknowledged batch {base}..{end} lost"
                );
            }
            // Closing deletes the records of object ids allocated ahead and unused.
            store.close().await.expect("close");
            for kv in meta
                .scan_prefix(metadata::OBJECTS_PREFIX, 0)
                .await
                .expect("scan")
            {
                let record = metadata::ObjectRecord::parse(&kv).expect("record");
                assert_eq!(
                    record.state,
                    metadata::ObjectState::Committed,
                    "round {round}: an orphan survived open"
                );
            }
        });
    }
}

#[tokio::test]
async fn retention_drops_old_and_excess_ranges_and_gc_deletes_their_objects() {
    let fixture = Fixture::new();
    let store = fixture.store().await;
    let stream = open_new_streams(&store, 1).await[0];
    // Five objects: timestamps 1000, 2000, ... 5000 ms, 10 offsets each.
    for object in 0..5i64 {
        for i in 0..5 {
            store
                .append(stream, synthetic_batch(2, 500, (object + 1) * 1000 + i))
                .await
                .expect("append");
        }
        store.flush().await.expect("flush");
    }
    assert_eq!(fixture.objects(), 5);
    // Older than 2.5 s at t = 5 s: the first two objects' ranges go.
    let by_age = RetentionPolicy {
        max_age: Some(Duration::from_millis(2500)),
        max_bytes: None,
    };
    assert_eq!(
        store
            .enforce_retention(stream, by_age, 5000)
            .await
            .expect("retention"),
        20
    );
    assert!(matches!(
        store.fetch(stream, 19, 100).await,
        Err(StoreError::OffsetOutOfRange { start: 20, .. })
    ));
    // Keep at most about two objects' worth of bytes.
    let range_bytes = 5 * synthetic_batch(2, 500, 0).len() as u64;
    let by_size = RetentionPolicy {
        max_age: None,
        max_bytes: Some(2 * range_bytes),
    };
    assert_eq!(
        store
            .enforce_retention(stream, by_size, 5000)
            .await
            .expect("retention"),
        30
    );
    assert_dense(&read_all(&store, stream, 30).await, 30);

    let first = store.collect_garbage(Duration::ZERO).await.expect("gc");
    assert_eq!(
        first,
        GcReport {
            marked: 3,
            deleted: 0,
            orphans: 0,
        }
    );
    let second = store.collect_garbage(Duration::ZERO).await.expect("gc");
    assert_eq!(
        second,
        GcReport {
            marked: 0,
            deleted: 3,
            orphans: 0,
        }
    );
    assert_eq!(fixture.objects(), 2, "objects still referenced must stay");
    assert_eq!(
        store.collect_garbage(Duration::ZERO).await.expect("gc"),
        GcReport::default()
    );

    // A restart sees the same start and reads the rest from the remaining objects.
    drop(store);
    let store = fixture.store().await;
    store.open_stream(stream).await.expect("open");
    assert_eq!(store.offsets(stream).expect("offsets"), (30, 50));
    assert_eq!(read_all(&store, stream, 30).await.len(), 10);
}

#[tokio::test]
async fn marked_objects_wait_out_the_grace_period() {
    let fixture = Fixture::new();
    let store = fixture.store().await;
    let stream = open_new_streams(&store, 1).await[0];
    store.append(stream, batch(5, 1)).await.expect("append");
    store.flush().await.expect("flush");
    store.append(stream, batch(5, 2)).await.expect("append");
    store.flush().await.expect("flush");
    store.trim(stream, 5).await.expect("trim");
    let grace = Duration::from_secs(3600);
    assert_eq!(
        store.collect_garbage(grace).await.expect("gc"),
        GcReport {
            marked: 1,
            deleted: 0,
            orphans: 0,
        }
    );
    assert_eq!(
        store.collect_garbage(grace).await.expect("gc"),
        GcReport::default()
    );
    assert_eq!(fixture.objects(), 2);
}

#[tokio::test]
async fn background_retention_applies_policies_and_deletes_objects() {
    let fixture = Fixture::new();
    let mut config = fixture.config();
    config.retention_interval = Duration::from_millis(50);
    config.deletion_grace = Duration::ZERO;
    let store = fixture.store_with(config).await;
    let stream = open_new_streams(&store, 1).await[0];
    for round in 0..3 {
        store.append(stream, batch(4, round)).await.expect("append");
        store.flush().await.expect("flush");
    }
    let one_batch = batch(4, 0).len() as u64;
    let policy = RetentionPolicy {
        max_age: None,
        max_bytes: Some(one_batch + 50),
    };
    store.set_retention(stream, policy).expect("policy");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fixture.objects() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "background retention did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.offsets(stream).expect("offsets"), (8, 12));
}

#[tokio::test]
async fn compaction_merges_small_ranges_into_stream_objects() {
    let fixture = Fixture::new();
    let mut config = fixture.config();
    config.compaction_min_ranges = 4;
    let store = fixture.store_with(config.clone()).await;
    let a = store.create_stream().await.expect("create");
    let b = store.create_stream().await.expect("create");
    store.open_stream(a).await.expect("open");
    store.open_stream(b).await.expect("open");
    let mut expected_a = Vec::new();
    for round in 0..10 {
        for i in 0..3 {
            let appended = store
                .append(a, batch(2, round * 3 + i))
                .await
                .expect("append");
            expected_a.push(batch(2, round * 3 + i).with_base_offset(appended.base_offset));
            store
                .append(b, batch(5, round * 3 + i))
                .await
                .expect("append");
        }
        store.flush().await.expect("flush");
    }
    assert_eq!(fixture.objects(), 10);
    let report = store.compact(a).await.expect("compact a");
    assert_eq!((report.ranges_merged, report.objects_written), (10, 1));
    assert_eq!(
        store.compact(a).await.expect("again"),
        CompactionReport::default()
    );
    store.compact(b).await.expect("compact b");
    // Every stream-set object is now unreferenced: GC removes them.
    store.collect_garbage(Duration::ZERO).await.expect("gc");
    let gc = store.collect_garbage(Duration::ZERO).await.expect("gc");
    assert_eq!(gc.deleted, 10);
    assert_eq!(fixture.objects(), 2, "one stream object per stream remains");
    store
        .append(a, batch(2, 99))
        .await
        .expect("append after compaction");
    drop(store);

    let store = fixture.store_with(config).await;
    store.open_stream(a).await.expect("open");
    store.open_stream(b).await.expect("open");
    let read = read_all(&store, a, 0).await;
    assert_eq!(
        &read[..expected_a.len()],
        &expected_a[..],
        "compacted data differs"
    );
    assert_eq!(read.len(), expected_a.len() + 1);
    assert_dense(&read_all(&store, b, 0).await, 0);
}

/// Appends `count` batches to `stream`, each uploaded into an object of its own;
/// returns them as stored.
async fn a_range_per_object(store: &StreamStore, stream: StreamId, count: i64) -> Vec<RecordBatch> {
    let mut stored = Vec::new();
    for i in 0..count {
        let appended = store.append(stream, batch(3, i)).await.expect("append");
        stored.push(batch(3, i).with_base_offset(appended.base_offset));
        store.flush().await.expect("flush");
    }
    stored
}

/// One stream of twelve batches, each in an object of its own, on a store whose
/// object reads the stall layer delays by 20 ms: a compaction's copy then has
/// reads in flight long enough to be counted.
struct TwelveObjects {
    fixture: Fixture,
    stall: StallLayer,
    store: StreamStore,
    stream: StreamId,
    expected: Vec<RecordBatch>,
}

async fn twelve_objects_with_slow_reads() -> TwelveObjects {
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_secs(1));
    let store = fixture
        .stalled_store(&stall, fixture.meta().await, fixture.config())
        .await;
    let stream = open_new_streams(&store, 1).await[0];
    let expected = a_range_per_object(&store, stream, 12).await;
    stall.delay_reads(Duration::from_millis(20));
    TwelveObjects {
        fixture,
        stall,
        store,
        stream,
        expected,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_copy_reads_ahead() {
    let TwelveObjects {
        fixture,
        stall,
        store,
        stream,
        expected,
    } = twelve_objects_with_slow_reads().await;
    assert_eq!(fixture.objects(), 12, "a range per object");

    // One stream alone: its reads can overlap only within its copy.
    let report = store.compact(stream).await.expect("compaction");
    assert_eq!((report.objects_written, report.ranges_merged), (1, 12));
    assert!(
        stall.most_reads_in_flight() >= 2,
        "the copy read its ranges one at a time ({} at most)",
        stall.most_reads_in_flight()
    );
    assert_eq!(read_all(&store, stream, 0).await, expected);
}

#[tokio::test]
async fn compactions_started_together_copy_a_group_once() {
    let TwelveObjects {
        fixture: _fixture,
        stall,
        store,
        stream,
        expected,
    } = twelve_objects_with_slow_reads().await;

    // The maintenance round and a caller's compaction at once: the second plans
    // after the first committed, and finds nothing left to copy.
    let (all, one) = tokio::join!(store.compact_all(), store.compact(stream));
    let (all, one) = (all.expect("compaction"), one.expect("compaction"));
    assert_eq!(all.objects_written + one.objects_written, 1);
    assert!(
        stall.most_reads_in_flight() <= super::compaction::READS_AHEAD,
        "two compactions copied the group at once ({} reads in flight)",
        stall.most_reads_in_flight()
    );
    assert_eq!(read_all(&store, stream, 0).await, expected);
}

#[tokio::test]
async fn object_wal_writes_one_object_per_window_for_all_streams() {
    let fixture = Fixture::new();
    let mut config = fixture.object_wal_config(300);
    let store = fixture.store_with(config.clone()).await;
    let streams = open_new_streams(&store, 16).await;
    let appends: Vec<_> = streams
        .iter()
        .map(|&id| {
            let store = store.clone();
            tokio::spawn(async move { store.append(id, batch(3, id.0 as i64)).await })
        })
        .collect();
    for append in appends {
        assert_eq!(append.await.expect("task").expect("append").base_offset, 0);
    }
    assert_eq!(fixture.objects(), 1, "16 streams in one window: one PUT");
    assert_eq!(
        store.unuploaded_bytes(),
        0,
        "nothing waits for upload in object mode"
    );
    assert_eq!(
        read_all(&store, streams[3], 0).await.len(),
        1,
        "tail read from the cache"
    );
    drop(store);

    // Nothing local: a new store on fresh local state reads everything from objects.
    config.wal_dir = fixture.dir.path().join("unused");
    let store = fixture.store_with(config).await;
    for id in &streams {
        store.open_stream(*id).await.expect("open");
        let read = read_all(&store, *id, 0).await;
        assert_eq!(read, vec![batch(3, id.0 as i64)]);
    }
}

#[tokio::test]
async fn object_wal_failures_fail_appends_and_keep_offsets_dense() {
    let fixture = Fixture::new();
    let unreachable = "[storage]\nkind = \"minio\"\nbucket = \"b-1\"\nendpoint = \"http://127.0.0.1:1\"\n\
                       access_key_id = \"a\"\nsecret_access_key = \"b\"\n[storage.retry]\nmax_retries = 0\n";
    let storage = Storage::open(&StorageConfig::from_document(unreachable).expect("config"))
        .expect("storage");
    let config = fixture.object_wal_config(20);
    let store = StreamStore::open(storage, fixture.meta().await, config)
        .await
        .expect("store");
    let stream = open_new_streams(&store, 1).await[0];
    let results: Vec<_> = (0..5)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.append(stream, batch(2, i)).await })
        })
        .collect();
    for result in results {
        assert!(matches!(
            result.await.expect("task"),
            Err(StoreError::ObjectWal(_))
        ));
    }
    assert_eq!(
        store.offsets(stream).expect("offsets"),
        (0, 0),
        "failed appends left no offsets behind"
    );
    let again = store.append(stream, batch(2, 9)).await;
    assert!(again.is_err());
    assert_eq!(store.offsets(stream).expect("offsets"), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_stream_set_objects_merge_into_one_with_each_stream_contiguous() {
    let fixture = Fixture::new();
    let mut config = fixture.object_wal_config(5);
    let store = fixture.store_with(config.clone()).await;
    let streams = open_new_streams(&store, 4).await;
    // Rounds of appends to every stream: windows shared by several streams.
    let mut expected: HashMap<StreamId, Vec<RecordBatch>> = HashMap::new();
    for round in 0..6i64 {
        let appends: Vec<_> = streams
            .iter()
            .map(|&id| {
                let store = store.clone();
                let sent = batch(3, round * 10 + id.0 as i64);
                tokio::spawn(async move {
                    let appended = store.append(id, sent.clone()).await.expect("append");
                    (id, sent.with_base_offset(appended.base_offset))
                })
            })
            .collect();
        for append in appends {
            let (id, placed) = append.await.expect("task");
            expected.entry(id).or_default().push(placed);
        }
    }
    let windows = fixture.objects();
    assert!(
        windows >= 6,
        "{windows} objects: a round per window at least"
    );

    let report = store.merge_stream_sets().await.expect("merge");
    assert_eq!(report.objects_merged, windows);
    assert_eq!(report.objects_written, 1);
    assert_eq!(
        store.merge_stream_sets().await.expect("merge again"),
        MergeReport::default(),
        "the merged object is not small: nothing left to merge"
    );
    for id in &streams {
        let open = store.inner.open_stream_state(*id).expect("open");
        assert_eq!(
            open.lock_state().ranges.len(),
            1,
            "{id:?}: its ranges followed each other and became one"
        );
        assert_eq!(read_all(&store, *id, 0).await, expected[id]);
    }
    store.collect_garbage(Duration::ZERO).await.expect("mark");
    store.collect_garbage(Duration::ZERO).await.expect("delete");
    assert_eq!(fixture.objects(), 1, "the merged sources were deleted");
    drop(store);

    config.wal_dir = fixture.dir.path().join("fresh");
    let store = fixture.store_with(config).await;
    for id in &streams {
        store.open_stream(*id).await.expect("open");
        assert_eq!(
            read_all(&store, *id, 0).await,
            expected[id],
            "{id:?} read back from the merged object"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_wal_hedges_a_stalled_write_and_discards_the_loser() {
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_secs(3));
    let mut config = fixture.object_wal_config(5);
    let store = fixture
        .stalled_store(&stall, fixture.meta().await, config.clone())
        .await;
    let stream = open_new_streams(&store, 1).await[0];
    // One window per append: enough writes for a p99 to hedge on.
    let mut expected = Vec::new();
    for i in 0..40 {
        let appended = store.append(stream, batch(2, i)).await.expect("append");
        expected.push(batch(2, i).with_base_offset(appended.base_offset));
    }
    assert_eq!(fixture.objects(), 40);

    stall.stall_next(1);
    let started = std::time::Instant::now();
    let appended = store.append(stream, batch(2, 40)).await.expect("append");
    let took = started.elapsed();
    expected.push(batch(2, 40).with_base_offset(appended.base_offset));
    assert!(
        took < Duration::from_secs(1),
        "the append waited {took:?}: its stalled write was not hedged"
    );

    // The stalled write ends 3 s after it began; its object is then discarded.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fixture.objects() != 41 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fixture.objects(),
        41,
        "one object per window, the loser gone"
    );
    assert_eq!(read_all(&store, stream, 0).await, expected);
    drop(store);

    config.wal_dir = fixture.dir.path().join("fresh");
    let store = fixture.store_with(config).await;
    store.open_stream(stream).await.expect("open");
    assert_eq!(
        read_all(&store, stream, 0).await,
        expected,
        "every acknowledged batch, once, from objects"
    );
    assert_eq!(fixture.objects(), 41, "reopening found nothing to remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_wal_tail_stays_in_the_log_cache() {
    let fixture = Fixture::new();
    let mut config = fixture.object_wal_config(5);
    config.log_cache_bytes = 256 * 1024;
    let store = fixture.store_with(config).await;
    let streams = open_new_streams(&store, 4).await;
    let producers: Vec<_> = streams
        .iter()
        .map(|&id| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut outstanding = append_in_waves(&store, id).await;
                outstanding.sort_unstable();
                outstanding
            })
        })
        .collect();
    for producer in producers {
        producer.await.expect("producer");
    }
    for id in &streams {
        let (_, end) = store.offsets(*id).expect("offsets");
        let cached = store.inner.lock_cache().read(*id, end - 8, usize::MAX);
        assert!(
            cached.is_some(),
            "stream {id:?}: the newest batch is not in the log cache"
        );
    }
}

/// 200 appends with 8 in flight; returns their base offsets.
async fn append_in_waves(store: &StreamStore, id: StreamId) -> Vec<u64> {
    let mut offsets = Vec::new();
    for chunk in 0..25 {
        let pending: Vec<_> = (0..8)
            .map(|k| store.append(id, batch(2, chunk * 8 + k)))
            .collect();
        for append in pending {
            offsets.push(append.await.expect("append").base_offset);
        }
    }
    offsets
}

#[tokio::test]
async fn objects_without_any_record_are_swept_after_the_grace_period() {
    let fixture = Fixture::new();
    let (old, new, _) = taken_over(&fixture).await;
    old.flush().await.expect("the taken stream is left out");
    // The fenced upload's PUT lands after its cleanup: an object no record names.
    let late = crate::object::object_key(crate::object::ObjectId(0));
    fixture
        .storage()
        .operator()
        .write(&late, vec![0u8; 64])
        .await
        .expect("write");
    assert_eq!(fixture.objects(), 1);
    let kept = new
        .collect_garbage(Duration::from_secs(3600))
        .await
        .expect("gc");
    assert_eq!(kept.orphans, 0, "a young orphan may be an upload in flight");
    let swept = new.collect_garbage(Duration::ZERO).await.expect("gc");
    assert_eq!(swept.orphans, 1);
    assert_eq!(fixture.objects(), 0);
}

#[tokio::test]
async fn a_large_stream_gets_an_object_of_its_own() {
    let fixture = Fixture::new();
    let mut config = fixture.config();
    config.stream_split_bytes = 8 * 1024;
    let store = fixture.store_with(config.clone()).await;
    let ids = open_new_streams(&store, 3).await;
    for i in 0..30 {
        store.append(ids[0], batch(4, i)).await.expect("append"); // ~15 KiB: large
    }
    store.append(ids[1], batch(1, 1)).await.expect("append");
    store.append(ids[2], batch(1, 2)).await.expect("append");
    store.flush().await.expect("flush");
    assert_eq!(
        fixture.objects(),
        2,
        "one stream object and one shared stream-set object"
    );
    let large_object = store
        .inner
        .open_stream_state(ids[0])
        .expect("open")
        .lock_state()
        .ranges[&0]
        .object;
    let small_object = store
        .inner
        .open_stream_state(ids[1])
        .expect("open")
        .lock_state()
        .ranges[&0]
        .object;
    assert_ne!(large_object, small_object);
    assert_eq!(
        store
            .inner
            .open_stream_state(ids[2])
            .expect("open")
            .lock_state()
            .ranges[&0]
            .object,
        small_object
    );
    drop(store);
    let store = fixture.store_with(config).await;
    for id in &ids {
        store.open_stream(*id).await.expect("open");
        assert_dense(&read_all(&store, *id, 0).await, 0);
    }
    assert_eq!(read_all(&store, ids[0], 0).await.len(), 30);
}

#[tokio::test]
async fn queued_appends_keep_their_order_while_durability_is_awaited_together() {
    let fixture = Fixture::new();
    let store = fixture.store().await;
    let id = open_new_streams(&store, 1).await[0];
    let mut queued = Vec::new();
    for i in 0..20 {
        queued.push(store.enqueue(id, batch(3, i)).await.expect("enqueue"));
    }
    let placements: Vec<u64> = queued.iter().map(|q| q.placement().base_offset).collect();
    assert_eq!(placements, (0..20).map(|i| i * 3).collect::<Vec<_>>());
    let done = futures::future::join_all(queued.into_iter().map(QueuedAppend::durable)).await;
    assert!(done.iter().all(Result::is_ok));
    assert_eq!(store.offsets(id).expect("offsets"), (0, 60));
    assert_dense(&read_all(&store, id, 0).await, 0);
}

#[tokio::test]
async fn finds_the_first_batch_at_or_after_a_timestamp_in_objects_and_the_cache() {
    let fixture = Fixture::new();
    let store = fixture.store().await;
    let id = open_new_streams(&store, 1).await[0];
    for ts in [100, 200, 300] {
        store
            .append(id, synthetic_batch(2, 10, ts))
            .await
            .expect("append");
    }
    store.flush().await.expect("upload");
    for ts in [400, 500] {
        store
            .append(id, synthetic_batch(2, 10, ts))
            .await
            .expect("append");
    }
    let base = |ts| {
        let store = store.clone();
        async move {
            store
                .first_batch_at_or_after(id, ts)
                .await
                .expect("lookup")
                .map(|b| b.base_offset())
        }
    };
    assert_eq!(base(0).await, Some(0));
    assert_eq!(base(150).await, Some(2));
    assert_eq!(base(300).await, Some(4));
    assert_eq!(base(450).await, Some(8));
    assert_eq!(base(501).await, None);
    store.trim(id, 4).await.expect("trim");
    assert_eq!(base(0).await, Some(4));
}

#[tokio::test]
async fn a_deleted_stream_is_gone_and_its_objects_become_garbage() {
    let fixture = Fixture::new();
    let store = fixture.store().await;
    let keep = store.create_stream().await.expect("create");
    let doomed = store.create_stream().await.expect("create");
    for id in [keep, doomed] {
        store.open_stream(id).await.expect("open");
        store.append(id, batch(5, 1)).await.expect("append");
    }
    store.delete_stream(doomed).await.expect("delete");
    assert!(matches!(
        store.offsets(doomed),
        Err(StoreError::StreamNotOpen(_))
    ));
    assert_eq!(store.offsets(keep).expect("offsets"), (0, 5));
    drop(store);
    let store = fixture.store().await;
    assert!(store.open_stream(doomed).await.is_err());
    store.open_stream(keep).await.expect("reopen");
    assert_eq!(read_all(&store, keep, 0).await.len(), 1);
}

#[tokio::test]
async fn objects_are_counted_by_kind_and_state() {
    let fixture = Fixture::new();
    let store = fixture.store().await;
    let id = open_new_streams(&store, 1).await[0];
    store.append(id, batch(4, 1)).await.expect("append");
    store.flush().await.expect("upload");
    let counts = store.object_counts().await.expect("counts");
    let (objects, bytes) = counts[&("stream-set", "committed")];
    assert_eq!(objects, 1);
    assert!(bytes > 0);
    assert_eq!(counts.len(), 1, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_sequential_reader_finds_the_following_ranges_prefetched() {
    let fixture = Fixture::new();
    let (stream, written) = {
        let store = fixture.store().await;
        let stream = open_new_streams(&store, 1).await[0];
        let mut written = Vec::new();
        // One upload per batch: the stream's data spread over ten objects.
        for i in 0..10 {
            store.append(stream, batch(3, i)).await.expect("append");
            written.push(batch(3, i));
            store.flush().await.expect("flush");
        }
        (stream, written)
    };
    assert_eq!(fixture.objects(), 10);
    let store = fixture.store().await;
    store.open_stream(stream).await.expect("open");
    let first = store.fetch(stream, 0, 1).await.expect("fetch");
    assert_eq!(first.len(), 1);
    // The fetch of the first range handed the next ones to the prefetcher.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !store.inner.prefetches.is_idle() {
        assert!(
            std::time::Instant::now() < deadline,
            "prefetches never finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ranges: Vec<ObjectRange> = {
        let open = store.inner.open_stream_state(stream).expect("open stream");
        open.lock_state().ranges.values().copied().collect()
    };
    assert_eq!(ranges.len(), 10);
    // As many ranges as prefetch permits (a quarter of the cold-read budget), no more:
    // prefetches never queue.
    let permits = fixture.config().cold_read_concurrency / 4;
    for (i, range) in ranges.iter().enumerate().skip(1) {
        let index = read::load_index(&store.inner, range.object)
            .await
            .expect("index");
        let block = index.blocks_of(stream.0)[0];
        let cached = store
            .inner
            .blocks
            .get((range.object, block.position))
            .is_some();
        assert_eq!(
            cached,
            i <= permits,
            "range {i} (offset {}): prefetched {cached}",
            range.start_offset
        );
    }
    let read = read_all(&store, stream, 0).await;
    assert_dense(&read, 0);
    let expected: Vec<RecordBatch> = written
        .iter()
        .zip(read.iter())
        .map(|(w, r)| w.clone().with_base_offset(r.base_offset()))
        .collect();
    assert_eq!(read, expected);
}
