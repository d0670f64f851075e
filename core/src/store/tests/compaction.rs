//! Compaction into stream objects and merges of small stream-set objects.

use super::*;

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
        stall.most_reads_in_flight() <= crate::store::compaction_copy::READS_AHEAD,
        "two compactions copied the group at once ({} reads in flight)",
        stall.most_reads_in_flight()
    );
    assert_eq!(read_all(&store, stream, 0).await, expected);
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

/// Appends a batch to each of `streams` and uploads them, `objects` times: every
/// stream has a range in every object. Returns each stream's batches as stored.
async fn every_stream_in_every_object(
    store: &StreamStore,
    streams: &[StreamId],
    objects: usize,
) -> Vec<Vec<RecordBatch>> {
    let mut stored: Vec<Vec<RecordBatch>> = vec![Vec::new(); streams.len()];
    for round in 0..objects {
        for (at, &stream) in streams.iter().enumerate() {
            let sent = batch(3, (round * streams.len() + at) as i64);
            let appended = store.append(stream, sent.clone()).await.expect("append");
            stored[at].push(sent.with_base_offset(appended.base_offset));
        }
        store.flush().await.expect("flush");
    }
    stored
}

/// Each of `streams` reads back as `expected` holds it.
async fn assert_read_back(
    store: &StreamStore,
    streams: &[StreamId],
    expected: &[Vec<RecordBatch>],
) {
    for (at, &stream) in streams.iter().enumerate() {
        assert_eq!(
            read_all(store, stream, 0).await,
            expected[at],
            "stream {at}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_compacted_together_share_their_reads_of_each_object() {
    const STREAMS: usize = 8;
    const OBJECTS: usize = 12;
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_secs(1));
    let store = fixture
        .stalled_store(&stall, fixture.meta().await, fixture.config())
        .await;
    let streams = open_new_streams(&store, STREAMS).await;
    let expected = every_stream_in_every_object(&store, &streams, OBJECTS).await;
    assert_eq!(fixture.objects(), OBJECTS, "every stream in every object");

    let before = stall.reads();
    let report = store.compact_all().await.expect("compaction");
    let reads = stall.reads() - before;
    assert_eq!(
        (report.objects_written, report.ranges_merged),
        (STREAMS, STREAMS * OBJECTS)
    );
    // Each source object's index once, then one GET per object per batch of
    // streams copied together; a stream at a time would read each object once per
    // stream (96 GETs, besides the indexes).
    let batches = STREAMS.div_ceil(super::super::compaction_copy::STREAMS_PER_BATCH);
    assert!(
        reads <= OBJECTS + OBJECTS * batches,
        "{reads} reads compacting {STREAMS} streams out of {OBJECTS} objects"
    );
    assert_read_back(&store, &streams, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_reads_fail_leaves_no_object_and_the_next_round_compacts() {
    const STREAMS: usize = 6;
    const OBJECTS: usize = 10;
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_secs(1));
    let store = fixture
        .stalled_store(&stall, fixture.meta().await, fixture.config())
        .await;
    let streams = open_new_streams(&store, STREAMS).await;
    let expected = every_stream_in_every_object(&store, &streams, OBJECTS).await;

    // The first batch (four streams) reads its indexes and a few objects, then the
    // store fails every read: its copies are written in part.
    stall.fail_reads_after(Some(OBJECTS as u32 + 4));
    let failed = store.compact_all().await;
    assert!(
        matches!(failed, Err(StoreError::Storage { .. })),
        "{failed:?}"
    );
    stall.fail_reads_after(None);
    assert_eq!(
        fixture.objects(),
        OBJECTS,
        "the failed batch's stream objects are removed"
    );
    assert_read_back(&store, &streams, &expected).await;

    let report = store.compact_all().await.expect("compaction");
    assert_eq!(report.objects_written, STREAMS);
    assert_read_back(&store, &streams, &expected).await;
}
