//! Closing a store: what it finishes, what it refuses, and that nothing of it
//! outlives it.

use super::*;

/// Every acknowledged batch of `streams`, read back from a store opened on the
/// same directories as the closed one (the reopen itself shows both were released).
async fn reopen_and_read(
    fixture: &Fixture,
    config: StoreConfig,
    streams: &[StreamId],
) -> HashMap<StreamId, Vec<RecordBatch>> {
    let store = fixture.store_with(config).await;
    let mut read = HashMap::new();
    for &id in streams {
        store.open_stream(id).await.expect("open");
        read.insert(id, read_all(&store, id, 0).await);
    }
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_uploads_everything_acknowledged_and_refuses_later_appends() {
    let fixture = Fixture::new();
    let config = fixture.config();
    let store = fixture.store_with(config.clone()).await;
    let stream = open_new_streams(&store, 1).await[0];
    let mut expected = Vec::new();
    for i in 0..20 {
        let appended = store.append(stream, batch(3, i)).await.expect("append");
        expected.push(batch(3, i).with_base_offset(appended.base_offset));
    }
    assert_eq!(fixture.objects(), 0, "the upload interval is an hour");

    store.close().await.expect("close");
    assert!(fixture.objects() > 0, "closing uploaded");
    assert!(matches!(
        store.append(stream, batch(1, 99)).await,
        Err(StoreError::Closed)
    ));
    drop(store);

    // A fresh WAL directory: what is read back came from objects.
    let mut fresh = config;
    fresh.wal_dir = fixture.dir.path().join("fresh");
    let read = reopen_and_read(&fixture, fresh, &[stream]).await;
    assert_eq!(read[&stream], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_writes_the_object_wal_window_it_holds() {
    let fixture = Fixture::new();
    // Long enough that the appends below are still gathering when close begins.
    let config = fixture.object_wal_config(2_000);
    let store = fixture.store_with(config.clone()).await;
    let streams = open_new_streams(&store, 4).await;
    // The first window is taken at once; wait for it to pass so the appends gather.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued: Vec<_> = streams
        .iter()
        .map(|&id| {
            let store = store.clone();
            tokio::spawn(async move {
                let appended = store.append(id, batch(2, id.0 as i64)).await;
                (id, appended)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fixture.objects(), 0, "the window is still gathering");

    let started = std::time::Instant::now();
    store.close().await.expect("close");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "close wrote the window at once instead of waiting for its end ({:?})",
        started.elapsed()
    );
    let mut expected = HashMap::new();
    for append in queued {
        let (id, appended) = append.await.expect("task");
        let appended = appended.expect("an append queued before close is acknowledged");
        expected.insert(
            id,
            vec![batch(2, id.0 as i64).with_base_offset(appended.base_offset)],
        );
    }
    assert_eq!(fixture.objects(), 1, "one window, one object");
    drop(store);

    assert_eq!(reopen_and_read(&fixture, config, &streams).await, expected);
}

/// Closing waits for the maintenance round in progress, so nothing of the store
/// outlives it. A round that went on after its store was dropped once wrote and
/// committed beside the next store opened on the same directories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_the_maintenance_round_in_progress() {
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_secs(1));
    let mut config = fixture.object_wal_config(5);
    // The first round comes after the appends below (well under 3 s), so the windows
    // they leave are still small objects to merge when it comes.
    config.retention_interval = Duration::from_secs(3);
    let store = fixture
        .stalled_store(&stall, fixture.meta().await, config.clone())
        .await;
    let streams = open_new_streams(&store, 4).await;
    let mut expected: HashMap<StreamId, Vec<RecordBatch>> = HashMap::new();
    for round in 0..6i64 {
        for &id in &streams {
            let sent = batch(2, round * 10 + id.0 as i64);
            let appended = store.append(id, sent.clone()).await.expect("append");
            expected
                .entry(id)
                .or_default()
                .push(sent.with_base_offset(appended.base_offset));
        }
    }
    // No appends follow: the next write is the first maintenance round's (a merge
    // of the windows above), and it stalls.
    stall.stall_next(1);
    tokio::time::timeout(Duration::from_secs(10), stall.stalled())
        .await
        .expect("a maintenance round writes within 10 s");

    store.close().await.expect("close");
    drop(store);
    // With the round still running, this open would find the directories locked.
    let read = reopen_and_read(&fixture, config, &streams).await;
    assert_eq!(read, expected);
}

#[tokio::test]
async fn a_second_store_on_the_same_wal_directory_is_refused() {
    let fixture = Fixture::new();
    let first = fixture.store().await;
    let meta: Arc<dyn MetaStore> = Arc::new(
        EmbeddedMetaStore::open(
            &fixture.dir.path().join("other-meta"),
            EmbeddedOptions::default(),
        )
        .await
        .expect("meta"),
    );
    let Err(err) = StreamStore::open(fixture.storage(), meta, fixture.config()).await else {
        panic!("a second store opened on a WAL directory in use");
    };
    let message = err.to_string();
    assert!(
        message.contains("WAL directory") && message.contains("in use"),
        "{message}"
    );
    first.close().await.expect("close");
}
