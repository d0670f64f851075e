//! Cold reads (from objects) beside appends: a read waiting on the object store
//! holds nothing that appends, their acknowledgements or uploads need.

use super::*;

/// How long every object read takes once the cold read starts: far longer than
/// the appends and the upload below need.
const READ_DELAY: Duration = Duration::from_secs(2);

/// Streams whose first batches are only in objects (written by an earlier store),
/// opened on a store whose object reads the returned layer can hold.
async fn streams_in_objects_only(
    fixture: &Fixture,
    config: &StoreConfig,
) -> (StreamStore, StallLayer, Vec<StreamId>, Vec<RecordBatch>) {
    let meta = fixture.meta().await;
    let earlier = fixture.store_on(meta.clone(), config.clone()).await;
    let streams = open_new_streams(&earlier, 2).await;
    let mut in_objects = Vec::new();
    for i in 0..4 {
        let appended = earlier
            .append(streams[0], batch(3, i))
            .await
            .expect("append");
        in_objects.push(batch(3, i).with_base_offset(appended.base_offset));
    }
    earlier.close().await.expect("close uploads everything");
    drop(earlier);
    // A new store caches nothing: reading the stream from offset 0 goes to objects.
    let stall = StallLayer::new("objects/", Duration::ZERO);
    let store = fixture.stalled_store(&stall, meta, config.clone()).await;
    store.open_streams(&streams).await.expect("open");
    (store, stall, streams, in_objects)
}

async fn appends_finish_while_a_cold_read_waits(fixture: &Fixture, config: StoreConfig) {
    let (store, stall, streams, in_objects) = streams_in_objects_only(fixture, &config).await;

    stall.delay_reads(READ_DELAY);
    let reader = store.clone();
    let read_stream = streams[0];
    let read = tokio::spawn(async move { reader.fetch(read_stream, 0, usize::MAX).await });
    let reading = async {
        while stall.most_reads_in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("the cold read reaches the object store");

    // Both streams take appends, the one being read included, and they are uploaded.
    let mut appended = Vec::new();
    for i in 0..8 {
        let stream = streams[i % 2];
        let placed = store
            .append(stream, batch(2, 100 + i as i64))
            .await
            .expect("append beside a cold read");
        appended.push((stream, i, placed));
    }
    store.flush().await.expect("upload beside a cold read");
    assert!(
        !read.is_finished(),
        "the appends and their upload finished only once the cold read did"
    );

    // The cold read returns what the first object holds (all four batches with the
    // local WAL's one upload, one with the object WAL's window per append).
    let fetched = read.await.expect("task").expect("cold read");
    assert!(!fetched.is_empty() && fetched.len() <= in_objects.len());
    assert_eq!(fetched[..], in_objects[..fetched.len()]);
    stall.delay_reads(Duration::ZERO);
    let all = read_all(&store, streams[0], 0).await;
    assert_eq!(all[..in_objects.len()], in_objects[..]);
    for (stream, i, placed) in appended {
        let batches = store
            .fetch(stream, placed.base_offset, usize::MAX)
            .await
            .expect("read the append back");
        assert_eq!(
            batches.first(),
            Some(&batch(2, 100 + i as i64).with_base_offset(placed.base_offset))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_read_does_not_hold_local_wal_appends() {
    let fixture = Fixture::new();
    appends_finish_while_a_cold_read_waits(&fixture, fixture.config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_read_does_not_hold_object_wal_appends() {
    let fixture = Fixture::new();
    appends_finish_while_a_cold_read_waits(&fixture, fixture.object_wal_config(5)).await;
}
