//! Retention by time and bytes, garbage collection and its grace period, and
//! deleted streams.

use super::*;

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
