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
mod cold_reads;
mod compaction;
mod crash;
mod lifecycle;
mod object_ids;
mod object_ranges;
mod object_wal;
mod retention;

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
