//! Builds one object in memory.

use std::collections::HashMap;

use bytes::Bytes;

use super::footer::Footer;
use super::index::BlockEntry;
use super::{FormatError, ObjectKind};

/// Gathers blocks, then lays out `[blocks][index][footer]`.
///
/// Blocks are placed in the order they are added; the index is sorted by stream and
/// offset, so adding the blocks of one stream out of offset order, or overlapping, is
/// refused.
///
/// The blocks' bytes are not copied: the object is the record batches as they are
/// held (shared `Bytes`), then its index and footer. Copying them into one buffer
/// cost a second copy of every upload in memory and, on a small machine, the
/// allocator's pages of those large buffers for a while after each upload.
#[derive(Debug)]
pub struct ObjectBuilder {
    kind: ObjectKind,
    parts: Vec<Bytes>,
    data_len: u64,
    entries: Vec<BlockEntry>,
    /// Each stream's end offset so far: a stream's next block must start there or
    /// later. Looked up, not found by scanning `entries`, which made building an
    /// object quadratic in its blocks.
    stream_ends: HashMap<u64, u64>,
}

/// A finished object: its bytes, in the pieces it was built from.
#[derive(Debug, Clone, Default)]
pub struct EncodedObject {
    parts: Vec<Bytes>,
    len: u64,
}

impl EncodedObject {
    /// Bytes in the whole object.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The object's bytes, in order, in pieces.
    pub fn into_parts(self) -> Vec<Bytes> {
        self.parts
    }

    /// The object as one buffer (a copy).
    pub fn to_bytes(&self) -> Bytes {
        let mut whole = Vec::with_capacity(self.len as usize);
        for part in &self.parts {
            whole.extend_from_slice(part);
        }
        whole.into()
    }
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

    /// A builder for `parts` pieces of data in `blocks` blocks.
    pub fn with_capacity(kind: ObjectKind, parts: usize, blocks: usize) -> Self {
        ObjectBuilder {
            kind,
            parts: Vec::with_capacity(parts + 1),
            data_len: 0,
            entries: Vec::with_capacity(blocks),
            stream_ends: HashMap::new(),
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
            .stream_ends
            .get(&meta.stream_id)
            .is_some_and(|&end| end > meta.start_offset);
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
        let position = self.data_len;
        let total: usize = parts.iter().map(Bytes::len).sum();
        let len = u32::try_from(total).map_err(|_| bad("block larger than 4 GiB"))?;
        let mut checksum = 0u32;
        for part in parts {
            checksum = crc32c::crc32c_append(checksum, part);
        }
        self.parts
            .extend(parts.iter().filter(|p| !p.is_empty()).cloned());
        self.data_len += u64::from(len);
        self.stream_ends.insert(meta.stream_id, meta.end_offset);
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
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The finished object and its index entries.
    pub fn finish(self) -> (EncodedObject, Vec<BlockEntry>) {
        let ObjectBuilder {
            kind,
            mut parts,
            data_len,
            mut entries,
            stream_ends: _,
        } = self;
        entries.sort_by_key(|e| (e.stream_id, e.start_offset));
        let tail = encode_tail(kind, &entries, data_len);
        let len = data_len + tail.len() as u64;
        parts.push(Bytes::from(tail));
        (EncodedObject { parts, len }, entries)
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
