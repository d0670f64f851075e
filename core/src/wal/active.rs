//! The active segment's file: group commits written at its end and synced.
//!
//! Writes bypass the page cache (`O_DIRECT`) where the filesystem allows it. A WAL
//! is read only when recovering, so caching what it writes only costs: copying
//! every appended byte into the page cache was most of an append's CPU on the
//! project's VM, and the pages it fills push out the ones readers want. Direct
//! writes start and end on block boundaries, so each group is written from the
//! start of the block the previous group ended in: the records already there are
//! written again, unchanged, and the block's rest is zeros, which reading takes for
//! the end of the records (a WAL frame is never empty). A torn rewrite cannot damage
//! acknowledged records: each sector of the block ends up with its old or its new
//! content, and both hold the same bytes for them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::local::WalError;

/// The alignment of direct writes, in the file and in memory: the physical sector
/// of common disks, a multiple of every logical block size Linux accepts below it.
pub(super) const BLOCK: usize = 4096;

pub(super) struct ActiveSegment {
    path: PathBuf,
    file: File,
    direct: bool,
    /// Where the records end: the next frame goes here.
    len: u64,
    /// With direct writes, the records of the block `len` ends in, then the frames
    /// staged since the last write; otherwise only the staged frames.
    staged: AlignedBuf,
}

impl ActiveSegment {
    /// Opens (creating if needed) the segment at `path` whose records end at `len`,
    /// for writes past them. Direct writes are used if `direct` and the filesystem
    /// takes them.
    pub(super) fn open(path: &Path, len: u64, direct: bool) -> Result<Self, WalError> {
        let io = |source| WalError::Io {
            path: path.display().to_string(),
            source,
        };
        let (file, direct) = open_file(path, direct).map_err(io)?;
        let mut staged = AlignedBuf::default();
        if direct {
            let tail = (len % BLOCK as u64) as usize;
            let mut records = vec![0; tail];
            // Read through the page cache: a direct read would need the whole block.
            File::open(path)
                .and_then(|f| f.read_exact_at(&mut records, len - tail as u64))
                .map_err(io)?;
            staged.extend(&records);
        }
        Ok(ActiveSegment {
            path: path.to_path_buf(),
            file,
            direct,
            len,
            staged,
        })
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Adds `bytes` to the next write.
    pub(super) fn stage(&mut self, bytes: &[u8]) {
        self.staged.extend(bytes);
    }

    /// Bytes staged since the last write.
    pub(super) fn staged_len(&self) -> usize {
        self.staged.len() - self.rewritten()
    }

    /// Writes the staged frames after the records and syncs them. On an error the
    /// file's end is unknown; the caller stops writing to it.
    pub(super) fn write_staged(&mut self) -> io::Result<()> {
        let staged = self.staged_len();
        if self.direct {
            let start = self.len - self.rewritten() as u64;
            match self.file.write_all_at(self.staged.padded(), start) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                    // The filesystem opened the file for direct I/O but refuses
                    // this alignment; nothing was written.
                    tracing::warn!(path = %self.path.display(), error = %err, "direct WAL write refused; writing through the page cache from now on");
                    self.file = open_file(&self.path, false)?.0;
                    self.direct = false;
                    self.staged.drop_front(self.staged.len() - staged);
                    self.file.write_all_at(self.staged.filled(), self.len)?;
                }
                Err(err) => return Err(err),
            }
        } else {
            self.file.write_all_at(self.staged.filled(), self.len)?;
        }
        self.file.sync_data()?;
        self.len += staged as u64;
        if self.direct {
            self.staged.keep_last_block();
        } else {
            self.staged.clear();
        }
        Ok(())
    }

    /// Drops the staged frames, keeping the records a direct write rewrites.
    pub(super) fn discard_staged(&mut self) {
        let rewritten = self.rewritten();
        self.staged.truncate(rewritten);
    }

    /// Bytes at the front of `staged` that are already in the file.
    fn rewritten(&self) -> usize {
        if self.direct {
            (self.len % BLOCK as u64) as usize
        } else {
            0
        }
    }
}

fn open_file(path: &Path, direct: bool) -> io::Result<(File, bool)> {
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    if direct {
        match options.clone().custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => return Ok((file, true)),
            // tmpfs, among others, has no direct I/O.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => tracing::info!(
                path = %path.display(),
                "the WAL's filesystem has no direct I/O; writing through the page cache"
            ),
            Err(err) => return Err(err),
        }
    }
    options.open(path).map(|file| (file, false))
}

/// Bytes that start on a [`BLOCK`] boundary in memory, as direct writes need. Kept
/// across groups, so its pages stay mapped instead of being faulted in for each.
#[derive(Default)]
struct AlignedBuf {
    storage: Vec<u8>,
    /// Where the contents start in `storage`: its first block boundary.
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn len(&self) -> usize {
        self.len
    }

    fn filled(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        let at = self.start + self.len;
        self.storage[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// The contents followed by zeros up to a whole number of blocks.
    fn padded(&mut self) -> &[u8] {
        let end = self.start + self.len.next_multiple_of(BLOCK);
        self.storage[self.start + self.len..end].fill(0);
        &self.storage[self.start..end]
    }

    /// Keeps only the contents past the last whole block, moved to the front.
    fn keep_last_block(&mut self) {
        let whole = self.len / BLOCK * BLOCK;
        self.drop_front(whole);
    }

    fn drop_front(&mut self, bytes: usize) {
        let from = self.start + bytes;
        self.storage
            .copy_within(from..self.start + self.len, self.start);
        self.len -= bytes;
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// Room for `more` bytes, and the padding after them.
    fn reserve(&mut self, more: usize) {
        let needed = (self.len + more).next_multiple_of(BLOCK);
        if self.start + needed <= self.storage.len() {
            return;
        }
        let capacity = needed.max(2 * (self.storage.len().saturating_sub(BLOCK)));
        let mut storage = vec![0; capacity + BLOCK];
        let start = storage.as_ptr().align_offset(BLOCK);
        storage[start..start + self.len].copy_from_slice(self.filled());
        self.storage = storage;
        self.start = start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_buffer_starts_on_a_block_and_pads_with_zeros() {
        let mut buf = AlignedBuf::default();
        for round in 0..40u8 {
            buf.extend(&vec![round.wrapping_add(1); 1000 + 37 * round as usize]);
            let len = buf.len();
            let padded = buf.padded();
            assert_eq!(padded.as_ptr() as usize % BLOCK, 0);
            assert_eq!(padded.len() % BLOCK, 0);
            assert!(padded[len..].iter().all(|&b| b == 0));
            let before = buf.filled().to_vec();
            buf.keep_last_block();
            assert_eq!(buf.filled(), &before[before.len() / BLOCK * BLOCK..]);
        }
    }
}
