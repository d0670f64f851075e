//! An exclusive lock on a directory of local state (the embedded metadata store, the
//! local WAL), held for as long as the state is open.
//!
//! Two stores on one directory would each replay it, allocate the same object ids and
//! overwrite each other's records: a second broker started on a used data directory,
//! or a store reopened while the previous one's background work still runs. The
//! lock turns both into an error at open. It is an advisory `flock` on a `LOCK` file,
//! so the kernel releases it when the holder exits, however it exits (SIGKILL
//! included): a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The file in a locked directory that carries the lock (and the holder's pid).
pub const LOCK_FILE: &str = "LOCK";

/// How long a lock this process itself dropped may still look held. A child being
/// started (by any thread) holds a copy of every descriptor between its `fork` and
/// its `exec`, and the `flock` lasts until the last copy closes, so a directory
/// closed and reopened at once can find its own lock held for that moment. A store
/// of this process really still open is reported after this wait.
const OWN_LOCK_PATIENCE: Duration = Duration::from_secs(1);

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DirLockError {
    #[error(
        "{what} directory {path} is in use by {holder}: stop it, or give this process \
         another directory"
    )]
    Held {
        what: &'static str,
        path: PathBuf,
        /// "process 1234" when the holder wrote its pid, else "another process".
        holder: String,
    },
    #[error("{what} directory {path}: cannot lock its LOCK file: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (which must exist) for `what` ("metadata", "WAL"), or says who
    /// holds it. Never waits.
    pub fn acquire(dir: &Path, what: &'static str) -> Result<DirLock, DirLockError> {
        let io = |source| DirLockError::Io {
            what,
            path: dir.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = Holder::of(&mut file);
                    if holder != Holder::ThisProcess || started.elapsed() >= OWN_LOCK_PATIENCE {
                        return Err(DirLockError::Held {
                            what,
                            path: dir.to_path_buf(),
                            holder: holder.to_string(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::Error(err)) => return Err(io(err)),
            }
        }
        // For the message a second opener prints; the lock itself is the flock.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock { _file: file })
    }
}

/// Who holds a lock, as far as the pid in its file tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    ThisProcess,
    Process(u32),
    /// No readable pid: the holder has not written it yet, or wrote something else.
    Unknown,
}

impl Holder {
    fn of(file: &mut File) -> Holder {
        let mut text = String::new();
        if file
            .rewind()
            .and_then(|()| file.read_to_string(&mut text))
            .is_err()
        {
            return Holder::Unknown;
        }
        match text.trim().parse::<u32>() {
            Ok(pid) if pid == std::process::id() => Holder::ThisProcess,
            Ok(pid) => Holder::Process(pid),
            Err(_) => Holder::Unknown,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::ThisProcess => f.write_str("this process (a store opened on it is still open)"),
            Holder::Process(pid) => write!(f, "process {pid}"),
            Holder::Unknown => f.write_str("another process"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_naming_the_directory_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::acquire(dir.path(), "WAL").expect("first lock");
        let err = DirLock::acquire(dir.path(), "WAL").expect_err("second lock must fail");
        let message = err.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()) && message.contains("this process"),
            "{message}"
        );
        drop(first);
        DirLock::acquire(dir.path(), "WAL").expect("lock after the first is dropped");
    }

    #[test]
    fn a_lock_held_a_moment_longer_by_a_copy_of_its_descriptor_is_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::acquire(dir.path(), "WAL").expect("first lock");
        // What a child between fork and exec holds: the same open file.
        let copy = first._file.try_clone().expect("dup");
        drop(first);
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(copy);
        });
        DirLock::acquire(dir.path(), "WAL").expect("lock once the copy is closed");
        closer.join().expect("closer");
    }
}
