//! The header of a Kafka record batch (magic v2), as much as the store needs.
//!
//! The store keeps batches exactly as received and reads only the fixed header:
//! where the batch ends, how many offsets it spans, its largest timestamp. The one
//! field it writes is the base offset, which the batch CRC does not cover.
//!
//! ```text
//! 0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
//! 17 crc u32 (CRC32C of bytes 21..end) | 21 attributes i16 | 23 lastOffsetDelta i32
//! 27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64
//! 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records...
//! ```
//! All big-endian, as on Kafka's wire.

use bytes::{Bytes, BytesMut};

use crate::buffer_pool::BufferPool;

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 61;
/// `baseOffset` plus `batchLength`: the part not counted by `batchLength`.
const LOG_OVERHEAD: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
    TooShort(usize),
    #[error("record batch says it is {declared} bytes, but {actual} were given")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("record batch magic {0} is not supported (only v2)")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CorruptCrc { stored: u32, computed: u32 },
    #[error("record batch lastOffsetDelta {0} is negative")]
    BadOffsetDelta(i32),
}

/// A validated v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

fn be_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn be_i64(bytes: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(raw)
}

impl RecordBatch {
    /// Checks length, magic and CRC of one whole batch.
    pub fn parse(bytes: Bytes) -> Result<RecordBatch, BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::TooShort(bytes.len()));
        }
        let declared = be_i32(&bytes, 8).max(0) as usize + LOG_OVERHEAD;
        if declared != bytes.len() {
            return Err(BatchError::LengthMismatch {
                declared,
                actual: bytes.len(),
            });
        }
        let magic = bytes[16] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let stored = u32::from_be_bytes([bytes[17], bytes[18], bytes[19], bytes[20]]);
        let computed = crc32c::crc32c(&bytes[21..]);
        if stored != computed {
            return Err(BatchError::CorruptCrc { stored, computed });
        }
        let delta = be_i32(&bytes, 23);
        if delta < 0 {
            return Err(BatchError::BadOffsetDelta(delta));
        }
        Ok(RecordBatch { bytes })
    }

    /// Splits concatenated batches (as stored in a block) without re-checking CRCs:
    /// the block checksum already covers them.
    pub fn split_stored(mut bytes: Bytes) -> Result<Vec<RecordBatch>, BatchError> {
        let mut batches = Vec::new();
        while !bytes.is_empty() {
            if bytes.len() < HEADER_LEN {
                return Err(BatchError::TooShort(bytes.len()));
            }
            let len = be_i32(&bytes, 8).max(0) as usize + LOG_OVERHEAD;
            if len > bytes.len() || len < HEADER_LEN {
                return Err(BatchError::LengthMismatch {
                    declared: len,
                    actual: bytes.len(),
                });
            }
            batches.push(RecordBatch {
                bytes: bytes.split_to(len),
            });
        }
        Ok(batches)
    }

    pub fn base_offset(&self) -> u64 {
        be_i64(&self.bytes, 0).max(0) as u64
    }

    /// Offsets the batch occupies: `lastOffsetDelta + 1`.
    pub fn offset_count(&self) -> u64 {
        be_i32(&self.bytes, 23) as u64 + 1
    }

    /// One past the last offset.
    pub fn end_offset(&self) -> u64 {
        self.base_offset() + self.offset_count()
    }

    pub fn record_count(&self) -> u32 {
        be_i32(&self.bytes, 57).max(0) as u32
    }

    pub fn max_timestamp(&self) -> i64 {
        be_i64(&self.bytes, 35)
    }

    /// The attributes: compression codec (bits 0-2), timestamp type (bit 3),
    /// transactional (bit 4), control (bit 5).
    pub fn attributes(&self) -> i16 {
        i16::from_be_bytes([self.bytes[21], self.bytes[22]])
    }

    pub fn base_timestamp(&self) -> i64 {
        be_i64(&self.bytes, 27)
    }

    /// The idempotent producer's id, or -1.
    pub fn producer_id(&self) -> i64 {
        be_i64(&self.bytes, 43)
    }

    pub fn producer_epoch(&self) -> i16 {
        i16::from_be_bytes([self.bytes[51], self.bytes[52]])
    }

    /// Sequence number of the first record, or -1.
    pub fn base_sequence(&self) -> i32 {
        be_i32(&self.bytes, 53)
    }

    /// Sequence number of the last record (wrapping as Kafka's does).
    pub fn last_sequence(&self) -> i32 {
        let delta = be_i32(&self.bytes, 23);
        let base = self.base_sequence();
        if base < 0 {
            return base;
        }
        ((i64::from(base) + i64::from(delta)) % (i64::from(i32::MAX) + 1)) as i32
    }

    /// Whether the broker stamps this batch's records with their append time.
    pub fn has_log_append_time(&self) -> bool {
        self.attributes() & 0x08 != 0
    }

    /// The same batch stamped with the broker's append time: the timestamp-type bit
    /// set and the max timestamp replaced, as Kafka does for `LogAppendTime` topics.
    /// Both fields are under the CRC, which is recomputed.
    pub fn with_log_append_time(&self, append_time_ms: i64) -> RecordBatch {
        let mut bytes = BytesMut::from(&self.bytes[..]);
        let attributes = self.attributes() | 0x08;
        bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
        bytes[35..43].copy_from_slice(&append_time_ms.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        RecordBatch {
            bytes: bytes.freeze(),
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The same batch placed at `base_offset`. Copies the batch once; the CRC stays
    /// valid because it does not cover the base offset.
    pub fn with_base_offset(&self, base_offset: u64) -> RecordBatch {
        let mut bytes = BytesMut::from(&self.bytes[..]);
        write_base_offset(&mut bytes, base_offset);
        RecordBatch {
            bytes: bytes.freeze(),
        }
    }

    /// [`RecordBatch::with_base_offset`], copied into a buffer of `buffers`: the
    /// store's appends, whose copies it keeps until the log cache evicts them.
    pub(crate) fn placed_in(&self, base_offset: u64, buffers: &BufferPool) -> RecordBatch {
        RecordBatch {
            bytes: buffers.copy_with(&self.bytes, |bytes| write_base_offset(bytes, base_offset)),
        }
    }
}

fn write_base_offset(batch: &mut [u8], base_offset: u64) {
    batch[0..8].copy_from_slice(&(base_offset as i64).to_be_bytes());
}

/// Builds a valid v2 batch of `records` empty-bodied records, for tests and
/// benchmarks of the store (the broker receives real ones from clients).
pub fn synthetic_batch(records: u32, payload_len: usize, max_timestamp: i64) -> RecordBatch {
    let mut bytes = vec![0u8; HEADER_LEN + payload_len];
    let batch_len = (bytes.len() - LOG_OVERHEAD) as i32;
    bytes[8..12].copy_from_slice(&batch_len.to_be_bytes());
    bytes[16] = 2;
    bytes[23..27].copy_from_slice(&(records as i32 - 1).to_be_bytes());
    bytes[27..35].copy_from_slice(&max_timestamp.to_be_bytes());
    bytes[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    bytes[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    bytes[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    bytes[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    bytes[57..61].copy_from_slice(&(records as i32).to_be_bytes());
    for (i, byte) in bytes[HEADER_LEN..].iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    RecordBatch {
        bytes: Bytes::from(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_moves_base_offset_without_breaking_the_crc() {
        let batch = synthetic_batch(10, 1000, 1_700_000_000_000);
        let parsed = RecordBatch::parse(batch.bytes().clone()).expect("valid");
        assert_eq!(
            (
                parsed.base_offset(),
                parsed.offset_count(),
                parsed.record_count()
            ),
            (0, 10, 10)
        );
        assert_eq!(parsed.max_timestamp(), 1_700_000_000_000);
        let moved = parsed.with_base_offset(12345);
        let reparsed = RecordBatch::parse(moved.bytes().clone()).expect("still valid");
        assert_eq!(
            (reparsed.base_offset(), reparsed.end_offset()),
            (12345, 12355)
        );
    }

    #[test]
    fn refuses_damaged_batches() {
        let batch = synthetic_batch(3, 100, 0);
        let mut flipped = batch.bytes().to_vec();
        flipped[100] ^= 1;
        assert!(matches!(
            RecordBatch::parse(Bytes::from(flipped)),
            Err(BatchError::CorruptCrc { .. })
        ));
        let mut old_magic = batch.bytes().to_vec();
        old_magic[16] = 1;
        assert_eq!(
            RecordBatch::parse(Bytes::from(old_magic)),
            Err(BatchError::UnsupportedMagic(1))
        );
        assert!(matches!(
            RecordBatch::parse(batch.bytes().slice(..80)),
            Err(BatchError::LengthMismatch { .. })
        ));
        assert_eq!(
            RecordBatch::parse(Bytes::from_static(b"tiny")),
            Err(BatchError::TooShort(4))
        );
    }

    #[test]
    fn stamps_log_append_time_keeping_a_valid_crc() {
        let batch = synthetic_batch(4, 50, 1_000);
        assert!(!batch.has_log_append_time());
        let stamped = batch.with_log_append_time(99_000);
        let reparsed = RecordBatch::parse(stamped.bytes().clone()).expect("valid CRC");
        assert!(reparsed.has_log_append_time());
        assert_eq!(reparsed.max_timestamp(), 99_000);
        assert_eq!(reparsed.base_timestamp(), 1_000);
    }

    #[test]
    fn sequence_arithmetic_wraps_like_kafka() {
        let mut bytes = synthetic_batch(10, 0, 0).bytes().to_vec();
        bytes[53..57].copy_from_slice(&(i32::MAX - 3).to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = RecordBatch::parse(Bytes::from(bytes)).expect("valid");
        assert_eq!(batch.base_sequence(), i32::MAX - 3);
        assert_eq!(batch.last_sequence(), 5);
        assert_eq!(synthetic_batch(3, 0, 0).last_sequence(), -1);
    }

    #[test]
    fn splits_concatenated_batches() {
        let a = synthetic_batch(2, 10, 0).with_base_offset(0);
        let b = synthetic_batch(5, 300, 0).with_base_offset(2);
        let joined = Bytes::from([a.bytes().as_ref(), b.bytes().as_ref()].concat());
        let split = RecordBatch::split_stored(joined.clone()).expect("splits");
        assert_eq!(split, vec![a, b]);
        assert!(RecordBatch::split_stored(joined.slice(..joined.len() - 1)).is_err());
    }
}
