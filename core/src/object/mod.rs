//! The object format: how stream data sits in an object of the bucket.
//!
//! ```text
//! [block 0][block 1]...[block n-1][index: n entries][footer]
//! ```
//!
//! A block is one stream's record batches for a contiguous offset range, stored as
//! received. The index says, per block, which stream and offsets it holds, where it
//! is, how many records, the largest timestamp and the block's CRC32C. The fixed-size
//! footer locates the index and carries the format version, a magic and its own
//! checksum. Every integer is little-endian. The full specification is
//! `docs/object-format.md`.

mod builder;
mod footer;
mod index;
mod key;

pub use builder::{BlockMeta, EncodedObject, ObjectBuilder, encode_tail};
pub use footer::{FOOTER_LEN, FORMAT_VERSION, Footer, MAGIC};
pub use index::{BlockEntry, INDEX_ENTRY_LEN, Index};
pub use key::{ObjectId, object_key};

/// What an object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// Data of many streams written together (one PUT for many partitions).
    StreamSet,
    /// One stream's data, produced by compaction.
    Stream,
}

impl ObjectKind {
    fn code(self) -> u8 {
        match self {
            ObjectKind::StreamSet => 1,
            ObjectKind::Stream => 2,
        }
    }

    fn from_code(code: u8) -> Result<Self, FormatError> {
        match code {
            1 => Ok(ObjectKind::StreamSet),
            2 => Ok(ObjectKind::Stream),
            other => Err(FormatError::UnknownKind(other)),
        }
    }
}

/// An object, or part of one, that does not decode. Readers never return data from
/// such an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("object is {len} bytes, shorter than the {FOOTER_LEN}-byte footer")]
    TooShort { len: usize },
    #[error("footer magic is {found:02x?}, not a Strata object")]
    BadMagic { found: [u8; 8] },
    #[error("object format version {0} is newer than this build reads ({FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    #[error("footer checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    FooterChecksum { stored: u32, computed: u32 },
    #[error("index checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    IndexChecksum { stored: u32, computed: u32 },
    #[error("index region {position}+{len} lies outside the {object_len}-byte object")]
    IndexOutOfBounds {
        position: u64,
        len: u64,
        object_len: u64,
    },
    #[error("index holds {len} bytes, not {expected} for {blocks} blocks")]
    IndexLength {
        len: usize,
        expected: usize,
        blocks: u32,
    },
    #[error(
        "block of stream {stream_id} at offset {start_offset}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    BlockChecksum {
        stream_id: u64,
        start_offset: u64,
        stored: u32,
        computed: u32,
    },
    #[error("block of stream {stream_id} at offset {start_offset}: {reason}")]
    BadBlock {
        stream_id: u64,
        start_offset: u64,
        reason: &'static str,
    },
    #[error("unknown object kind {0}")]
    UnknownKind(u8),
}

#[cfg(test)]
mod tests;
