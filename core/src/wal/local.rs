//! The local WAL: segmented files in the data directory, written by one thread with
//! group commit.
//!
//! Appends queue up while the previous group is being fsynced; the writer then
//! writes everything queued (up to `max_group_bytes`) with one `write` and one
//! `fsync`, and only then completes those appends. An append's future resolving
//! `Ok` means its record is on disk. After a failed fsync the WAL refuses every
//! further append: the kernel may have dropped the dirty pages, so nothing written
//! since the last good fsync can be trusted, and the process must restart and
//! recover from what is really on disk.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::dir_lock::DirLock;

use super::segment::{self, SegmentFile};

/// Log sequence number: the position of a record in the WAL, increasing by one per
/// record across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

#[derive(Debug, Clone, Copy)]
pub struct LocalWalOptions {
    /// Start a new segment file once the current one holds this many bytes.
    pub segment_bytes: u64,
    /// Upper bound on the bytes written by one group commit.
    pub max_group_bytes: usize,
    /// Trimmed segments kept to be overwritten as new ones (each `segment_bytes` of
    /// disk). Appending to a fresh file makes every fsync also write filesystem
    /// metadata (the new size, the block allocation), which waits behind other
    /// metadata changes on the disk; overwriting a reused file writes only data.
    pub recycled_segments: usize,
}

impl Default for LocalWalOptions {
    fn default() -> Self {
        LocalWalOptions {
            segment_bytes: 64 << 20,
            max_group_bytes: 8 << 20,
            recycled_segments: 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("WAL {path} is corrupt at byte {position}: {reason}")]
    Corrupt {
        path: String,
        position: usize,
        reason: String,
    },
    #[error("WAL write failed and the WAL stopped accepting appends until restart: {0}")]
    Failed(String),
    #[error("the WAL is closed")]
    Closed,
    #[error(transparent)]
    Locked(#[from] crate::dir_lock::DirLockError),
}

/// A record found on disk when the WAL was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredRecord {
    pub lsn: Lsn,
    pub record: Bytes,
}

enum Command {
    Append {
        record: Bytes,
        reply: oneshot::Sender<Result<Lsn, WalError>>,
    },
    /// Records below `below` are no longer needed: delete the segments that hold
    /// only such records.
    Trim {
        below: Lsn,
        reply: oneshot::Sender<Result<(), WalError>>,
    },
}

/// Handle to the WAL's writer thread. Dropping it lets queued appends finish, then
/// stops the thread.
pub struct LocalWal {
    commands: Option<mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    fsyncs: Arc<AtomicU64>,
    first_lsn: Lsn,
}

impl LocalWal {
    /// Opens the WAL in `dir` and returns every record still on disk, in LSN order.
    /// Records below a trim point may be among them: the caller skips what it has
    /// already made durable elsewhere.
    pub async fn open(
        dir: &Path,
        options: LocalWalOptions,
    ) -> Result<(LocalWal, Vec<RecoveredRecord>), WalError> {
        let dir = dir.to_path_buf();
        let (writer, recovered) = tokio::task::spawn_blocking(move || Writer::open(dir, options))
            .await
            .map_err(|_| WalError::Closed)??;
        let fsyncs = writer.fsyncs.clone();
        let first_lsn = writer.next_lsn;
        let (commands, receiver) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("strata-wal".to_string())
            .spawn(move || writer.run(receiver))
            .map_err(|source| WalError::Io {
                path: "strata-wal thread".to_string(),
                source,
            })?;
        Ok((
            LocalWal {
                commands: Some(commands),
                writer: Some(handle),
                fsyncs,
                first_lsn,
            },
            recovered,
        ))
    }

    /// Queues `record`; the returned future resolves once it is on disk. Records
    /// queued by one task are written in the order they were queued.
    pub fn append(&self, record: Bytes) -> impl Future<Output = Result<Lsn, WalError>> + use<> {
        let (reply, done) = oneshot::channel();
        let sent = self.send(Command::Append { record, reply });
        async move {
            sent?;
            done.await.map_err(|_| WalError::Closed)?
        }
    }

    /// Deletes segments that hold only records below `below`.
    pub async fn trim(&self, below: Lsn) -> Result<(), WalError> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Trim { below, reply })?;
        done.await.map_err(|_| WalError::Closed)?
    }

    /// The LSN the first append after open gets; later appends count up from it in
    /// the order they are queued.
    pub fn first_lsn(&self) -> Lsn {
        self.first_lsn
    }

    /// fsyncs performed since open: fewer than appends when group commit works.
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    fn send(&self, command: Command) -> Result<(), WalError> {
        self.commands
            .as_ref()
            .ok_or(WalError::Closed)?
            .send(command)
            .map_err(|_| WalError::Closed)
    }
}

impl Drop for LocalWal {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

struct Writer {
    /// Held by the writer thread: released once it has stopped writing.
    _lock: DirLock,
    dir: PathBuf,
    options: LocalWalOptions,
    segments: Vec<SegmentFile>,
    active: File,
    active_len: u64,
    retired: Retired,
    next_lsn: Lsn,
    failed: Option<String>,
    fsyncs: Arc<AtomicU64>,
}

impl Writer {
    fn open(
        dir: PathBuf,
        options: LocalWalOptions,
    ) -> Result<(Writer, Vec<RecoveredRecord>), WalError> {
        std::fs::create_dir_all(&dir).map_err(|source| WalError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let lock = DirLock::acquire(&dir, "WAL")?;
        segment::remove_free(&dir)?;
        let mut segments = segment::list(&dir)?;
        let mut recovered = Vec::new();
        let mut active_len = 0;
        for (i, file) in segments.iter().enumerate() {
            let contents = segment::read(file)?;
            let ends_at = segment::lsn_after(&contents.entries, file.first_lsn);
            match segments.get(i + 1) {
                // A sealed segment must hold every record up to where the next begins;
                // anything missing was acknowledged.
                Some(next) if ends_at != next.first_lsn => {
                    return Err(WalError::Corrupt {
                        path: file.path.display().to_string(),
                        position: contents.valid_len as usize,
                        reason: format!(
                            "records end at LSN {} ({:?}) but the next segment starts at LSN {}",
                            ends_at.0, contents.end, next.first_lsn.0
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    cut_tail(file, &contents)?;
                    active_len = contents.valid_len;
                }
            }
            recovered.extend(contents.entries.into_iter().map(|entry| RecoveredRecord {
                lsn: entry.lsn,
                record: entry.record,
            }));
        }
        let next_lsn = match (recovered.last(), segments.last()) {
            (Some(record), _) => Lsn(record.lsn.0 + 1),
            (None, Some(file)) => file.first_lsn,
            (None, None) => Lsn(0),
        };
        if segments.is_empty() {
            segments.push(SegmentFile {
                first_lsn: next_lsn,
                path: segment::segment_path(&dir, next_lsn),
            });
        }
        let active_path = segments.last().map(|s| s.path.clone()).unwrap_or_default();
        let active = segment::create(&active_path)?;
        segment::sync_dir(&dir)?;
        let writer = Writer {
            _lock: lock,
            dir: dir.clone(),
            options,
            segments,
            active,
            active_len,
            retired: Retired {
                dir,
                free: Arc::new(Mutex::new(Vec::new())),
                keep: options.recycled_segments,
            },
            next_lsn,
            failed: None,
            fsyncs: Arc::new(AtomicU64::new(0)),
        };
        Ok((writer, recovered))
    }

    fn run(mut self, commands: mpsc::Receiver<Command>) {
        // Retiring trimmed segments (renames, the unlink of a large file, a directory
        // fsync) takes milliseconds: a thread of its own does it, so appends queued
        // meanwhile are not held behind it.
        let (reap, jobs) = mpsc::channel::<Reap>();
        let retired = self.retired.clone();
        let reaper = std::thread::Builder::new()
            .name("strata-wal-trim".to_string())
            .spawn(move || {
                for job in jobs {
                    let _ = job.reply.send(retired.retire(&job.segments));
                }
            });
        let reaper = match reaper {
            Ok(handle) => Some((reap, handle)),
            Err(err) => {
                tracing::warn!(error = %err, "cannot start the WAL trim thread; trimming inline");
                None
            }
        };
        self.run_commands(&commands, reaper.as_ref().map(|(reap, _)| reap));
        if let Some((reap, handle)) = reaper {
            drop(reap);
            let _ = handle.join();
        }
    }

    fn run_commands(
        &mut self,
        commands: &mpsc::Receiver<Command>,
        reap: Option<&mpsc::Sender<Reap>>,
    ) {
        while let Ok(first) = commands.recv() {
            let mut group = vec![first];
            let mut bytes = group_bytes(&group[0]);
            while bytes < self.options.max_group_bytes {
                match commands.try_recv() {
                    Ok(command) => {
                        bytes += group_bytes(&command);
                        group.push(command);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group, reap);
        }
    }

    fn commit(&mut self, group: Vec<Command>, reap: Option<&mpsc::Sender<Reap>>) {
        let mut buffer = Vec::new();
        let mut appends = Vec::new();
        let mut trims = Vec::new();
        for command in group {
            match command {
                Command::Append { record, reply } => {
                    let lsn = Lsn(self.next_lsn.0 + appends.len() as u64);
                    segment::encode(lsn, &record, &mut buffer);
                    appends.push((lsn, reply));
                }
                Command::Trim { below, reply } => trims.push((below, reply)),
            }
        }
        if !appends.is_empty() {
            let started = Instant::now();
            match self.write_group(&buffer) {
                Ok(()) => {
                    self.next_lsn = Lsn(self.next_lsn.0 + appends.len() as u64);
                    metrics::histogram!("strata_wal_fsync_seconds")
                        .record(started.elapsed().as_secs_f64());
                    metrics::histogram!("strata_wal_group_commit_records")
                        .record(appends.len() as f64);
                    metrics::counter!("strata_wal_bytes_total").increment(buffer.len() as u64);
                    for (lsn, reply) in appends {
                        let _ = reply.send(Ok(lsn));
                    }
                }
                Err(message) => {
                    for (_, reply) in appends {
                        let _ = reply.send(Err(WalError::Failed(message.clone())));
                    }
                }
            }
            if let Err(err) = self.rotate_if_full() {
                self.failed.get_or_insert(err.to_string());
            }
        }
        for (below, reply) in trims {
            let segments = self.trimmed_segments(below);
            if segments.is_empty() {
                let _ = reply.send(Ok(()));
                continue;
            }
            match reap {
                Some(reap) => {
                    if let Err(mpsc::SendError(job)) = reap.send(Reap { segments, reply }) {
                        let _ = job.reply.send(self.retired.retire(&job.segments));
                    }
                }
                None => {
                    let _ = reply.send(self.retired.retire(&segments));
                }
            }
        }
    }

    fn write_group(&mut self, buffer: &[u8]) -> Result<(), String> {
        if let Some(reason) = &self.failed {
            return Err(reason.clone());
        }
        let written = self
            .active
            .write_all_at(buffer, self.active_len)
            .and_then(|()| self.active.sync_data());
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        match written {
            Ok(()) => {
                self.active_len += buffer.len() as u64;
                Ok(())
            }
            Err(err) => {
                let path = self
                    .segments
                    .last()
                    .map(|s| s.path.display().to_string())
                    .unwrap_or_default();
                let reason = format!("{path}: {err}");
                tracing::error!(path, error = %err, "WAL write failed; refusing further appends until restart");
                self.failed = Some(reason.clone());
                Err(reason)
            }
        }
    }

    fn rotate_if_full(&mut self) -> Result<(), WalError> {
        if self.active_len < self.options.segment_bytes {
            return Ok(());
        }
        let started = Instant::now();
        let path = segment::segment_path(&self.dir, self.next_lsn);
        self.active = match self.retired.take() {
            Some(free) => segment::reuse(&free, &path)?,
            None => segment::create(&path)?,
        };
        // The new name must be durable before a record in it is acknowledged.
        segment::sync_dir(&self.dir)?;
        self.segments.push(SegmentFile {
            first_lsn: self.next_lsn,
            path,
        });
        self.active_len = 0;
        metrics::histogram!("strata_wal_rotate_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Takes the segments that hold only records below `below` out of the WAL's list
    /// and returns them to be retired. The active (last) segment always stays.
    /// A crash before they are deleted only makes the next open replay records that
    /// are already in objects, which the store skips.
    fn trimmed_segments(&mut self, below: Lsn) -> Vec<SegmentFile> {
        // A segment holds only records below `below` when the next one starts at or
        // below it.
        let removable = self
            .segments
            .windows(2)
            .take_while(|pair| pair[1].first_lsn <= below)
            .count();
        self.segments.drain(..removable).collect()
    }
}

/// Segments to retire, and whom to tell when they are gone.
struct Reap {
    segments: Vec<SegmentFile>,
    reply: oneshot::Sender<Result<(), WalError>>,
}

/// Where trimmed segments go: up to `keep` wait in `free` to be reused, the rest are
/// deleted.
#[derive(Clone)]
struct Retired {
    dir: PathBuf,
    free: Arc<Mutex<Vec<PathBuf>>>,
    keep: usize,
}

impl Retired {
    fn take(&self) -> Option<PathBuf> {
        self.lock().pop()
    }

    /// Retires `segments` in order (oldest first, so a crash midway leaves a
    /// contiguous WAL) and makes that durable.
    fn retire(&self, segments: &[SegmentFile]) -> Result<(), WalError> {
        for file in segments {
            let io = |source| WalError::Io {
                path: file.path.display().to_string(),
                source,
            };
            if self.lock().len() < self.keep {
                let free = segment::free_path(&self.dir, file.first_lsn);
                std::fs::rename(&file.path, &free).map_err(io)?;
                self.lock().push(free);
            } else {
                std::fs::remove_file(&file.path).map_err(io)?;
            }
        }
        segment::sync_dir(&self.dir)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Cuts whatever follows the active segment's records: a write the crash interrupted
/// (never acknowledged) or frames from the file's previous life. Left in place, a
/// later shorter write could expose an old frame whose LSN happens to follow.
fn cut_tail(file: &SegmentFile, contents: &segment::Contents) -> Result<(), WalError> {
    let path = file.path.display().to_string();
    match contents.end {
        segment::End::Clean => return Ok(()),
        segment::End::Damaged(damage) => tracing::warn!(
            path,
            kept_bytes = contents.valid_len,
            ?damage,
            "WAL ends in a damaged frame; cutting it off (it was never acknowledged)"
        ),
        segment::End::Stale { lsn } => tracing::debug!(
            path,
            kept_bytes = contents.valid_len,
            stale_lsn = lsn.0,
            "cutting a reused segment's old frames"
        ),
    }
    segment::truncate(file, contents.valid_len)
}

fn group_bytes(command: &Command) -> usize {
    match command {
        Command::Append { record, .. } => record.len() + 16,
        Command::Trim { .. } => 0,
    }
}

#[cfg(test)]
mod tests;
