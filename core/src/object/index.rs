//! The block index: one fixed-size entry per block, sorted by stream then offset.

use bytes::Bytes;

use super::FormatError;
use super::footer::{Footer, array};

/// Bytes per index entry.
pub const INDEX_ENTRY_LEN: usize = 52;

/// One block: a stream's record batches for offsets `start_offset..end_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockEntry {
    pub stream_id: u64,
    /// First offset in the block.
    pub start_offset: u64,
    /// One past the last offset in the block.
    pub end_offset: u64,
    /// Byte position of the block in the object.
    pub position: u64,
    pub len: u32,
    pub record_count: u32,
    /// Largest record timestamp in the block (ms since the epoch).
    pub max_timestamp: i64,
    /// CRC32C of the block's bytes.
    pub checksum: u32,
}

impl BlockEntry {
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.stream_id.to_le_bytes());
        out.extend_from_slice(&self.start_offset.to_le_bytes());
        out.extend_from_slice(&self.end_offset.to_le_bytes());
        out.extend_from_slice(&self.position.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.record_count.to_le_bytes());
        out.extend_from_slice(&self.max_timestamp.to_le_bytes());
        out.extend_from_slice(&self.checksum.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> BlockEntry {
        BlockEntry {
            stream_id: u64::from_le_bytes(array(&bytes[0..8])),
            start_offset: u64::from_le_bytes(array(&bytes[8..16])),
            end_offset: u64::from_le_bytes(array(&bytes[16..24])),
            position: u64::from_le_bytes(array(&bytes[24..32])),
            len: u32::from_le_bytes(array(&bytes[32..36])),
            record_count: u32::from_le_bytes(array(&bytes[36..40])),
            max_timestamp: i64::from_le_bytes(array(&bytes[40..48])),
            checksum: u32::from_le_bytes(array(&bytes[48..52])),
        }
    }

    /// Checks `block` (the bytes at this entry's position) against the checksum.
    pub fn verify(&self, block: &[u8]) -> Result<(), FormatError> {
        if block.len() != self.len as usize {
            return Err(FormatError::BadBlock {
                stream_id: self.stream_id,
                start_offset: self.start_offset,
                reason: "read length differs from the index",
            });
        }
        let computed = crc32c::crc32c(block);
        if computed != self.checksum {
            return Err(FormatError::BlockChecksum {
                stream_id: self.stream_id,
                start_offset: self.start_offset,
                stored: self.checksum,
                computed,
            });
        }
        Ok(())
    }
}

/// A decoded, verified index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    entries: Vec<BlockEntry>,
}

impl Index {
    /// Decodes `bytes` (exactly the index region the footer points at).
    pub fn decode(bytes: &Bytes, footer: &Footer) -> Result<Index, FormatError> {
        let expected = footer.block_count as usize * INDEX_ENTRY_LEN;
        if bytes.len() != expected || footer.index_len as usize != expected {
            return Err(FormatError::IndexLength {
                len: bytes.len(),
                expected,
                blocks: footer.block_count,
            });
        }
        let computed = crc32c::crc32c(bytes);
        if computed != footer.index_checksum {
            return Err(FormatError::IndexChecksum {
                stored: footer.index_checksum,
                computed,
            });
        }
        let entries: Vec<BlockEntry> = bytes
            .chunks_exact(INDEX_ENTRY_LEN)
            .map(BlockEntry::decode)
            .collect();
        for entry in &entries {
            let end = entry.position.checked_add(u64::from(entry.len));
            let bad = |reason| FormatError::BadBlock {
                stream_id: entry.stream_id,
                start_offset: entry.start_offset,
                reason,
            };
            if end.is_none_or(|end| end > footer.index_position) {
                return Err(bad("block lies outside the data region"));
            }
            if entry.end_offset <= entry.start_offset {
                return Err(bad("block holds no offsets"));
            }
        }
        let sorted = entries.windows(2).all(|pair| {
            let (a, b) = (&pair[0], &pair[1]);
            a.stream_id < b.stream_id
                || (a.stream_id == b.stream_id && a.end_offset <= b.start_offset)
        });
        if !sorted {
            let first = entries[0];
            return Err(FormatError::BadBlock {
                stream_id: first.stream_id,
                start_offset: first.start_offset,
                reason: "index entries are not sorted by stream and offset, or overlap",
            });
        }
        Ok(Index { entries })
    }

    pub fn entries(&self) -> &[BlockEntry] {
        &self.entries
    }

    /// The block of `stream_id` that holds `offset`, if this object has it.
    pub fn find(&self, stream_id: u64, offset: u64) -> Option<&BlockEntry> {
        let after = self
            .entries
            .partition_point(|e| (e.stream_id, e.start_offset) <= (stream_id, offset));
        let candidate = self.entries[..after].last()?;
        (candidate.stream_id == stream_id && offset < candidate.end_offset).then_some(candidate)
    }

    /// Every block of `stream_id`, in offset order.
    pub fn blocks_of(&self, stream_id: u64) -> &[BlockEntry] {
        let start = self.entries.partition_point(|e| e.stream_id < stream_id);
        let end = self.entries.partition_point(|e| e.stream_id <= stream_id);
        &self.entries[start..end]
    }
}
