//! WAL segment files: `<first lsn, 20 digits>.wal`, each a sequence of frames whose
//! payload is `[lsn: u64 LE][record]`.
//!
//! Trimmed segments are renamed `<first lsn>.free` and later overwritten as new
//! segments: an `fdatasync` of allocated blocks writes only data, while every append
//! to a growing file also makes it write the inode's new size and block allocation
//! (a journal commit on journaled ext4, synchronous metadata writes without one). A
//! reused file still holds old
//! frames past the new ones; their LSNs are older, which is how reading tells them
//! apart.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::local::{Lsn, WalError};
use crate::frame;

pub(super) const SUFFIX: &str = ".wal";
/// A trimmed segment kept for reuse, named after the first LSN it held.
const FREE_SUFFIX: &str = ".free";

#[derive(Debug, Clone)]
pub(super) struct SegmentFile {
    pub first_lsn: Lsn,
    pub path: PathBuf,
}

pub(super) fn segment_path(dir: &Path, first_lsn: Lsn) -> PathBuf {
    dir.join(format!("{:020}{SUFFIX}", first_lsn.0))
}

/// The segments in `dir`, oldest first.
pub(super) fn list(dir: &Path) -> Result<Vec<SegmentFile>, WalError> {
    let io = |source| WalError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(first) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        let Ok(first) = first.parse::<u64>() else {
            continue;
        };
        segments.push(SegmentFile {
            first_lsn: Lsn(first),
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.first_lsn);
    Ok(segments)
}

pub(super) fn free_path(dir: &Path, first_lsn: Lsn) -> PathBuf {
    dir.join(format!("{:020}{FREE_SUFFIX}", first_lsn.0))
}

/// Renames the free file `free` to segment `path` and opens it. Its old frames stay
/// until overwritten; their LSNs are older than any the new segment gets.
pub(super) fn reuse(free: &Path, path: &Path) -> Result<File, WalError> {
    std::fs::rename(free, path).map_err(|source| WalError::Io {
        path: free.display().to_string(),
        source,
    })?;
    create(path)
}

/// Deletes free files left by an earlier run. They are only reused within one run:
/// the LSN order that makes their old frames recognisable is only certain there.
pub(super) fn remove_free(dir: &Path) -> Result<(), WalError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| WalError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.to_str().is_some_and(|p| p.ends_with(FREE_SUFFIX)) {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// One record read back from a segment.
pub(super) struct Entry {
    pub lsn: Lsn,
    pub record: Bytes,
}

/// Where a segment's records end, and why.
pub(super) struct Contents {
    /// The records from the segment's first LSN on, consecutive.
    pub entries: Vec<Entry>,
    /// Bytes from the start of the file that hold `entries`.
    pub valid_len: u64,
    pub end: End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The file ends after the last record.
    Clean,
    /// A frame fails its checksum or is cut short: a write interrupted by a crash
    /// (at the tail) or corruption.
    Damaged(frame::Damage),
    /// A whole frame from the file's previous life as another segment (recycled
    /// files are overwritten, not emptied): its LSN is not the next one.
    Stale { lsn: Lsn },
}

/// The LSN after `entries`, read from a segment starting at `first`.
pub(super) fn lsn_after(entries: &[Entry], first: Lsn) -> Lsn {
    entries.last().map_or(first, |entry| Lsn(entry.lsn.0 + 1))
}

/// Reads a segment's records: frames with good checksums whose LSNs count up from the
/// segment's first LSN. Whether what follows them is harmless (a torn or stale tail
/// of the active segment) or lost data (a sealed segment ending before the next
/// one starts) is for the caller to judge.
pub(super) fn read(segment: &SegmentFile) -> Result<Contents, WalError> {
    let path = segment.path.display().to_string();
    let bytes = Bytes::from(std::fs::read(&segment.path).map_err(|source| WalError::Io {
        path: path.clone(),
        source,
    })?);
    let scan = frame::scan(&bytes);
    let mut entries: Vec<Entry> = Vec::with_capacity(scan.payloads.len());
    for range in scan.payloads {
        let payload = bytes.slice(range.clone());
        let Some(lsn) = payload.get(..8).and_then(|b| b.try_into().ok()) else {
            return Err(WalError::Corrupt {
                path,
                position: range.start,
                reason: "frame shorter than its LSN".to_string(),
            });
        };
        let lsn = Lsn(u64::from_le_bytes(lsn));
        if lsn != lsn_after(&entries, segment.first_lsn) {
            return Ok(Contents {
                entries,
                valid_len: (range.start - frame::FRAME_HEADER_LEN) as u64,
                end: End::Stale { lsn },
            });
        }
        entries.push(Entry {
            lsn,
            record: payload.slice(8..),
        });
    }
    Ok(Contents {
        entries,
        valid_len: scan.valid_len as u64,
        end: scan.damage.map_or(End::Clean, End::Damaged),
    })
}

/// Cuts `segment` to `len` bytes and makes that durable, so that nothing past the
/// recovered records (torn, stale) can be read as a record later.
pub(super) fn truncate(segment: &SegmentFile, len: u64) -> Result<(), WalError> {
    OpenOptions::new()
        .write(true)
        .open(&segment.path)
        .and_then(|file| file.set_len(len).and_then(|()| file.sync_all()))
        .map_err(|source| WalError::Io {
            path: segment.path.display().to_string(),
            source,
        })
}

/// Frames `record` under `lsn` into `out`, copying the record once.
pub(super) fn encode(lsn: Lsn, record: &[u8], out: &mut Vec<u8>) {
    let lsn = lsn.0.to_le_bytes();
    out.extend_from_slice(&frame::header(&[&lsn, record]));
    out.extend_from_slice(&lsn);
    out.extend_from_slice(record);
}

/// Opens (creating if needed) a segment for positioned writes. The active segment
/// after recovery and reused files keep their bytes: writes go past the records.
pub(super) fn create(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| WalError::Io {
            path: path.display().to_string(),
            source,
        })
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| WalError::Io {
            path: dir.display().to_string(),
            source,
        })
}
