//! Giving a stream up: every acknowledged batch reaches the next owner, appends
//! after it are refused, and an append its caller dropped still settles.

use super::*;

/// Appends to `stream` one after another until the store refuses; returns the
/// acknowledged batches as stored.
async fn append_until_refused(store: StreamStore, stream: StreamId, seed: i64) -> Vec<RecordBatch> {
    let mut acked = Vec::new();
    for i in 0.. {
        let sent = batch(2, seed + i);
        match store.append(stream, sent.clone()).await {
            Ok(at) => acked.push(sent.with_base_offset(at.base_offset)),
            Err(StoreError::StreamClosing(_) | StoreError::StreamNotOpen(_)) => break,
            Err(other) => panic!("append failed with {other}"),
        }
    }
    acked
}

async fn wait_for_end(store: &StreamStore, stream: StreamId, end: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.offsets(stream).expect("offsets").1 < end {
        assert!(
            std::time::Instant::now() < deadline,
            "stream end {} never reached {end}",
            store.offsets(stream).expect("offsets").1
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Closes one of two streams while four tasks append to it, then opens it on a
/// second store (its own WAL directory, the same bucket and metadata).
async fn close_while_appending(fixture: &Fixture, config: StoreConfig) {
    let meta = fixture.meta().await;
    let old = fixture.store_on(meta.clone(), config.clone()).await;
    let streams = open_new_streams(&old, 2).await;
    let (closed, kept) = (streams[0], streams[1]);
    let appenders: Vec<_> = (0..4)
        .map(|task| tokio::spawn(append_until_refused(old.clone(), closed, task * 100_000)))
        .collect();
    wait_for_end(&old, closed, 80).await;
    if matches!(config.wal_mode, WalMode::Local) {
        assert!(
            old.unuploaded_bytes() > 0,
            "the acknowledged batches are in the WAL only when the stream is closed"
        );
    }
    old.close_stream(closed).await.expect("close the stream");

    let mut acked = Vec::new();
    for appender in appenders {
        acked.extend(appender.await.expect("appender"));
    }
    acked.sort_by_key(RecordBatch::base_offset);
    assert!(
        acked.len() >= 40,
        "only {} appends acknowledged",
        acked.len()
    );
    assert!(matches!(
        old.append(closed, batch(1, 0)).await,
        Err(StoreError::StreamNotOpen(_))
    ));
    assert!(matches!(
        old.offsets(closed),
        Err(StoreError::StreamNotOpen(_))
    ));
    assert_eq!(old.unuploaded_bytes(), 0, "closing uploaded everything");
    old.append(kept, batch(1, 1))
        .await
        .expect("the other stream still takes appends");

    let new = fixture.next_owner(meta, config).await;
    new.open_stream(closed)
        .await
        .expect("open on the next owner");
    let read = read_all(&new, closed, 0).await;
    assert_dense(&read, 0);
    assert_eq!(read.len(), acked.len(), "every acknowledged batch, once");
    assert_eq!(read, acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stream_opens_elsewhere_with_every_acknowledged_batch_local_wal() {
    let fixture = Fixture::new();
    close_while_appending(&fixture, fixture.config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stream_opens_elsewhere_with_every_acknowledged_batch_object_wal() {
    let fixture = Fixture::new();
    close_while_appending(&fixture, fixture.object_wal_config(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_stream_not_open_here_is_refused() {
    let fixture = Fixture::new();
    let store = fixture.store().await;
    let stream = store.create_stream().await.expect("create");
    assert!(matches!(
        store.close_stream(stream).await,
        Err(StoreError::StreamNotOpen(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_dropped_before_it_is_durable_still_settles() {
    let fixture = Fixture::new();
    let store = fixture.store().await;
    let stream = open_new_streams(&store, 1).await[0];
    let dropped = store.enqueue(stream, batch(3, 1)).await.expect("queued");
    let first = dropped.placement();
    drop(dropped);
    let second = store
        .append(stream, batch(2, 2))
        .await
        .expect("the append behind it");
    // Until the dropped one settles, the stream's acknowledged prefix ends at it.
    wait_for_end(&store, stream, second.end_offset).await;
    assert_eq!(
        read_all(&store, stream, 0).await,
        vec![
            batch(3, 1).with_base_offset(first.base_offset),
            batch(2, 2).with_base_offset(second.base_offset),
        ]
    );
    store.flush().await.expect("flush");
    assert_eq!(store.unuploaded_bytes(), 0);
    store.close_stream(stream).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_waits_for_the_appends_already_placed() {
    let fixture = Fixture::new();
    let meta = fixture.meta().await;
    let config = fixture.config();
    let old = fixture.store_on(meta.clone(), config.clone()).await;
    let stream = open_new_streams(&old, 1).await[0];
    let first = old.append(stream, batch(2, 1)).await.expect("first append");
    // Placed and written to the WAL, but not settled until its caller polls it.
    let queued = old.enqueue(stream, batch(3, 2)).await.expect("queued");
    let closing = tokio::spawn({
        let old = old.clone();
        async move { old.close_stream(stream).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!closing.is_finished(), "close waits for the placed append");
    let second = queued.durable().await.expect("the placed append");
    closing.await.expect("task").expect("close");

    let new = fixture.next_owner(meta, config).await;
    new.open_stream(stream)
        .await
        .expect("open on the next owner");
    assert_eq!(
        read_all(&new, stream, 0).await,
        vec![
            batch(2, 1).with_base_offset(first.base_offset),
            batch(3, 2).with_base_offset(second.base_offset),
        ]
    );
}
