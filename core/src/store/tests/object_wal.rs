//! The object WAL: one object per window for all streams, failed and hedged writes,
//! the tail kept in the log cache, and the window pipeline (several writes at once,
//! commits in order).

use super::*;

/// A batch of a fixed size: 2 records, 461 bytes.
fn fixed_batch(seed: i64) -> RecordBatch {
    synthetic_batch(2, 400, seed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_write_holds_the_commits_behind_it_not_their_writes() {
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_secs(2));
    let meta = fixture.meta().await;
    // A fresh store has no write latencies to hedge on: the stall runs its course.
    let store = fixture
        .stalled_store(&stall, meta.clone(), fixture.object_wal_config(5))
        .await;
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

    let records = meta
        .scan_prefix(metadata::OBJECTS_PREFIX, 100)
        .await
        .expect("object records");
    // Ids are allocated ahead: records of ids not used yet are still prepared.
    let committed: Vec<&crate::meta::KeyValue> = records
        .iter()
        .filter(|kv| {
            metadata::ObjectRecord::parse(kv)
                .expect("object record")
                .state
                == metadata::ObjectState::Committed
        })
        .collect();
    let commits: std::collections::BTreeSet<u64> =
        committed.iter().map(|kv| kv.mod_revision).collect();
    assert_eq!(
        (committed.len(), commits.len()),
        (1 + later as usize, 1),
        "the windows written while the first stalled commit with it, in one transaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_stream_fails_only_its_own_appends() {
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_secs(1));
    let meta = fixture.meta().await;
    let old = fixture
        .stalled_store(&stall, meta.clone(), fixture.object_wal_config(5))
        .await;
    let new = fixture.next_owner(meta, fixture.config()).await;
    let streams = open_new_streams(&old, 2).await;
    let (kept, taken) = (streams[0], streams[1]);

    // The first window stalls; the two behind it are written meanwhile, so all three
    // are committed together when it ends, in a transaction the taken stream's epoch
    // refuses.
    stall.stall_next(1);
    let append = |stream, seed| {
        let old = old.clone();
        tokio::spawn(async move { old.append(stream, fixed_batch(seed)).await })
    };
    let first = append(kept, 0);
    stall.stalled().await;
    new.open_stream(taken).await.expect("take over");
    let fenced = append(taken, 1);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let behind = append(kept, 2);
    let deadline = std::time::Instant::now() + Duration::from_millis(900);
    while fixture.objects() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        fixture.objects() >= 2,
        "the later windows were written during the stall"
    );

    let first = first
        .await
        .expect("task")
        .expect("the kept stream's first append");
    match fenced.await.expect("task") {
        Err(StoreError::Fenced { stream, .. }) => assert_eq!(stream, taken),
        other => panic!("the taken stream's append must fail as fenced, got {other:?}"),
    }
    let behind = behind
        .await
        .expect("task")
        .expect("the kept stream's append behind the taken stream's");
    assert_eq!(
        read_all(&old, kept, 0).await,
        vec![
            fixed_batch(0).with_base_offset(first.base_offset),
            fixed_batch(2).with_base_offset(behind.base_offset),
        ]
    );
    assert!(
        matches!(
            old.append(taken, fixed_batch(3)).await,
            Err(StoreError::Fenced { .. })
        ),
        "later appends to the taken stream are refused at once"
    );
    assert_eq!(new.offsets(taken).expect("offsets"), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_goes_out_in_windows_of_at_most_the_window_size() {
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_secs(1));
    // Five 461-byte batches reach 2048 bytes (four do not).
    let config = fixture.object_wal_config_with(5, 2048);
    let store = fixture
        .stalled_store(&stall, fixture.meta().await, config)
        .await;
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

/// A metadata store whose first window commit of a stream after
/// [`HeldCommit::hold`] (a transaction conditional on its epoch) waits until released.
struct HeldCommit {
    inner: Arc<dyn MetaStore>,
    /// The epoch key of the stream whose next commit is held.
    held: std::sync::Mutex<Option<bytes::Bytes>>,
    reached: tokio::sync::Notify,
    released: tokio::sync::Semaphore,
}

impl HeldCommit {
    fn new(inner: Arc<dyn MetaStore>) -> Self {
        HeldCommit {
            inner,
            held: std::sync::Mutex::new(None),
            reached: tokio::sync::Notify::new(),
            released: tokio::sync::Semaphore::new(0),
        }
    }

    fn hold(&self, stream: StreamId) {
        *self.held.lock().expect("held") = Some(metadata::epoch_key(stream));
    }

    fn release(&self) {
        self.released.add_permits(1);
    }
}

#[async_trait::async_trait]
impl MetaStore for HeldCommit {
    async fn get(
        &self,
        key: &[u8],
    ) -> Result<Option<crate::meta::KeyValue>, crate::meta::MetaError> {
        self.inner.get(key).await
    }

    async fn scan_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<crate::meta::KeyValue>, crate::meta::MetaError> {
        self.inner.scan_prefix(prefix, limit).await
    }

    async fn txn(&self, txn: Txn) -> Result<crate::meta::TxnOutcome, crate::meta::MetaError> {
        let held = {
            let mut held = self.held.lock().expect("held");
            let commit = txn.compares.iter().any(
                |c| matches!((c, held.as_ref()), (Compare::Value(key, _), Some(epoch)) if key == epoch),
            );
            commit && held.take().is_some()
        };
        if held {
            self.reached.notify_one();
            let _released = self.released.acquire().await;
        }
        self.inner.txn(txn).await
    }

    async fn watch(
        &self,
        prefix: &[u8],
    ) -> Result<crate::meta::WatchStream, crate::meta::MetaError> {
        self.inner.watch(prefix).await
    }

    async fn grant_lease(
        &self,
        ttl: Duration,
    ) -> Result<crate::meta::LeaseId, crate::meta::MetaError> {
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: crate::meta::LeaseId) -> Result<(), crate::meta::MetaError> {
        self.inner.keep_alive(lease).await
    }

    async fn revoke_lease(
        &self,
        lease: crate::meta::LeaseId,
    ) -> Result<(), crate::meta::MetaError> {
        self.inner.revoke_lease(lease).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_are_written_while_a_commit_waits_for_the_metadata_store() {
    let fixture = Fixture::new();
    let meta = Arc::new(HeldCommit::new(fixture.meta().await));
    let store = fixture
        .store_on(meta.clone(), fixture.object_wal_config(5))
        .await;
    let stream = open_new_streams(&store, 1).await[0];
    let mut expected = Vec::new();
    let appended = store.append(stream, fixed_batch(0)).await.expect("append");
    expected.push(fixed_batch(0).with_base_offset(appended.base_offset));
    let before = fixture.objects();

    meta.hold(stream);
    let append = |seed| {
        let store = store.clone();
        tokio::spawn(async move { store.append(stream, fixed_batch(seed)).await })
    };
    let mut appends = vec![append(1)];
    meta.reached.notified().await;
    for seed in 2..=3 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        appends.push(append(seed));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while fixture.objects() < before + 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        fixture.objects(),
        before + 3,
        "the windows behind a commit held by the metadata store are written meanwhile"
    );
    assert!(
        appends.iter().all(|append| !append.is_finished()),
        "no append may be acknowledged before the held commit of the window before it"
    );

    meta.release();
    for (seed, append) in (1..).zip(appends) {
        let appended = append.await.expect("task").expect("append");
        expected.push(fixed_batch(seed).with_base_offset(appended.base_offset));
    }
    assert_eq!(read_all(&store, stream, 0).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wait_once_half_the_log_cache_is_queued() {
    let fixture = Fixture::new();
    let stall = StallLayer::new("objects/", Duration::from_millis(500));
    let mut config = fixture.object_wal_config_with(5, 1024);
    // Half of it, 2048 bytes, may be queued: four 461-byte batches are below, a fifth
    // reaches it.
    config.log_cache_bytes = 4096;
    let store = fixture
        .stalled_store(&stall, fixture.meta().await, config)
        .await;
    let stream = open_new_streams(&store, 1).await[0];

    stall.stall_next(4);
    let mut appends = Vec::new();
    for i in 0..5 {
        let queued = tokio::time::timeout(
            Duration::from_millis(200),
            store.enqueue(stream, fixed_batch(i)),
        )
        .await
        .expect("room below half the log cache")
        .expect("enqueue");
        appends.push(tokio::spawn(queued.durable()));
    }
    let sixth = store.enqueue(stream, fixed_batch(5));
    tokio::pin!(sixth);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut sixth)
            .await
            .is_err(),
        "half the log cache is queued: the next append waits"
    );
    appends.push(tokio::spawn(sixth.await.expect("enqueue").durable()));

    let mut expected = Vec::new();
    for (i, append) in appends.into_iter().enumerate() {
        let appended = append.await.expect("task").expect("append");
        expected.push(fixed_batch(i as i64).with_base_offset(appended.base_offset));
    }
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

/// The fixture's objects once they are `expected` (hedged writes' losers removed),
/// or after 10 s, whatever they are then.
async fn objects_once_settled(fixture: &Fixture, expected: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fixture.objects() != expected && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fixture.objects()
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
    // A window write slowed by a loaded machine may have been hedged: its loser is
    // removed once it ends.
    assert_eq!(objects_once_settled(&fixture, 40).await, 40);

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
    assert_eq!(
        objects_once_settled(&fixture, 41).await,
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
