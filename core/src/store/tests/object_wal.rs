//! The object WAL's window pipeline: several writes at once, commits in order.

use super::*;
use crate::test_support::StallLayer;

/// A batch of a fixed size: 2 records, 461 bytes.
fn fixed_batch(seed: i64) -> RecordBatch {
    synthetic_batch(2, 400, seed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_write_holds_the_commits_behind_it_not_their_writes() {
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_secs(2));
    let storage = fixture.storage().with_layer(stall.clone());
    // A fresh store has no write latencies to hedge on: the stall runs its course.
    let store = StreamStore::open(storage, fixture.meta().await, fixture.object_wal_config(5))
        .await
        .expect("store");
    let stream = open_new_streams(&store, 1).await[0];

    stall.stall_next(1);
    let mut appends = Vec::new();
    let first = store.clone();
    appends.push(tokio::spawn(async move {
        first.append(stream, fixed_batch(0)).await
    }));
    stall.stalled().await;
    // Six more windows, one after another: more than the writes allowed at once.
    let later = 6;
    for i in 1..=later {
        let store = store.clone();
        appends.push(tokio::spawn(async move {
            store.append(stream, fixed_batch(i)).await
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    while fixture.objects() < later as usize && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        fixture.objects() >= later as usize,
        "{} objects written while the first write stalled: a finished write must free \
         its slot for the next window",
        fixture.objects()
    );
    assert!(
        appends.iter().all(|append| !append.is_finished()),
        "no append may be acknowledged before the stalled window before it"
    );

    let mut expected = Vec::new();
    for (i, append) in appends.into_iter().enumerate() {
        let appended = append.await.expect("task").expect("append");
        assert_eq!(
            appended.base_offset,
            2 * i as u64,
            "offsets in append order"
        );
        expected.push(fixed_batch(i as i64).with_base_offset(appended.base_offset));
    }
    assert_eq!(read_all(&store, stream, 0).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_goes_out_in_windows_of_at_most_the_window_size() {
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_secs(1));
    let storage = fixture.storage().with_layer(stall.clone());
    let mut config = fixture.object_wal_config(5);
    let WalMode::Object(options) = &mut config.wal_mode else {
        unreachable!("an object-WAL config");
    };
    // Five 461-byte batches reach it (four do not).
    options.max_bytes = 2048;
    let store = StreamStore::open(storage, fixture.meta().await, config)
        .await
        .expect("store");
    let stream = open_new_streams(&store, 1).await[0];

    // Every write slot stalled, one batch each.
    let slots = 4;
    stall.stall_next(slots);
    let mut appends = Vec::new();
    for i in 0..slots {
        let store = store.clone();
        appends.push(tokio::spawn(async move {
            store.append(stream, fixed_batch(i as i64)).await
        }));
        stall.stalled().await;
    }
    // Forty batches gather behind them: eight windows' worth.
    let backlog = 40;
    for i in slots..slots + backlog {
        let queued = store
            .enqueue(stream, fixed_batch(i as i64))
            .await
            .expect("enqueue");
        appends.push(tokio::spawn(queued.durable()));
    }
    let mut expected = Vec::new();
    for (i, append) in appends.into_iter().enumerate() {
        let appended = append.await.expect("task").expect("append");
        expected.push(fixed_batch(i as i64).with_base_offset(appended.base_offset));
    }
    assert_eq!(
        fixture.objects(),
        slots + backlog / 5,
        "the backlog went out as windows of five batches, not as one object"
    );
    assert_eq!(read_all(&store, stream, 0).await, expected);
}
