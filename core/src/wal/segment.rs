//! WAL segment files: `<first lsn, 20 digits>.wal`, each a sequence of frames whose
//! payload is `[lsn: u64 LE][record]`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use super::local::{Lsn, WalError};
use crate::frame;

pub(super) const SUFFIX: &str = ".wal";

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

/// One record read back from a segment.
pub(super) struct Entry {
    pub lsn: Lsn,
    pub record: Bytes,
}

/// Reads a segment. A damaged tail is cut off when `is_last` (a write the crash
/// interrupted, never acknowledged); anywhere else it is corruption of acknowledged
/// data, and the WAL refuses to open rather than drop it silently.
pub(super) fn read(segment: &SegmentFile, is_last: bool) -> Result<(Vec<Entry>, u64), WalError> {
    let path = segment.path.display().to_string();
    let bytes = Bytes::from(std::fs::read(&segment.path).map_err(|source| WalError::Io {
        path: path.clone(),
        source,
    })?);
    let scan = frame::scan(&bytes);
    if let Some(damage) = scan.damage {
        if !is_last {
            return Err(WalError::Corrupt {
                path,
                position: scan.valid_len,
                reason: format!("{damage:?} in a sealed segment"),
            });
        }
        tracing::warn!(
            path,
            kept_bytes = scan.valid_len,
            dropped_bytes = bytes.len() - scan.valid_len,
            ?damage,
            "WAL ends in a damaged frame; cutting it off (it was never acknowledged)"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(&segment.path)
            .map_err(|source| WalError::Io {
                path: path.clone(),
                source,
            })?;
        file.set_len(scan.valid_len as u64)
            .and_then(|()| file.sync_all())
            .map_err(|source| WalError::Io {
                path: path.clone(),
                source,
            })?;
    }
    let mut entries = Vec::with_capacity(scan.payloads.len());
    for range in scan.payloads {
        let payload = bytes.slice(range.clone());
        if payload.len() < 8 {
            return Err(WalError::Corrupt {
                path,
                position: range.start,
                reason: "frame shorter than its LSN".to_string(),
            });
        }
        let lsn = Lsn(u64::from_le_bytes(
            payload[..8].try_into().unwrap_or([0; 8]),
        ));
        entries.push(Entry {
            lsn,
            record: payload.slice(8..),
        });
    }
    Ok((entries, scan.valid_len as u64))
}

/// Frames `record` under `lsn` into `out`.
pub(super) fn encode(lsn: Lsn, record: &[u8], out: &mut Vec<u8>) {
    let mut payload = BytesMut::with_capacity(8 + record.len());
    payload.extend_from_slice(&lsn.0.to_le_bytes());
    payload.extend_from_slice(record);
    frame::encode(&payload, out);
}

pub(super) fn create(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .create(true)
        .append(true)
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
