//! A store appending in a child process killed with SIGKILL, again and again:
//! every acknowledged append is read back once and in order.

use super::*;

/// Child side of the crash test; does nothing unless started by the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_appends_until_killed() {
    let Ok(dir) = std::env::var("STRATA_STORE_CRASH_DIR") else {
        return;
    };
    let root = Path::new(&dir);
    let text = format!(
        "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
        root.join("bucket").display()
    );
    let storage =
        Storage::open(&StorageConfig::from_document(&text).expect("config")).expect("storage");
    let meta: Arc<dyn MetaStore> = Arc::new(
        EmbeddedMetaStore::open(&root.join("meta"), EmbeddedOptions::default())
            .await
            .expect("meta"),
    );
    let mut config = StoreConfig::new(root.join("wal"));
    // Small uploads, often: kills land during uploads too.
    config.upload_bytes = 16 * 1024;
    config.upload_interval = Duration::from_millis(20);
    let store = StreamStore::open(storage, meta.clone(), config)
        .await
        .expect("store");
    let stream = match meta.get(b"c/stream").await.expect("get") {
        Some(_) => StreamId(0),
        None => store.create_stream().await.expect("create"),
    };
    store.open_stream(stream).await.expect("open");
    let mut stdout = std::io::stdout();
    for i in 0.. {
        let pending: Vec<_> = (0..4)
            .map(|k| store.append(stream, batch(3, i * 4 + k)))
            .collect();
        for append in pending {
            let appended = append.await.expect("append");
            writeln!(stdout, "{} {}", appended.base_offset, appended.end_offset).expect("stdout");
        }
        stdout.flush().expect("flush");
    }
}
#[test]
fn every_acknowledged_append_survives_sigkill_exactly_once_and_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked: Vec<(u64, u64)> = Vec::new();
    for round in 0..4u64 {
        let lines = crate::test_support::run_until_sigkill(
            "store::tests::crash::crash_child_appends_until_killed",
            "STRATA_STORE_CRASH_DIR",
            dir.path(),
            Duration::from_millis(400 + 230 * round),
        );
        let this_round = crate::test_support::number_pairs(&lines);
        assert!(
            !this_round.is_empty(),
            "round {round}: nothing acknowledged"
        );
        acked.extend(this_round);

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let root = dir.path();
            let text = format!(
                "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
                root.join("bucket").display()
            );
            let storage = Storage::open(&StorageConfig::from_document(&text).expect("config"))
                .expect("storage");
            let meta: Arc<dyn MetaStore> = Arc::new(
                EmbeddedMetaStore::open(&root.join("meta"), EmbeddedOptions::default())
                    .await
                    .expect("meta"),
            );
            let mut config = StoreConfig::new(root.join("wal"));
            config.upload_interval = Duration::from_secs(3600);
            let store = StreamStore::open(storage, meta.clone(), config)
                .await
                .expect("reopen after SIGKILL");
            let stream = StreamId(0);
            store.open_stream(stream).await.expect("open");
            let all = read_all(&store, stream, 0).await;
            assert_dense(&all, 0);
            let ends: std::collections::HashSet<(u64, u64)> = all
                .iter()
                .map(|b| (b.base_offset(), b.end_offset()))
                .collect();
            for (base, end) in &acked {
                assert!(
                    ends.contains(&(*base, *end)),
                    "round {round}: acknowledged batch {base}..{end} lost"
                );
            }
            // Closing deletes the records of object ids allocated ahead and unused.
            store.close().await.expect("close");
            for kv in meta
                .scan_prefix(metadata::OBJECTS_PREFIX, 0)
                .await
                .expect("scan")
            {
                let record = metadata::ObjectRecord::parse(&kv).expect("record");
                assert_eq!(
                    record.state,
                    metadata::ObjectState::Committed,
                    "round {round}: an orphan survived open"
                );
            }
        });
    }
}
