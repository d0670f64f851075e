//! `strata bench meta`: the embedded metadata store's commits beside the disk's own
//! write-and-fdatasync rate, in one run, in the configured data directory.
//!
//! One committer is what every commit got before group commit: one fsync each. The
//! raw loop is that ceiling measured without the store. With more committers, the
//! commits per fsync show how much group commit shares.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_core::meta::{Compare, EmbeddedMetaStore, EmbeddedOptions, MetaStore, Op, Txn};

use super::{Latencies, Phase, ms};

/// Knobs of one metadata benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct MetaBenchArgs {
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Concurrent committers of the store phases, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub committers: Vec<usize>,
}

/// Latencies of one phase (one per commit) and how long it took.
struct Measured {
    elapsed: Duration,
    latencies: Latencies,
}

impl Measured {
    fn line(self, label: &str, extra: &str) -> String {
        let commits_per_sec = self.latencies.count() as f64 / self.elapsed.as_secs_f64();
        let phase = Phase {
            bytes: 0,
            elapsed: self.elapsed,
            latencies: self.latencies,
            ..Phase::default()
        };
        format!(
            "  {label:<30} {commits_per_sec:>9.0} commits/s  p50 {:>6.2} ms  p99 {:>6.2} ms{extra}",
            ms(phase.percentile(0.50)),
            ms(phase.percentile(0.99))
        )
    }
}

pub async fn run(data_dir: &Path, args: MetaBenchArgs) -> Result<(), String> {
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("bench-meta-")
        .tempdir_in(data_dir)
        .map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let phase = Duration::from_secs(args.seconds.max(1));
    println!(
        "metadata store (embedded) in {}: {} s per phase, commits of one ~100-byte put \
         conditional on a revision",
        dir.path().display(),
        phase.as_secs()
    );

    let raw_path = dir.path().join("raw.log");
    let raw = tokio::task::spawn_blocking(move || raw_fsyncs(&raw_path, phase))
        .await
        .map_err(|e| e.to_string())??;
    println!(
        "{}",
        raw.line("raw write+fdatasync, 1 writer", "  (baseline)")
    );

    for &committers in &args.committers {
        let meta_dir = dir.path().join(format!("meta-{committers}"));
        let store = EmbeddedMetaStore::open(&meta_dir, EmbeddedOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let measured = commits(&store, committers.max(1), phase).await?;
        let syncs = store.log_syncs().max(1);
        let per_sync = format!(
            "  {:>5.1} commits/fsync",
            measured.latencies.count() as f64 / syncs as f64
        );
        println!(
            "{}",
            measured.line(&format!("store, {committers} committers"), &per_sync)
        );
    }
    Ok(())
}

/// The disk's ceiling for one fsync per commit: append a frame-sized record and
/// fdatasync, in a loop.
fn raw_fsyncs(path: &Path, phase: Duration) -> Result<Measured, String> {
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let record = [7u8; 128];
    let started = Instant::now();
    let mut latencies = Latencies::default();
    while started.elapsed() < phase {
        let at = Instant::now();
        file.write_all(&record)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        latencies.record(at.elapsed());
    }
    Ok(Measured {
        elapsed: started.elapsed(),
        latencies,
    })
}

/// `committers` tasks each committing one transaction after another for `phase`.
async fn commits(
    store: &EmbeddedMetaStore,
    committers: usize,
    phase: Duration,
) -> Result<Measured, String> {
    let started = Instant::now();
    let value = Bytes::from(vec![1u8; 100]);
    let tasks: Vec<_> = (0..committers)
        .map(|c| {
            let store: Arc<dyn MetaStore> = Arc::new(store.clone());
            let value = value.clone();
            tokio::spawn(async move {
                let key = Bytes::from(format!("bench/{c:04}"));
                let mut latencies = Latencies::default();
                let mut revision = None;
                while started.elapsed() < phase {
                    let at = Instant::now();
                    // Like the stream store's commits: conditional on what it saw.
                    let seen = match revision {
                        None => Compare::Absent(key.clone()),
                        Some(revision) => Compare::ModRevision(key.clone(), revision),
                    };
                    let txn = Txn::new()
                        .when(seen)
                        .and_then(Op::put(key.clone(), value.clone()));
                    let outcome = store.txn(txn).await.map_err(|e| e.to_string())?;
                    if !outcome.succeeded {
                        return Err(format!("committer {c}: its own key changed under it"));
                    }
                    revision = Some(outcome.revision);
                    latencies.record(at.elapsed());
                }
                Ok::<_, String>(latencies)
            })
        })
        .collect();
    let mut latencies = Latencies::default();
    for task in tasks {
        latencies.merge(&task.await.map_err(|e| e.to_string())??);
    }
    Ok(Measured {
        elapsed: started.elapsed(),
        latencies,
    })
}
