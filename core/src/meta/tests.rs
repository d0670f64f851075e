use std::io::Write;
use std::time::Duration;

use bytes::Bytes;

use super::*;

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

async fn open(dir: &std::path::Path) -> EmbeddedMetaStore {
    EmbeddedMetaStore::open(dir, EmbeddedOptions::default())
        .await
        .expect("open")
}

#[tokio::test]
async fn puts_gets_and_scans_with_revisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    let r1 = store.put(b("topics/a"), b("1")).await.expect("put");
    let r2 = store.put(b("topics/b"), b("2")).await.expect("put");
    let r3 = store.put(b("topics/a"), b("3")).await.expect("put");
    assert!(r1 < r2 && r2 < r3);
    store.put(b("topicz"), b("x")).await.expect("put");

    let a = store.get(b"topics/a").await.expect("get").expect("present");
    assert_eq!(
        (a.value, a.create_revision, a.mod_revision, a.version),
        (b("3"), r1, r3, 2)
    );
    let scanned: Vec<Bytes> = store
        .scan_prefix(b"topics/", 0)
        .await
        .expect("scan")
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(scanned, [b("topics/a"), b("topics/b")]);
    assert_eq!(
        store.scan_prefix(b"topics/", 1).await.expect("scan").len(),
        1
    );

    store.delete(b("topics/a")).await.expect("delete");
    assert_eq!(store.get(b"topics/a").await.expect("get"), None);
}

#[tokio::test]
async fn transactions_apply_one_branch_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    let create = Txn::new()
        .when(Compare::Absent(b("k")))
        .and_then(Op::put("k", "v1"))
        .and_then(Op::put("log", "created"));
    assert!(store.txn(create.clone()).await.expect("txn").succeeded);
    let again = store
        .txn(create.or_else(Op::put("log", "lost")))
        .await
        .expect("txn");
    assert!(!again.succeeded);
    assert_eq!(
        store.get(b"log").await.expect("get").map(|kv| kv.value),
        Some(b("lost"))
    );

    let kv = store.get(b"k").await.expect("get").expect("present");
    let cas = |revision| {
        Txn::new()
            .when(Compare::ModRevision(b("k"), revision))
            .and_then(Op::put("k", "v2"))
    };
    assert!(
        store
            .txn(cas(kv.mod_revision))
            .await
            .expect("txn")
            .succeeded
    );
    assert!(
        !store
            .txn(cas(kv.mod_revision))
            .await
            .expect("txn")
            .succeeded,
        "a stale revision must not win"
    );
    let by_value = Txn::new()
        .when(Compare::Value(b("k"), b("v2")))
        .and_then(Op::Delete { key: b("k") });
    assert!(store.txn(by_value).await.expect("txn").succeeded);
}

/// The fencing pattern the stream store relies on: every commit of an owner
/// compares the owner epoch, so once a new owner bumped it, the old one cannot commit.
#[tokio::test]
async fn a_stale_epoch_is_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    let epoch_key = b("streams/7/epoch");
    let take = |epoch: u64| {
        Txn::new()
            .when(Compare::Value(
                epoch_key.clone(),
                Bytes::from((epoch - 1).to_string()),
            ))
            .and_then(Op::put(epoch_key.clone(), Bytes::from(epoch.to_string())))
    };
    store.put(epoch_key.clone(), b("0")).await.expect("init");
    assert!(store.txn(take(1)).await.expect("txn").succeeded);
    assert!(store.txn(take(2)).await.expect("txn").succeeded);
    let commit_as = |epoch: u64, object: &str| {
        Txn::new()
            .when(Compare::Value(
                epoch_key.clone(),
                Bytes::from(epoch.to_string()),
            ))
            .and_then(Op::put(format!("streams/7/objects/{object}"), "range"))
    };
    assert!(
        !store
            .txn(commit_as(1, "stale"))
            .await
            .expect("txn")
            .succeeded
    );
    assert!(
        store
            .txn(commit_as(2, "current"))
            .await
            .expect("txn")
            .succeeded
    );
    assert_eq!(
        store
            .scan_prefix(b"streams/7/objects/", 0)
            .await
            .expect("scan")
            .len(),
        1
    );
}

#[tokio::test]
async fn state_survives_reopen_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path()).await;
        for i in 0..50 {
            store
                .put(
                    Bytes::from(format!("k{i:02}")),
                    Bytes::from(format!("v{i}")),
                )
                .await
                .expect("put");
        }
        store.delete(b("k07")).await.expect("delete");
    }
    // A crash in the middle of a write: half a frame at the end.
    let path = dir.path().join("meta.log");
    let mut torn = Vec::new();
    crate::frame::encode(b"a record that never finished", &mut torn);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open log");
    file.write_all(&torn[..torn.len() / 2]).expect("append");
    drop(file);

    let store = open(dir.path()).await;
    let all = store.scan_prefix(b"k", 0).await.expect("scan");
    assert_eq!(all.len(), 49);
    assert_eq!(store.get(b"k07").await.expect("get"), None);
    assert_eq!(
        store.get(b"k49").await.expect("get").map(|kv| kv.value),
        Some(b("v49"))
    );
    let revision = store
        .put(b("after"), b("crash"))
        .await
        .expect("put after recovery");
    assert_eq!(revision, 52);
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(
        store.get(b"after").await.expect("get").map(|kv| kv.value),
        Some(b("crash"))
    );
}

#[tokio::test]
async fn compaction_keeps_state_and_revisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        compact_after_bytes: 4096,
    };
    let before = {
        let store = EmbeddedMetaStore::open(dir.path(), options)
            .await
            .expect("open");
        for round in 0..40 {
            for key in 0..10 {
                store
                    .put(
                        Bytes::from(format!("k{key}")),
                        Bytes::from(format!("round {round}")),
                    )
                    .await
                    .expect("put");
            }
        }
        store.scan_prefix(b"", 0).await.expect("scan")
    };
    let log_len = std::fs::metadata(dir.path().join("meta.log"))
        .expect("stat")
        .len();
    assert!(
        log_len < 4096 * 2,
        "the log was not compacted: {log_len} bytes"
    );
    let store = EmbeddedMetaStore::open(dir.path(), options)
        .await
        .expect("reopen");
    assert_eq!(store.scan_prefix(b"", 0).await.expect("scan"), before);
    assert_eq!(store.put(b("next"), b("x")).await.expect("put"), 401);
}

#[tokio::test]
async fn watches_see_changes_under_their_prefix_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    let mut watch = store.watch(b"brokers/").await.expect("watch");
    store.put(b("brokers/1"), b("up")).await.expect("put");
    store.put(b("topics/x"), b("ignored")).await.expect("put");
    store.delete(b("brokers/1")).await.expect("delete");
    let first = watch.next().await.expect("not lagged").expect("event");
    assert_eq!(
        (first.kind, first.kv.key, first.kv.value),
        (WatchEventKind::Put, b("brokers/1"), b("up"))
    );
    let second = watch.next().await.expect("not lagged").expect("event");
    assert_eq!(
        (second.kind, second.kv.key),
        (WatchEventKind::Delete, b("brokers/1"))
    );
}

#[tokio::test]
async fn leases_expire_unless_kept_alive_and_die_with_the_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    let short = store
        .grant_lease(Duration::from_millis(300))
        .await
        .expect("lease");
    let kept = store
        .grant_lease(Duration::from_millis(300))
        .await
        .expect("lease");
    let put_with = |key: &str, lease| {
        Txn::new().and_then(Op::Put {
            key: b(key),
            value: b("v"),
            lease: Some(lease),
        })
    };
    store
        .txn(put_with("brokers/short", short))
        .await
        .expect("put");
    store
        .txn(put_with("brokers/kept", kept))
        .await
        .expect("put");
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.keep_alive(kept).await.expect("keep alive");
    }
    assert_eq!(
        store.get(b"brokers/short").await.expect("get"),
        None,
        "expired lease kept its key"
    );
    assert!(store.get(b"brokers/kept").await.expect("get").is_some());
    assert!(matches!(
        store.keep_alive(short).await,
        Err(MetaError::LeaseNotFound(_))
    ));
    assert!(matches!(
        store.txn(put_with("x", short)).await,
        Err(MetaError::LeaseNotFound(_))
    ));
    drop(store);

    let store = open(dir.path()).await;
    assert_eq!(
        store.get(b"brokers/kept").await.expect("get"),
        None,
        "a lease of the previous run survived it"
    );
}

/// Writers of the crash test's child, committing at once so commits share fsyncs.
const CRASH_WRITERS: u64 = 8;

/// Child side of the crash test: each writer commits its keys one by one, printing
/// "writer index" once a commit returned. Does nothing unless started by the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_commits_until_killed() {
    let Ok(dir) = std::env::var("STRATA_META_CRASH_DIR") else {
        return;
    };
    let store = open(std::path::Path::new(&dir)).await;
    let writers: Vec<_> = (0..CRASH_WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0u64.. {
                    let key = Bytes::from(format!("acked/{w}/{i:08}"));
                    store
                        .txn(
                            Txn::new()
                                .when(Compare::Absent(key.clone()))
                                .and_then(Op::put(key, Bytes::from(vec![7u8; 300]))),
                        )
                        .await
                        .expect("commit");
                    // One write per line under the stdout lock: lines never interleave.
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "{w} {i}").expect("stdout");
                    stdout.flush().expect("flush");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
}

#[test]
fn every_acknowledged_commit_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..3 {
        let lines = crate::test_support::run_until_sigkill(
            "meta::tests::crash_child_commits_until_killed",
            "STRATA_META_CRASH_DIR",
            dir.path(),
            Duration::from_millis(300 + 150 * round),
        );
        let acked = crate::test_support::number_pairs(&lines);
        assert!(
            !acked.is_empty(),
            "round {round}: the child acknowledged nothing"
        );

        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let store = open(dir.path()).await;
            for (w, i) in &acked {
                let key = format!("acked/{w}/{i:08}");
                assert!(
                    store.get(key.as_bytes()).await.expect("get").is_some(),
                    "round {round}: acknowledged {key} lost"
                );
            }
            // Each writer commits in order: what is there of it is a prefix, no gaps.
            for w in 0..CRASH_WRITERS {
                let prefix = format!("acked/{w}/");
                let present = store.scan_prefix(prefix.as_bytes(), 0).await.expect("scan");
                for (n, kv) in present.iter().enumerate() {
                    assert_eq!(
                        kv.key,
                        Bytes::from(format!("{prefix}{n:08}")),
                        "round {round}: a gap in writer {w}'s keys"
                    );
                }
            }
            // The next child counts from 0 again: give it an empty key space, and so
            // also prove that writes after a recovery work.
            for kv in store.scan_prefix(b"acked/", 0).await.expect("scan") {
                store.delete(kv.key).await.expect("delete");
            }
        });
    }
}

/// `writers` tasks putting `each` keys apiece at once; returns every revision.
async fn put_concurrently(store: &EmbeddedMetaStore, writers: u64, each: u64) -> Vec<u64> {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for i in 0..each {
                    let key = format!("w{w:02}-{i:02}");
                    revisions.push(store.put(b(&key), b("v")).await.expect("put"));
                }
                revisions
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.extend(task.await.expect("writer"));
    }
    revisions.sort_unstable();
    revisions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_share_fsyncs_and_all_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    let (writers, each) = (32, 20);
    let commits = writers * each;
    assert_eq!(
        put_concurrently(&store, writers, each).await,
        (1..=commits).collect::<Vec<_>>(),
        "one revision per commit, none twice"
    );
    let syncs = store.log_syncs();
    assert!(
        syncs < commits,
        "{syncs} fsyncs for {commits} overlapping commits: none shared"
    );
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(
        store.scan_prefix(b"w", 0).await.expect("scan").len() as u64,
        commits
    );
}

/// Compactions rewrite the log while other commits wait for their fsync: nothing
/// acknowledged may be lost to the file swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_survive_compactions_between_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        compact_after_bytes: 2048,
    };
    let store = EmbeddedMetaStore::open(dir.path(), options)
        .await
        .expect("open");
    let (writers, each) = (16, 25);
    let revisions = put_concurrently(&store, writers, each).await;
    assert_eq!(revisions.len() as u64, writers * each);
    drop(store);
    let store = EmbeddedMetaStore::open(dir.path(), options)
        .await
        .expect("reopen");
    assert_eq!(
        store.scan_prefix(b"w", 0).await.expect("scan").len() as u64,
        writers * each
    );
    assert_eq!(
        store.put(b("after"), b("v")).await.expect("put"),
        writers * each + 1,
        "revisions go on from where the compacted log left them"
    );
}
#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = open(dir.path()).await;
    first.put(b("k"), b("v")).await.expect("put");
    let Err(err) = EmbeddedMetaStore::open(dir.path(), EmbeddedOptions::default()).await else {
        panic!("two metadata stores opened on one directory");
    };
    assert!(matches!(err, MetaError::Locked(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("metadata directory")
            && message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    drop(first);
    let second = open(dir.path()).await;
    assert_eq!(
        second.get(b"k").await.expect("get").map(|kv| kv.value),
        Some(b("v"))
    );
}
