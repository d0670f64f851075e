use std::io::Write;
use std::time::Duration;

use bytes::Bytes;

use super::*;

fn record(i: u64) -> Bytes {
    Bytes::from(format!("record {i} {}", "x".repeat((i % 50) as usize)))
}

fn small_segments() -> LocalWalOptions {
    LocalWalOptions {
        segment_bytes: 1024,
        max_group_bytes: 8 << 20,
        recycled_segments: 2,
    }
}

async fn segment_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        })
        .count()
}

#[tokio::test]
async fn records_come_back_in_order_across_segments_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (wal, recovered) = LocalWal::open(dir.path(), small_segments())
            .await
            .expect("open");
        assert!(recovered.is_empty());
        for i in 0..100 {
            assert_eq!(wal.append(record(i)).await.expect("append"), Lsn(i));
        }
    }
    assert!(
        segment_count(dir.path()).await > 3,
        "small segments should rotate"
    );
    let (wal, recovered) = LocalWal::open(dir.path(), small_segments())
        .await
        .expect("reopen");
    let expected: Vec<RecoveredRecord> = (0..100)
        .map(|i| RecoveredRecord {
            lsn: Lsn(i),
            record: record(i),
        })
        .collect();
    assert_eq!(recovered, expected);
    assert_eq!(
        wal.append(record(100)).await.expect("append"),
        Lsn(100),
        "LSNs continue after a restart"
    );
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = LocalWal::open(dir.path(), LocalWalOptions::default())
        .await
        .expect("open");
    let pending: Vec<_> = (0..500).map(|i| wal.append(record(i))).collect();
    let mut lsns = Vec::new();
    for append in pending {
        lsns.push(append.await.expect("append").0);
    }
    assert_eq!(
        lsns,
        (0..500).collect::<Vec<_>>(),
        "queue order is LSN order"
    );
    assert!(
        wal.fsync_count() < 500,
        "{} fsyncs for 500 queued appends: no group commit",
        wal.fsync_count()
    );
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (wal, _) = LocalWal::open(dir.path(), LocalWalOptions::default())
            .await
            .expect("open");
        for i in 0..10 {
            wal.append(record(i)).await.expect("append");
        }
    }
    let segment = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .expect("a segment");
    let mut torn = Vec::new();
    super::segment::encode(Lsn(10), b"never acknowledged", &mut torn);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("open")
        .write_all(&torn[..torn.len() - 3])
        .expect("write");

    let (wal, recovered) = LocalWal::open(dir.path(), LocalWalOptions::default())
        .await
        .expect("reopen");
    assert_eq!(recovered.len(), 10);
    assert_eq!(wal.append(record(10)).await.expect("append"), Lsn(10));
    drop(wal);
    let (_, recovered) = LocalWal::open(dir.path(), LocalWalOptions::default())
        .await
        .expect("reopen");
    assert_eq!(recovered.last().map(|r| r.record.clone()), Some(record(10)));
}

/// A WAL of 60 records over small segments, closed; its segment files, oldest first.
async fn wal_of_several_segments() -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (wal, _) = LocalWal::open(dir.path(), small_segments())
            .await
            .expect("open");
        for i in 0..60 {
            wal.append(record(i)).await.expect("append");
        }
    }
    let mut segments: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    segments.sort();
    (dir, segments)
}

#[tokio::test]
async fn damage_inside_a_sealed_segment_refuses_to_open() {
    let (dir, segments) = wal_of_several_segments().await;
    let mut bytes = std::fs::read(&segments[0]).expect("read");
    bytes[20] ^= 0x40;
    std::fs::write(&segments[0], bytes).expect("write");
    match LocalWal::open(dir.path(), small_segments()).await {
        Err(WalError::Corrupt { .. }) => {}
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("a corrupt sealed segment was accepted"),
    }
}

#[tokio::test]
async fn trim_removes_only_segments_wholly_below_the_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = LocalWal::open(dir.path(), small_segments())
        .await
        .expect("open");
    for i in 0..100 {
        wal.append(record(i)).await.expect("append");
    }
    let before = segment_count(dir.path()).await;
    wal.trim(Lsn(50)).await.expect("trim");
    let after = segment_count(dir.path()).await;
    assert!(after < before, "nothing was trimmed ({before} segments)");
    drop(wal);
    let (_, recovered) = LocalWal::open(dir.path(), small_segments())
        .await
        .expect("reopen");
    let first = recovered.first().map(|r| r.lsn.0).expect("records remain");
    assert!(
        first <= 50,
        "trim removed record {first}..50 that was still needed"
    );
    assert_eq!(recovered.last().map(|r| r.lsn), Some(Lsn(99)));
    wal_trim_everything_keeps_active(dir.path()).await;
}

async fn wal_trim_everything_keeps_active(dir: &std::path::Path) {
    let (wal, _) = LocalWal::open(dir, small_segments()).await.expect("open");
    wal.trim(Lsn(u64::MAX)).await.expect("trim");
    assert_eq!(segment_count(dir).await, 1, "the active segment stays");
    assert_eq!(wal.append(record(0)).await.expect("append"), Lsn(100));
}

/// Child side of the crash test; does nothing unless started by the parent.
#[tokio::test]
async fn crash_child_appends_until_killed() {
    let Ok(dir) = std::env::var("STRATA_WAL_CRASH_DIR") else {
        return;
    };
    let (wal, recovered) = LocalWal::open(std::path::Path::new(&dir), small_segments())
        .await
        .expect("open");
    let first = recovered.last().map_or(0, |r| r.lsn.0 + 1);
    let mut stdout = std::io::stdout();
    // Queued from one task, records get consecutive LSNs: record(n) lands at LSN n.
    for next in (first..).step_by(8) {
        // Trimming retires segments, so later ones are reused files: the kill also
        // lands while old frames sit past the new ones.
        if next % 64 == 0 && next >= 32 {
            let below = next - 32;
            writeln!(stdout, "trim {below}").expect("stdout");
            stdout.flush().expect("flush");
            wal.trim(Lsn(below)).await.expect("trim");
        }
        // Several appends in flight, as under load.
        let batch: Vec<_> = (0..8).map(|k| wal.append(record(next + k))).collect();
        for (k, append) in batch.into_iter().enumerate() {
            let lsn = append.await.expect("append");
            assert_eq!(lsn.0, next + k as u64);
            writeln!(stdout, "{}", lsn.0).expect("stdout");
        }
        stdout.flush().expect("flush");
    }
}

#[test]
fn every_acknowledged_append_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all_acked = Vec::new();
    let mut trimmed_below = 0;
    for round in 0..3u64 {
        let lines = crate::test_support::run_until_sigkill(
            "wal::local::tests::crash_child_appends_until_killed",
            "STRATA_WAL_CRASH_DIR",
            dir.path(),
            Duration::from_millis(300 + 170 * round),
        );
        let acked: Vec<u64> = lines.iter().filter_map(|l| l.trim().parse().ok()).collect();
        assert!(!acked.is_empty(), "round {round}: nothing acknowledged");
        all_acked.extend(acked);
        // Printed before the trim is asked for: no trim went further.
        trimmed_below = lines
            .iter()
            .filter_map(|l| l.trim().strip_prefix("trim ")?.parse().ok())
            .fold(trimmed_below, u64::max);

        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let recovered = runtime.block_on(async {
            let (_, recovered) = LocalWal::open(dir.path(), small_segments())
                .await
                .expect("reopen");
            recovered
        });
        let on_disk: std::collections::HashMap<u64, Bytes> = recovered
            .iter()
            .map(|r| (r.lsn.0, r.record.clone()))
            .collect();
        for lsn in all_acked.iter().filter(|lsn| **lsn >= trimmed_below) {
            assert_eq!(
                on_disk.get(lsn),
                Some(&record(*lsn)),
                "round {round}: acknowledged LSN {lsn} lost or altered"
            );
        }
        let lsns: Vec<u64> = recovered.iter().map(|r| r.lsn.0).collect();
        let first = lsns.first().copied().unwrap_or(0);
        assert!(
            first <= trimmed_below,
            "round {round}: records from {trimmed_below} to {first} are gone"
        );
        assert_eq!(
            lsns,
            (first..first + lsns.len() as u64).collect::<Vec<_>>(),
            "round {round}: LSNs not dense"
        );
    }
}

fn files_ending(dir: &std::path::Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
        .count()
}

#[tokio::test]
async fn trimmed_segments_are_reused_and_their_old_frames_never_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (wal, _) = LocalWal::open(dir.path(), small_segments())
            .await
            .expect("open");
        for i in 0..200 {
            wal.append(record(i)).await.expect("append");
        }
        wal.trim(Lsn(150)).await.expect("trim");
        let free = files_ending(dir.path(), ".free");
        assert_eq!(free, 2, "trimmed segments beyond the two kept are deleted");
        // Records of another length than the old ones, so reused files end in
        // partial old frames as well as whole ones.
        for i in 200..260 {
            wal.append(Bytes::from(format!("new {i}")))
                .await
                .expect("append");
        }
        assert_eq!(files_ending(dir.path(), ".free"), 0, "rotation reuses them");
    }
    let (wal, recovered) = LocalWal::open(dir.path(), small_segments())
        .await
        .expect("reopen");
    let lsns: Vec<u64> = recovered.iter().map(|r| r.lsn.0).collect();
    let first = lsns.first().copied().expect("records remain");
    assert!(first <= 150);
    assert_eq!(lsns, (first..260).collect::<Vec<_>>());
    for r in &recovered {
        let expected = if r.lsn.0 < 200 {
            record(r.lsn.0)
        } else {
            Bytes::from(format!("new {}", r.lsn.0))
        };
        assert_eq!(r.record, expected, "LSN {}", r.lsn.0);
    }
    assert_eq!(wal.append(record(260)).await.expect("append"), Lsn(260));
}

#[tokio::test]
async fn old_frames_after_the_active_segments_records_are_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A reused file: two new frames (LSN 10, 11), then whole frames from its first
    // life (LSN 3, 4), as a crash leaves it.
    let mut bytes = Vec::new();
    for lsn in [10, 11, 3, 4] {
        super::segment::encode(Lsn(lsn), &record(lsn), &mut bytes);
    }
    let path = super::segment::segment_path(dir.path(), Lsn(10));
    std::fs::write(&path, &bytes).expect("write");

    let (wal, recovered) = LocalWal::open(dir.path(), small_segments())
        .await
        .expect("open");
    let lsns: Vec<u64> = recovered.iter().map(|r| r.lsn.0).collect();
    assert_eq!(lsns, vec![10, 11]);
    assert_eq!(
        wal.append(Bytes::from_static(b"12")).await.expect("append"),
        Lsn(12)
    );
    drop(wal);
    let (_, recovered) = LocalWal::open(dir.path(), small_segments())
        .await
        .expect("reopen");
    let lsns: Vec<u64> = recovered.iter().map(|r| r.lsn.0).collect();
    assert_eq!(lsns, vec![10, 11, 12]);
}

#[tokio::test]
async fn a_sealed_segment_missing_its_last_records_refuses_to_open() {
    let (dir, segments) = wal_of_several_segments().await;
    let len = std::fs::metadata(&segments[0]).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segments[0])
        .and_then(|f| f.set_len(len - 30))
        .expect("truncate");
    match LocalWal::open(dir.path(), small_segments()).await {
        Err(WalError::Corrupt { reason, .. }) => {
            assert!(reason.contains("next segment starts"), "{reason}");
        }
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("a sealed segment missing records was accepted"),
    }
}
