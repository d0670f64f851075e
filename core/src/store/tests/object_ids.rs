//! Object ids allocated ahead: fewer metadata commits per object, and no records
//! left behind by the ids nobody took.

use super::*;
use crate::meta::{Op, Txn};

/// Successful metadata commits so far: each takes the next revision, which a probe
/// write reads back (and itself takes one).
async fn commits(meta: &dyn MetaStore) -> u64 {
    let key = bytes::Bytes::from_static(b"test/probe");
    meta.txn(Txn::new().and_then(Op::put(key.clone(), "x")))
        .await
        .expect("probe write");
    meta.get(&key)
        .await
        .expect("probe read")
        .expect("probe present")
        .mod_revision
}

/// Object records in the prepared state, read from the metadata itself.
async fn prepared_records(meta: &Arc<dyn MetaStore>) -> usize {
    meta.scan_prefix(metadata::OBJECTS_PREFIX, 0)
        .await
        .expect("scan")
        .iter()
        .filter(|kv| {
            metadata::ObjectRecord::parse(kv).expect("record").state
                == metadata::ObjectState::Prepared
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_wal_window_costs_one_metadata_commit() {
    let fixture = Fixture::new();
    let config = fixture.object_wal_config(5);
    let meta = fixture.meta().await;
    let store = fixture.store_on(meta.clone(), config).await;
    let streams = open_new_streams(&store, 2).await;
    // The first window allocates the pool's first ids.
    store.append(streams[0], batch(1, 0)).await.expect("append");

    let windows = 24;
    let before = commits(meta.as_ref()).await;
    for i in 0..windows {
        // One at a time: each append is its own window.
        store
            .append(streams[i as usize % 2], batch(2, i))
            .await
            .expect("append");
    }
    let during = commits(meta.as_ref()).await - before - 1;
    assert_eq!(
        fixture.objects(),
        windows as usize + 1,
        "one object per window"
    );
    // One commit per window, and one per eight ids allocated ahead; allocating per
    // object made it two per window.
    let most = windows as u64 + (windows as u64).div_ceil(8) + 1;
    assert!(
        during <= most,
        "{during} metadata commits for {windows} windows (at most {most})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_nobody_took_leave_no_records_behind() {
    let fixture = Fixture::new();
    let config = fixture.object_wal_config(5);
    let store = fixture.store_with(config.clone()).await;
    let stream = open_new_streams(&store, 1).await[0];
    let mut expected = Vec::new();
    for i in 0..3 {
        let appended = store.append(stream, batch(2, i)).await.expect("append");
        expected.push(batch(2, i).with_base_offset(appended.base_offset));
    }
    // Three ids taken of the first eight: a refill was started in the background.
    // Once it has landed no allocation is in flight.
    let mut waited = 0;
    while store.inner.object_ids.unused().len() < 8 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    let unused = store.inner.object_ids.unused();
    assert_eq!(
        unused.len(),
        13,
        "ids are allocated ahead, refilled when low"
    );
    assert_eq!(
        prepared_records(&store.inner.meta).await,
        unused.len(),
        "each id allocated ahead has its prepared record"
    );
    assert!(
        !store
            .object_counts()
            .await
            .expect("counts")
            .keys()
            .any(|(_, state)| *state == "prepared"),
        "object counts leave the unused ids out"
    );

    store.close().await.expect("close");
    drop(store);
    let reopened = fixture.store_with(config).await;
    assert_eq!(
        prepared_records(&reopened.inner.meta).await,
        0,
        "close deleted the records of the ids it held"
    );

    // Without close (a crash) they are prepared records like those of an upload
    // the crash interrupted, which the next open removes
    // (`objects_left_prepared_by_a_crash_are_removed_on_open`).
    reopened.open_stream(stream).await.expect("open");
    assert_eq!(read_all(&reopened, stream, 0).await, expected);
    assert_eq!(
        fixture.objects(),
        3,
        "every window's object is kept, nothing else"
    );
}
