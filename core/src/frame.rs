//! Checksummed frames for append-only files (the WAL and the embedded metadata log).
//!
//! ```text
//! [payload length: u32 LE][CRC32C of payload: u32 LE][payload]
//! ```
//!
//! A crash can leave the last frame torn (partly written). [`scan`] walks a file's
//! bytes and stops at the first frame that is incomplete or fails its checksum;
//! everything before it is intact, and the caller truncates the file there. Frames are
//! only acknowledged after an fsync that covers them, so a torn frame was never
//! acknowledged.

use std::ops::Range;

/// Bytes before each payload.
pub const FRAME_HEADER_LEN: usize = 8;

/// A payload length above this is treated as corruption, not as a frame to read:
/// a flipped bit in a length must not make recovery allocate gigabytes.
pub const MAX_FRAME_LEN: usize = 256 << 20;

/// Appends one frame holding `payload` to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&header(&[payload]));
    out.extend_from_slice(payload);
}

/// The header of a frame whose payload is `parts` back to back, so a writer can
/// frame a payload it holds in pieces without first copying them together.
pub fn header(parts: &[&[u8]]) -> [u8; FRAME_HEADER_LEN] {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    debug_assert!(len <= MAX_FRAME_LEN);
    let crc = parts
        .iter()
        .fold(0, |crc, part| crc32c::crc32c_append(crc, part));
    let mut header = [0; FRAME_HEADER_LEN];
    header[..4].copy_from_slice(&(len as u32).to_le_bytes());
    header[4..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Why a scan stopped before the end of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The last frame is incomplete: a write cut short by a crash.
    TornTail,
    /// A frame's checksum (or length) is wrong.
    Corrupt,
}

/// The intact frames of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Byte ranges of the payloads, in file order.
    pub payloads: Vec<Range<usize>>,
    /// Length of the intact prefix: where the file should be truncated.
    pub valid_len: usize,
    /// Set when bytes past `valid_len` were dropped.
    pub damage: Option<Damage>,
}

/// Walks `bytes` frame by frame.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut payloads = Vec::new();
    let mut position = 0;
    let damage = loop {
        let rest = &bytes[position..];
        if rest.is_empty() {
            break None;
        }
        if rest.len() < FRAME_HEADER_LEN {
            break Some(Damage::TornTail);
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let stored = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_FRAME_LEN {
            break Some(Damage::Corrupt);
        }
        let Some(payload) = rest.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
            break Some(Damage::TornTail);
        };
        if crc32c::crc32c(payload) != stored {
            // A torn write can also leave a complete-looking frame with stale bytes;
            // at the tail both mean "never acknowledged".
            let at_tail = FRAME_HEADER_LEN + len == rest.len();
            break Some(if at_tail {
                Damage::TornTail
            } else {
                Damage::Corrupt
            });
        }
        let start = position + FRAME_HEADER_LEN;
        payloads.push(start..start + len);
        position = start + len;
    };
    Scan {
        payloads,
        valid_len: position,
        damage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for payload in payloads {
            encode(payload, &mut out);
        }
        out
    }

    proptest! {
        #[test]
        fn a_header_from_pieces_is_the_header_of_the_whole(
            payload in prop::collection::vec(any::<u8>(), 0..300),
            cut in any::<prop::sample::Index>(),
        ) {
            let (front, back) = payload.split_at(cut.index(payload.len() + 1));
            prop_assert_eq!(header(&[front, back]), header(&[&payload]));
            let mut framed = Vec::new();
            encode(&payload, &mut framed);
            prop_assert_eq!(scan(&framed).payloads, vec![FRAME_HEADER_LEN..framed.len()]);
        }

        #[test]
        fn whole_files_scan_completely(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20)) {
            let bytes = frames(&payloads);
            let scan = scan(&bytes);
            prop_assert_eq!(scan.damage, None);
            prop_assert_eq!(scan.valid_len, bytes.len());
            let read: Vec<Vec<u8>> = scan.payloads.iter().map(|r| bytes[r.clone()].to_vec()).collect();
            prop_assert_eq!(read, payloads);
        }

        #[test]
        fn a_cut_anywhere_keeps_exactly_the_whole_frames_before_it(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..20),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = frames(&payloads);
            let cut = cut.index(bytes.len() + 1);
            let scan = scan(&bytes[..cut]);
            let mut boundary = 0;
            let mut whole = 0;
            for payload in &payloads {
                let end = boundary + FRAME_HEADER_LEN + payload.len();
                if end > cut { break; }
                boundary = end;
                whole += 1;
            }
            prop_assert_eq!(scan.payloads.len(), whole);
            prop_assert_eq!(scan.valid_len, boundary);
            prop_assert_eq!(scan.damage.is_some(), cut != boundary);
        }

        #[test]
        fn a_flipped_bit_never_yields_a_wrong_payload(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..100), 1..10),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let bytes = frames(&payloads);
            let mut damaged = bytes.clone();
            let position = at.index(damaged.len());
            damaged[position] ^= 1 << bit;
            let scan = scan(&damaged);
            prop_assert!(scan.damage.is_some());
            for (range, payload) in scan.payloads.iter().zip(&payloads) {
                prop_assert_eq!(&damaged[range.clone()], &payload[..]);
            }
            prop_assert!(scan.valid_len <= position);
        }
    }
}
