//! The fixed-size footer at the end of every object.

use super::{FormatError, ObjectKind};

/// `STRATAOB`.
pub const MAGIC: [u8; 8] = *b"STRATAOB";
/// The version this build writes and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes in the footer.
pub const FOOTER_LEN: usize = 40;

/// Where the index is, and how to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub index_position: u64,
    pub index_len: u32,
    pub index_checksum: u32,
    pub block_count: u32,
    pub kind: ObjectKind,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        out[0..8].copy_from_slice(&self.index_position.to_le_bytes());
        out[8..12].copy_from_slice(&self.index_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.index_checksum.to_le_bytes());
        out[16..20].copy_from_slice(&self.block_count.to_le_bytes());
        out[20] = self.kind.code();
        // 21..24 reserved, zero.
        out[24..26].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        // 26..28 reserved, zero.
        out[28..36].copy_from_slice(&MAGIC);
        let checksum = crc32c::crc32c(&out[..36]);
        out[36..40].copy_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Decodes the footer from the last [`FOOTER_LEN`] bytes of `tail`, checking
    /// magic, version and checksum, and that the index fits in `object_len` bytes.
    pub fn decode(tail: &[u8], object_len: u64) -> Result<Footer, FormatError> {
        let Some(start) = tail.len().checked_sub(FOOTER_LEN) else {
            return Err(FormatError::TooShort { len: tail.len() });
        };
        let bytes = &tail[start..];
        let magic: [u8; 8] = array(&bytes[28..36]);
        if magic != MAGIC {
            return Err(FormatError::BadMagic { found: magic });
        }
        let stored = u32::from_le_bytes(array(&bytes[36..40]));
        let computed = crc32c::crc32c(&bytes[..36]);
        if stored != computed {
            return Err(FormatError::FooterChecksum { stored, computed });
        }
        let version = u16::from_le_bytes(array(&bytes[24..26]));
        if version > FORMAT_VERSION || version == 0 {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let footer = Footer {
            index_position: u64::from_le_bytes(array(&bytes[0..8])),
            index_len: u32::from_le_bytes(array(&bytes[8..12])),
            index_checksum: u32::from_le_bytes(array(&bytes[12..16])),
            block_count: u32::from_le_bytes(array(&bytes[16..20])),
            kind: ObjectKind::from_code(bytes[20])?,
        };
        let index_end = footer
            .index_position
            .checked_add(u64::from(footer.index_len));
        if index_end != Some(object_len.saturating_sub(FOOTER_LEN as u64)) {
            return Err(FormatError::IndexOutOfBounds {
                position: footer.index_position,
                len: u64::from(footer.index_len),
                object_len,
            });
        }
        Ok(footer)
    }
}

/// Copies a slice whose length the caller has fixed into an array.
pub(super) fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}
