//! Builds one object in memory.

use bytes::{Bytes, BytesMut};

use super::footer::Footer;
use super::index::BlockEntry;
use super::{FormatError, ObjectKind};

/// Gathers blocks, then lays out `[blocks][index][footer]`.
///
/// Blocks are placed in the order they are added; the index is sorted by stream and
/// offset, so adding the blocks of one stream out of offset order, or overlapping, is
/// refused.
#[derive(Debug)]
pub struct ObjectBuilder {
    kind: ObjectKind,
    data: BytesMut,
    entries: Vec<BlockEntry>,
}

/// What a block holds, besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    pub stream_id: u64,
    pub start_offset: u64,
    pub end_offset: u64,
    pub record_count: u32,
    pub max_timestamp: i64,
}

impl ObjectBuilder {
    pub fn new(kind: ObjectKind) -> Self {
        Self::with_capacity(kind, 0, 0)
    }

    /// A builder that holds `data_bytes` of blocks in `blocks` blocks without
    /// reallocating: growing by doubling would copy the object several times and
    /// fault in twice its size.
    pub fn with_capacity(kind: ObjectKind, data_bytes: usize, blocks: usize) -> Self {
        let tail = blocks * super::INDEX_ENTRY_LEN + super::FOOTER_LEN;
        ObjectBuilder {
            kind,
            data: BytesMut::with_capacity(data_bytes + tail),
            entries: Vec::with_capacity(blocks),
        }
    }

    /// Appends one block made of `parts` (record batches, concatenated as given).
    pub fn add_block(&mut self, meta: BlockMeta, parts: &[Bytes]) -> Result<(), FormatError> {
        let bad = |reason| FormatError::BadBlock {
            stream_id: meta.stream_id,
            start_offset: meta.start_offset,
            reason,
        };
        if meta.end_offset <= meta.start_offset {
            return Err(bad("block holds no offsets"));
        }
        let overlaps = self
            .entries
            .iter()
            .any(|e| e.stream_id == meta.stream_id && e.end_offset > meta.start_offset);
        if overlaps {
            return Err(bad(
                "block does not follow the stream's previous block in this object",
            ));
        }
        if self.kind == ObjectKind::Stream
            && self
                .entries
                .first()
                .is_some_and(|e| e.stream_id != meta.stream_id)
        {
            return Err(bad("a stream object holds one stream"));
        }
        let position = self.data.len() as u64;
        let mut checksum = 0u32;
        for part in parts {
            checksum = crc32c::crc32c_append(checksum, part);
            self.data.extend_from_slice(part);
        }
        let len = u32::try_from(self.data.len() as u64 - position)
            .map_err(|_| bad("block larger than 4 GiB"))?;
        self.entries.push(BlockEntry {
            stream_id: meta.stream_id,
            start_offset: meta.start_offset,
            end_offset: meta.end_offset,
            position,
            len,
            record_count: meta.record_count,
            max_timestamp: meta.max_timestamp,
            checksum,
        });
        Ok(())
    }

    /// Bytes of block data gathered so far.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The finished object and its index entries.
    pub fn finish(self) -> (Bytes, Vec<BlockEntry>) {
        let ObjectBuilder {
            kind,
            mut data,
            mut entries,
        } = self;
        entries.sort_by_key(|e| (e.stream_id, e.start_offset));
        let tail = encode_tail(kind, &entries, data.len() as u64);
        data.extend_from_slice(&tail);
        (data.freeze(), entries)
    }
}

/// The index and footer that follow `data_len` bytes of blocks; `entries` must be
/// sorted by stream and offset.
pub fn encode_tail(kind: ObjectKind, entries: &[BlockEntry], data_len: u64) -> Vec<u8> {
    let mut tail = Vec::with_capacity(entries.len() * super::INDEX_ENTRY_LEN + super::FOOTER_LEN);
    for entry in entries {
        entry.encode_into(&mut tail);
    }
    let footer = Footer {
        index_position: data_len,
        index_len: tail.len() as u32,
        index_checksum: crc32c::crc32c(&tail),
        block_count: entries.len() as u32,
        kind,
    };
    tail.extend_from_slice(&footer.encode());
    tail
}
