//! Stream ranges kept in their objects' records: one record per object-WAL window,
//! trims and compactions of streams sharing records, and metadata of the earlier layout.

use super::*;
use crate::meta::{KeyValue, LeaseId, MetaError, TxnOutcome, WatchStream};
use crate::store::object_ranges::{self, ObjectEntry};
use crate::store::range_migration;

/// Appends `waves` batches to every stream, each wave in one window, so that every
/// object holds a range of every stream.
async fn append_in_shared_windows(store: &StreamStore, streams: &[StreamId], waves: i64) {
    for wave in 0..waves {
        let appends: Vec<_> = streams
            .iter()
            .map(|&id| {
                let store = store.clone();
                tokio::spawn(async move { store.append(id, batch(4, wave)).await })
            })
            .collect();
        for append in appends {
            append.await.expect("task").expect("append");
        }
    }
}

async fn committed_objects(meta: &dyn MetaStore) -> Vec<ObjectEntry> {
    object_ranges::objects(meta)
        .await
        .expect("object records")
        .into_iter()
        .filter(|entry| entry.record.state == metadata::ObjectState::Committed)
        .collect()
}

/// A store over `meta` (object WAL, 50 ms windows) with `count` streams appended
/// `waves` times, so that every object holds a range of every stream.
async fn streams_sharing_objects(
    fixture: &Fixture,
    meta: &Arc<dyn MetaStore>,
    count: usize,
    waves: i64,
) -> (StoreConfig, StreamStore, Vec<StreamId>) {
    let config = fixture.object_wal_config(50);
    let store = fixture.store_on(meta.clone(), config.clone()).await;
    let streams = open_new_streams(&store, count).await;
    append_in_shared_windows(&store, &streams, waves).await;
    (config, store, streams)
}

/// Records of the earlier layout, one per stream range (`s/<stream>/r/<start>`).
async fn legacy_range_records(meta: &dyn MetaStore) -> usize {
    meta.scan_prefix(b"s/", 0)
        .await
        .expect("scan")
        .into_iter()
        .filter(|kv| kv.key.windows(3).any(|w| w == b"/r/"))
        .count()
}

/// Opens `stream` on `store` and reads it from `start`; its offsets must be dense.
async fn open_and_read(store: &StreamStore, stream: StreamId, start: u64) -> Vec<RecordBatch> {
    store.open_stream(stream).await.expect("open");
    let read = read_all(store, stream, start).await;
    assert_dense(&read, start);
    read
}

#[tokio::test]
async fn a_window_of_many_streams_is_one_metadata_record() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let store = fixture
        .store_on(meta.clone(), fixture.object_wal_config(300))
        .await;
    let streams = open_new_streams(&store, 16).await;
    append_in_shared_windows(&store, &streams, 1).await;

    let committed = committed_objects(meta.as_ref()).await;
    assert_eq!(committed.len(), 1, "one window, one object");
    let mut listed: Vec<StreamId> = committed[0].ranges.iter().map(|(s, _)| *s).collect();
    listed.sort_unstable();
    assert_eq!(listed, streams, "the record lists every stream's range");
    assert_eq!(
        legacy_range_records(meta.as_ref()).await,
        0,
        "no record per stream and window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trims_of_streams_sharing_objects_all_apply() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let (config, store, streams) = streams_sharing_objects(&fixture, &meta, 8, 6).await;
    let shared = committed_objects(meta.as_ref()).await;
    assert!(
        shared.len() >= 2 && shared.iter().all(|entry| entry.ranges.len() == 8),
        "every object holds a range of all eight streams"
    );

    // Each stream drops its first k waves (4 offsets each), all at once: every trim
    // rewrites records the others rewrite too.
    let trims: Vec<_> = streams
        .iter()
        .enumerate()
        .map(|(k, &id)| {
            let store = store.clone();
            let new_start = 4 * (k as u64 % 5 + 1);
            tokio::spawn(async move { (id, new_start, store.trim(id, new_start).await) })
        })
        .collect();
    let mut expected = HashMap::new();
    for trim in trims {
        let (id, new_start, outcome) = trim.await.expect("task");
        outcome.unwrap_or_else(|err| panic!("trim of stream {} failed: {err}", id.0));
        expected.insert(id, new_start);
    }
    for entry in committed_objects(meta.as_ref()).await {
        for (stream, range) in &entry.ranges {
            assert!(
                range.start_offset >= expected[stream],
                "stream {} still lists {}..{} below its start {}",
                stream.0,
                range.start_offset,
                range.end_offset,
                expected[stream]
            );
        }
    }
    drop(store);

    let reopened = fixture.next_owner(meta, config).await;
    for (&id, &start) in &expected {
        let read = open_and_read(&reopened, id, start).await;
        assert_eq!(reopened.offsets(id).expect("offsets"), (start, 24));
        assert_eq!(read.len() as u64, (24 - start) / 4);
    }
}

#[tokio::test]
async fn ranges_of_the_earlier_layout_move_into_object_records_on_open() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let store = fixture.store_on(meta.clone(), fixture.config()).await;
    let streams = open_new_streams(&store, 3).await;
    for (i, id) in streams.iter().enumerate() {
        for seed in 0..5 {
            store
                .append(*id, batch(10, seed + 10 * i as i64))
                .await
                .expect("append");
        }
        store.flush().await.expect("flush");
    }
    drop(store);

    // Rewrite the metadata as an earlier build left it: bare object records and one
    // record per stream range.
    let mut txn = Txn::new();
    let mut legacy = 0;
    for entry in committed_objects(meta.as_ref()).await {
        txn = txn.and_then(Op::put(
            metadata::object_key(entry.id),
            entry.record.value(),
        ));
        for (stream, range) in &entry.ranges {
            let (key, value) = range_migration::legacy_record(*stream, range);
            txn = txn.and_then(Op::put(key, value));
            legacy += 1;
        }
    }
    assert!(legacy >= 3);
    assert!(meta.txn(txn).await.expect("txn").succeeded);

    let store = fixture.next_owner(meta.clone(), fixture.config()).await;
    for (i, id) in streams.iter().enumerate() {
        store.open_stream(*id).await.expect("open");
        let expected: Vec<RecordBatch> = (0..5)
            .map(|seed| batch(10, seed + 10 * i as i64).with_base_offset(10 * seed as u64))
            .collect();
        assert_eq!(read_all(&store, *id, 0).await, expected);
    }
    let listed: usize = committed_objects(meta.as_ref())
        .await
        .iter()
        .map(|entry| entry.ranges.len())
        .sum();
    assert_eq!(
        listed, legacy,
        "every legacy range now in its object's record"
    );
    assert_eq!(
        legacy_range_records(meta.as_ref()).await,
        0,
        "the legacy records are gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compactions_of_streams_sharing_objects_all_commit() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let (config, store, streams) = streams_sharing_objects(&fixture, &meta, 8, 10).await;

    // Every commit rewrites the ten records the seven others rewrite too.
    let runs: Vec<_> = streams
        .iter()
        .map(|&id| {
            let store = store.clone();
            tokio::spawn(async move { (id, store.compact(id).await) })
        })
        .collect();
    for run in runs {
        let (id, report) = run.await.expect("task");
        let report = report.unwrap_or_else(|err| panic!("stream {}: {err}", id.0));
        assert_eq!(
            (report.objects_written, report.ranges_merged),
            (1, 10),
            "stream {}: its ten ranges in one stream object",
            id.0
        );
    }
    for entry in committed_objects(meta.as_ref()).await {
        if entry.record.kind == crate::object::ObjectKind::StreamSet {
            assert!(!entry.is_referenced(), "{} still lists ranges", entry.id);
        }
    }
    drop(store);

    let reopened = fixture.next_owner(meta, config).await;
    for id in &streams {
        assert_eq!(open_and_read(&reopened, *id, 0).await.len(), 10);
    }
}

#[tokio::test]
async fn compacting_all_streams_rewrites_each_shared_record_once() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let (config, store, streams) = streams_sharing_objects(&fixture, &meta, 8, 10).await;
    let shared: Vec<crate::object::ObjectId> = committed_objects(meta.as_ref())
        .await
        .iter()
        .map(|entry| entry.id)
        .collect();
    assert_eq!(shared.len(), 10);

    let report = store.compact_all().await.expect("compaction");
    assert_eq!((report.objects_written, report.ranges_merged), (8, 80));
    for id in shared {
        let kv = meta
            .get(&metadata::object_key(id))
            .await
            .expect("get")
            .expect("record");
        // Written prepared, then committed, then emptied by one wave (compacted
        // stream by stream: once per stream, ten writes).
        assert_eq!(kv.version, 3, "{id}");
        assert!(!ObjectEntry::parse(&kv).expect("parses").is_referenced());
    }
    drop(store);

    let reopened = fixture.next_owner(meta, config).await;
    for id in &streams {
        assert_eq!(open_and_read(&reopened, *id, 0).await.len(), 10);
    }
}

/// [`streams_sharing_objects`] over a bucket whose writes can be stalled.
async fn stallable_streams_sharing_objects(
    fixture: &Fixture,
    meta: &Arc<dyn MetaStore>,
    count: usize,
) -> (StoreConfig, StreamStore, Vec<StreamId>, StallLayer) {
    let stall = StallLayer::new("objects/", Duration::from_secs(3));
    let config = fixture.object_wal_config(50);
    let store = fixture
        .stalled_store(&stall, meta.clone(), config.clone())
        .await;
    let streams = open_new_streams(&store, count).await;
    append_in_shared_windows(&store, &streams, 10).await;
    (config, store, streams, stall)
}

/// Trims `stream` to offset 8 (two of its ranges) while a write is stalled, and
/// checks that the trim did not wait for it.
async fn trim_while_stalled(store: &StreamStore, stream: StreamId, stall: &StallLayer) {
    stall.stalled().await;
    let started = std::time::Instant::now();
    // Each window gave each stream a range of 4 records: this drops two of them.
    store.trim(stream, 8).await.expect("trim");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the trim waited {took:?} for a stalled write to end"
    );
}

/// The next owner reads the first of `streams` from offset 8 (after
/// [`trim_while_stalled`]) and every other one whole.
async fn reopen_with_the_first_trimmed(
    fixture: &Fixture,
    meta: Arc<dyn MetaStore>,
    config: StoreConfig,
    streams: &[StreamId],
) {
    let reopened = fixture.next_owner(meta, config).await;
    assert_eq!(open_and_read(&reopened, streams[0], 8).await.len(), 8);
    for id in &streams[1..] {
        assert_eq!(open_and_read(&reopened, *id, 0).await.len(), 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trim_does_not_wait_for_the_copies_of_a_compaction_wave() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let (config, store, streams, stall) =
        stallable_streams_sharing_objects(&fixture, &meta, 4).await;

    stall.stall_next(1);
    let compaction = tokio::spawn({
        let store = store.clone();
        async move { store.compact_all().await }
    });
    trim_while_stalled(&store, streams[0], &stall).await;

    let report = compaction.await.expect("task").expect("compaction");
    assert_eq!(
        (report.objects_written, report.ranges_merged),
        (3, 30),
        "the trimmed stream's copy is discarded, the others commit"
    );
    let again = store.compact_all().await.expect("compaction");
    assert_eq!(
        (again.objects_written, again.ranges_merged),
        (1, 8),
        "the trimmed stream is compacted from its new start"
    );
    drop(store);

    reopen_with_the_first_trimmed(&fixture, meta, config, &streams).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trim_does_not_wait_for_a_merge_and_discards_it() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let (config, store, streams, stall) =
        stallable_streams_sharing_objects(&fixture, &meta, 4).await;

    stall.stall_next(1);
    let merge = tokio::spawn({
        let store = store.clone();
        async move { store.merge_stream_sets().await }
    });
    trim_while_stalled(&store, streams[0], &stall).await;
    let report = merge.await.expect("task").expect("merge");
    assert_eq!(
        report.objects_written, 0,
        "the trimmed stream's ranges changed under the merge: {report:?}"
    );
    let again = store.merge_stream_sets().await.expect("merge");
    assert_eq!(
        (again.objects_merged, again.objects_written),
        (10, 1),
        "the ten windows, still shared by the other streams: {again:?}"
    );
    drop(store);

    reopen_with_the_first_trimmed(&fixture, meta, config, &streams).await;
}

/// A metadata store counting the scans of the object records.
struct ObjectScans {
    inner: Arc<dyn MetaStore>,
    scans: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl MetaStore for ObjectScans {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, MetaError> {
        self.inner.get(key).await
    }

    async fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<KeyValue>, MetaError> {
        if prefix == metadata::OBJECTS_PREFIX {
            self.scans.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.scan_prefix(prefix, limit).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        self.inner.txn(txn).await
    }

    async fn watch(&self, prefix: &[u8]) -> Result<WatchStream, MetaError> {
        self.inner.watch(prefix).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetaError> {
        self.inner.keep_alive(lease).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetaError> {
        self.inner.revoke_lease(lease).await
    }
}

#[tokio::test]
async fn streams_opened_together_read_the_object_records_once() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let (config, store, mut streams) = streams_sharing_objects(&fixture, &meta, 8, 10).await;
    store.trim(streams[3], 8).await.expect("trim");
    drop(store);

    let counted = Arc::new(ObjectScans {
        inner: meta,
        scans: std::sync::atomic::AtomicUsize::new(0),
    });
    let reopened = fixture.next_owner(counted.clone(), config).await;
    let scans_at_open = counted.scans.load(std::sync::atomic::Ordering::SeqCst);
    let unknown = StreamId(1 << 40);
    streams.push(unknown);
    assert!(
        matches!(
            reopened.open_streams(&streams).await,
            Err(StoreError::UnknownStream(id)) if id == unknown
        ),
        "the stream that does not exist is named"
    );
    assert_eq!(
        counted.scans.load(std::sync::atomic::Ordering::SeqCst) - scans_at_open,
        1,
        "one read of the object records for eight streams"
    );
    streams.pop();
    for (i, &id) in streams.iter().enumerate() {
        let start = if i == 3 { 8 } else { 0 };
        assert_eq!(reopened.offsets(id).expect("open"), (start, 40));
        let read = read_all(&reopened, id, start).await;
        assert_dense(&read, start);
        assert_eq!(read.len(), 10 - start as usize / 4);
    }
    // Already open: nothing to take, nothing read.
    reopened.open_streams(&streams).await.expect("open again");
    assert_eq!(
        counted.scans.load(std::sync::atomic::Ordering::SeqCst) - scans_at_open,
        1
    );
}

#[tokio::test]
async fn replaying_the_wal_opens_its_streams_together_and_skips_deleted_ones() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let store = fixture.store_on(meta.clone(), fixture.config()).await;
    let streams = open_new_streams(&store, 8).await;
    for (i, &id) in streams.iter().enumerate() {
        store.append(id, batch(3, i as i64)).await.expect("append");
    }
    drop(store);
    // Deleted by another owner after its records were written (no upload here).
    let deleted = streams[5];
    let txn = Txn::new()
        .and_then(Op::Delete {
            key: metadata::epoch_key(deleted),
        })
        .and_then(Op::Delete {
            key: metadata::start_key(deleted),
        });
    assert!(meta.txn(txn).await.expect("txn").succeeded);

    let counted = |inner: Arc<dyn MetaStore>| {
        Arc::new(ObjectScans {
            inner,
            scans: std::sync::atomic::AtomicUsize::new(0),
        })
    };
    // An open with nothing to replay, for the scans the open itself makes.
    let mut empty_wal = fixture.config();
    empty_wal.wal_dir = fixture.dir.path().join("empty-wal");
    let baseline = counted(meta.clone());
    drop(fixture.store_on(baseline.clone(), empty_wal).await);

    let replaying = counted(meta);
    let store = fixture.store_on(replaying.clone(), fixture.config()).await;
    let scans = |m: &ObjectScans| m.scans.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        scans(&replaying),
        scans(&baseline) + 1,
        "the WAL's seven streams opened with one read of the object records"
    );
    for (i, &id) in streams.iter().enumerate() {
        if id == deleted {
            assert!(matches!(
                store.offsets(id),
                Err(StoreError::StreamNotOpen(_))
            ));
            continue;
        }
        assert_eq!(
            read_all(&store, id, 0).await,
            vec![batch(3, i as i64).with_base_offset(0)]
        );
    }
}
