//! The single-node metadata store: state in memory, every commit appended to
//! `meta.log` in the data directory as a checksummed frame and fsynced before the
//! commit returns; concurrent commits share fsyncs ([`durability`]).
//!
//! On open the log is replayed; a torn last frame (a crash mid-write, never
//! acknowledged) is cut off. When the log has grown well past the live state, it is
//! rewritten as one snapshot record (write to a temporary file, fsync, rename, fsync
//! the directory), so a crash at any point leaves either the old or the new log.
//!
//! Leases live in memory: they belong to this process. Keys bound to a lease of an
//! earlier run are deleted on open, as they would be when that process's leases
//! lapsed.

mod codec;
mod durability;
mod state;

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::broadcast;

use self::codec::Record;
use self::durability::Durability;
use self::state::State;
use super::{
    KeyValue, LeaseId, MetaError, MetaStore, Op, Txn, TxnOutcome, WatchEvent, WatchStream,
};
use crate::dir_lock::DirLock;
use crate::frame;

const LOG_FILE: &str = "meta.log";
const WATCH_BUFFER: usize = 4096;
const LEASE_REAPER_PERIOD: Duration = Duration::from_millis(100);

/// Tuning of the embedded store.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedOptions {
    /// Rewrite the log as a snapshot once it exceeds this many bytes and four times
    /// the size of the last snapshot.
    pub compact_after_bytes: u64,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            compact_after_bytes: 64 << 20,
        }
    }
}

/// A [`MetaStore`] in a file of the data directory. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedMetaStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// Released when the store is dropped, whatever still refers to it.
    _lock: DirLock,
    path: PathBuf,
    options: EmbeddedOptions,
    inner: Mutex<Inner>,
    durability: Durability,
    events: broadcast::Sender<WatchEvent>,
}

struct Inner {
    state: State,
    /// Shared with the thread that fsyncs it outside the lock.
    log: Arc<File>,
    log_len: u64,
    /// Bytes appended since open, across compactions: positions for durability.
    appended: u64,
    /// Watch events of commits not yet known durable, by the position their frame
    /// ends at.
    pending_events: VecDeque<(u64, WatchEvent)>,
    snapshot_len: u64,
    leases: HashMap<LeaseId, Lease>,
    next_lease: u64,
}

struct Lease {
    ttl: Duration,
    deadline: Instant,
}

impl EmbeddedMetaStore {
    /// Opens (or creates) the store in `dir`. Must run inside a tokio runtime: a
    /// background task expires leases.
    pub async fn open(dir: &Path, options: EmbeddedOptions) -> Result<Self, MetaError> {
        let dir = dir.to_path_buf();
        let shared = tokio::task::spawn_blocking(move || Shared::open(&dir, options))
            .await
            .map_err(|_| MetaError::Closed)??;
        let shared = Arc::new(shared);
        tokio::spawn(reap_leases(Arc::downgrade(&shared)));
        Ok(EmbeddedMetaStore { shared })
    }

    /// fsyncs of the log so far; fewer than commits when commits overlapped.
    pub fn log_syncs(&self) -> u64 {
        self.shared.durability.syncs()
    }

    /// Waits until what a read observed (the log up to `position`) is durable: a
    /// read must not hand out a commit that a crash could still undo.
    async fn durable(&self, position: u64) -> Result<(), MetaError> {
        if self.shared.durability.covers(position)? {
            return Ok(());
        }
        self.blocking(move |shared| shared.make_durable(position))
            .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Shared) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<T, MetaError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || work(&shared))
            .await
            .map_err(|_| MetaError::Closed)?
    }
}

impl Shared {
    fn open(dir: &Path, options: EmbeddedOptions) -> Result<Self, MetaError> {
        let path = dir.join(LOG_FILE);
        let io = |source| MetaError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = DirLock::acquire(dir, "metadata")?;
        // A compaction that crashed before its rename left only a temporary file.
        match std::fs::remove_file(path.with_extension("log.compacting")) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(io(err)),
            _ => {}
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => Bytes::from(bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Bytes::new(),
            Err(err) => return Err(io(err)),
        };
        let scan = frame::scan(&bytes);
        let mut state = State::default();
        let mut snapshot_len = 0;
        for range in &scan.payloads {
            let record = Record::decode(bytes.slice(range.clone())).map_err(|reason| {
                MetaError::Corrupt {
                    path: path.display().to_string(),
                    position: range.start,
                    reason: reason.to_string(),
                }
            })?;
            match record {
                Record::Commit { revision, ops } => {
                    state.apply(revision, &ops);
                }
                Record::Snapshot { revision, entries } => {
                    snapshot_len = range.len() as u64;
                    state.restore(revision, entries);
                }
            }
        }
        if let Some(damage) = scan.damage {
            tracing::warn!(
                path = %path.display(),
                kept_bytes = scan.valid_len,
                dropped_bytes = bytes.len() - scan.valid_len,
                ?damage,
                "metadata log ends in a damaged frame; cutting it off (it was never acknowledged)"
            );
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        log.set_len(scan.valid_len as u64).map_err(io)?;
        log.sync_all().map_err(io)?;
        sync_dir(dir).map_err(io)?;

        let (events, _) = broadcast::channel(WATCH_BUFFER);
        let shared = Shared {
            _lock: lock,
            path: path.clone(),
            options,
            inner: Mutex::new(Inner {
                state,
                log: Arc::new(log),
                log_len: scan.valid_len as u64,
                appended: 0,
                pending_events: VecDeque::new(),
                snapshot_len,
                leases: HashMap::new(),
                next_lease: 1,
            }),
            durability: Durability::new(),
            events,
        };
        // Keys of leases from an earlier run: that process is gone.
        let orphaned: Vec<Op> = shared
            .lock()
            .state
            .entries
            .values()
            .filter(|kv| kv.lease.is_some())
            .map(|kv| Op::Delete {
                key: kv.key.clone(),
            })
            .collect();
        if !orphaned.is_empty() {
            shared.append_ops(&mut shared.lock(), orphaned)?;
            let position = shared.lock().appended;
            shared.make_durable(position)?;
        }
        Ok(shared)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half-applied: the
        // state is changed only after the log write succeeded, in one call.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn io(&self, source: std::io::Error) -> MetaError {
        MetaError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        let (outcome, observed) = {
            let mut inner = self.lock();
            self.durability.check()?;
            let succeeded = txn.compares.iter().all(|c| inner.state.holds(c));
            let ops = if succeeded { txn.success } else { txn.failure };
            for op in &ops {
                if let Op::Put {
                    lease: Some(lease), ..
                } = op
                    && !inner.leases.contains_key(lease)
                {
                    return Err(MetaError::LeaseNotFound(*lease));
                }
            }
            let revision = if ops.is_empty() {
                inner.state.revision
            } else {
                self.append_ops(&mut inner, ops)?
            };
            let outcome = TxnOutcome {
                succeeded,
                revision,
            };
            (outcome, inner.appended)
        };
        // Also when nothing was written: the compares saw state that must be durable
        // before the caller acts on the outcome.
        self.make_durable(observed)?;
        Ok(outcome)
    }

    /// Appends `ops` to the log and applies them; returns the new revision. Durable
    /// only once [`Shared::make_durable`] has passed the frame.
    fn append_ops(&self, inner: &mut Inner, ops: Vec<Op>) -> Result<u64, MetaError> {
        let revision = inner.state.revision + 1;
        let record = Record::Commit { revision, ops };
        let mut framed = Vec::new();
        frame::encode(&record.encode(), &mut framed);
        if let Err(err) = (&*inner.log).write_all(&framed) {
            // Cut off whatever part of the frame reached the file, so the next commit
            // does not append behind a torn frame (replay would stop there).
            if let Err(cut) = inner.log.set_len(inner.log_len) {
                return Err(self.durability.fail(format!(
                    "{}: a write failed ({err}) and cutting the torn frame failed too ({cut})",
                    self.path.display()
                )));
            }
            return Err(self.io(err));
        }
        inner.log_len += framed.len() as u64;
        inner.appended += framed.len() as u64;
        metrics::counter!("strata_meta_log_bytes_total").increment(framed.len() as u64);
        let Record::Commit { ops, .. } = record else {
            unreachable!("built as a commit above")
        };
        let position = inner.appended;
        let events = inner.state.apply(revision, &ops);
        inner
            .pending_events
            .extend(events.into_iter().map(|event| (position, event)));
        if inner.log_len > self.options.compact_after_bytes
            && inner.log_len > 4 * inner.snapshot_len
            && let Err(err) = self.compact(inner)
        {
            // The commit is in the log either way; a compaction that failed before
            // its rename left the old log whole (the next commit tries again), one
            // that failed after it has failed the store.
            self.durability.check()?;
            tracing::warn!(path = %self.path.display(), error = %err, "metadata log compaction failed; keeping the log as it is");
        }
        Ok(revision)
    }

    fn compact(&self, inner: &mut Inner) -> Result<(), MetaError> {
        let snapshot = Record::Snapshot {
            revision: inner.state.revision,
            entries: inner.state.entries.values().cloned().collect(),
        };
        let mut framed = Vec::new();
        frame::encode(&snapshot.encode(), &mut framed);
        let temporary = self.path.with_extension("log.compacting");
        let mut file = File::create(&temporary).map_err(|e| self.io(e))?;
        file.write_all(&framed)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io(e))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| self.io(e))?;
        // From here the handle in `inner.log` is of a file no longer named: appends
        // through it would be lost, so a failure fails the store.
        let reopened = self
            .path
            .parent()
            .map_or(Ok(()), sync_dir)
            .and_then(|()| OpenOptions::new().append(true).open(&self.path));
        let log = match reopened {
            Ok(log) => log,
            Err(err) => {
                return Err(self.durability.fail(format!(
                    "{}: reopening the log after compacting it: {err}",
                    self.path.display()
                )));
            }
        };
        inner.log = Arc::new(log);
        inner.log_len = framed.len() as u64;
        inner.snapshot_len = framed.len() as u64;
        tracing::debug!(path = %self.path.display(), bytes = framed.len(), "metadata log compacted");
        Ok(())
    }

    fn revoke(&self, lease: LeaseId) -> Result<(), MetaError> {
        let mut inner = self.lock();
        if inner.leases.remove(&lease).is_none() {
            return Err(MetaError::LeaseNotFound(lease));
        }
        let bound: Vec<Op> = inner
            .state
            .entries
            .values()
            .filter(|kv| kv.lease == Some(lease))
            .map(|kv| Op::Delete {
                key: kv.key.clone(),
            })
            .collect();
        if bound.is_empty() {
            return Ok(());
        }
        self.append_ops(&mut inner, bound)?;
        let position = inner.appended;
        drop(inner);
        self.make_durable(position)
    }
}

impl Inner {
    /// The watch events of commits whose frames end at or before `position`.
    fn take_events(&mut self, position: u64) -> Vec<WatchEvent> {
        let ready = self
            .pending_events
            .iter()
            .take_while(|(ends_at, _)| *ends_at <= position)
            .count();
        self.pending_events
            .drain(..ready)
            .map(|(_, event)| event)
            .collect()
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

async fn reap_leases(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(LEASE_REAPER_PERIOD).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let expired: Vec<LeaseId> = {
            let now = Instant::now();
            let inner = shared.lock();
            inner
                .leases
                .iter()
                .filter(|(_, l)| l.deadline <= now)
                .map(|(id, _)| *id)
                .collect()
        };
        if expired.is_empty() {
            continue;
        }
        let result = tokio::task::spawn_blocking(move || {
            for lease in expired {
                match shared.revoke(lease) {
                    Ok(()) | Err(MetaError::LeaseNotFound(_)) => {}
                    Err(err) => tracing::error!(lease = lease.0, error = %err, "cannot delete the keys of an expired lease"),
                }
            }
        })
        .await;
        if result.is_err() {
            return;
        }
    }
}

#[async_trait]
impl MetaStore for EmbeddedMetaStore {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, MetaError> {
        let (found, observed) = {
            let inner = self.shared.lock();
            (inner.state.entries.get(key).cloned(), inner.appended)
        };
        self.durable(observed).await?;
        Ok(found)
    }

    async fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<KeyValue>, MetaError> {
        let (found, observed) = {
            let inner = self.shared.lock();
            let matching = inner
                .state
                .entries
                .range::<[u8], _>((
                    std::ops::Bound::Included(prefix),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(key, _)| key.starts_with(prefix))
                .map(|(_, kv)| kv.clone());
            let found: Vec<KeyValue> = if limit == 0 {
                matching.collect()
            } else {
                matching.take(limit).collect()
            };
            (found, inner.appended)
        };
        self.durable(observed).await?;
        Ok(found)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        self.blocking(move |shared| shared.txn(txn)).await
    }

    async fn watch(&self, prefix: &[u8]) -> Result<WatchStream, MetaError> {
        Ok(WatchStream {
            prefix: Bytes::copy_from_slice(prefix),
            events: self.shared.events.subscribe(),
        })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        let mut inner = self.shared.lock();
        let id = LeaseId(inner.next_lease);
        inner.next_lease += 1;
        inner.leases.insert(
            id,
            Lease {
                ttl,
                deadline: Instant::now() + ttl,
            },
        );
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetaError> {
        let mut inner = self.shared.lock();
        let entry = inner
            .leases
            .get_mut(&lease)
            .ok_or(MetaError::LeaseNotFound(lease))?;
        entry.deadline = Instant::now() + entry.ttl;
        Ok(())
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetaError> {
        self.blocking(move |shared| shared.revoke(lease)).await
    }
}
