//! A ranged read's answer, kept in the pieces the backend returned it in.
//!
//! OpenDAL hands a read back as a list of buffers (2 MiB reads on a local
//! directory, the HTTP body's chunks from S3). Joining them into one `Bytes` copies
//! the whole range and holds it twice while doing so: a compaction copying 8 MiB
//! runs four at a time held ~100 MiB, half of it those copies. A block is instead
//! a slice of the piece that holds it; only a block spanning two pieces is copied.

use bytes::{Bytes, BytesMut};
use opendal::Buffer;

/// The bytes of one read, by position from the read's start.
pub(super) struct Pieces {
    /// Each piece with the position of its first byte.
    pieces: Vec<(usize, Bytes)>,
    len: usize,
}

impl Pieces {
    pub(super) fn new(buffer: Buffer) -> Self {
        let mut len = 0;
        let pieces = buffer
            .filter(|piece| !piece.is_empty())
            .map(|piece| {
                let start = len;
                len += piece.len();
                (start, piece)
            })
            .collect();
        Pieces { pieces, len }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes `at..at + len`, a slice of one piece when they lie in one; `None` when
    /// the read ended before them.
    pub(super) fn slice(&self, at: usize, len: usize) -> Option<Bytes> {
        let end = at.checked_add(len)?;
        if end > self.len {
            return None;
        }
        if len == 0 {
            return Some(Bytes::new());
        }
        let first = self
            .pieces
            .partition_point(|(start, piece)| start + piece.len() <= at);
        let (start, piece) = &self.pieces[first];
        if end <= start + piece.len() {
            return Some(piece.slice(at - start..end - start));
        }
        let mut joined = BytesMut::with_capacity(len);
        for (start, piece) in &self.pieces[first..] {
            if *start >= end {
                break;
            }
            let from = at.saturating_sub(*start);
            let to = (end - start).min(piece.len());
            joined.extend_from_slice(&piece[from..to]);
        }
        Some(joined.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(sizes: &[usize]) -> (Pieces, Vec<u8>) {
        let mut all = Vec::new();
        let mut parts = Vec::new();
        for &size in sizes {
            let part: Vec<u8> = (all.len()..all.len() + size).map(|i| i as u8).collect();
            all.extend_from_slice(&part);
            parts.push(Bytes::from(part));
        }
        (Pieces::new(Buffer::from(parts)), all)
    }

    #[test]
    fn a_slice_inside_a_piece_shares_its_memory() {
        let (read, all) = pieces(&[100, 100, 100]);
        let block = read.slice(120, 50).expect("in range");
        assert_eq!(&block[..], &all[120..170]);
        let piece = &read.pieces[1].1;
        assert_eq!(block.as_ptr(), piece[20..].as_ptr(), "not copied");
    }

    #[test]
    fn a_slice_across_pieces_is_joined() {
        let (read, all) = pieces(&[100, 0, 30, 100, 7]);
        assert_eq!(read.len(), 237);
        for (at, len) in [
            (90, 20),
            (0, 237),
            (95, 140),
            (129, 2),
            (230, 7),
            (100, 30),
            (5, 0),
        ] {
            let block = read.slice(at, len).expect("in range");
            assert_eq!(&block[..], &all[at..at + len], "{at}+{len}");
        }
    }

    #[test]
    fn a_slice_past_the_end_is_none() {
        let (read, _) = pieces(&[10, 10]);
        assert!(read.slice(15, 6).is_none());
        assert!(read.slice(usize::MAX, 2).is_none());
        assert!(read.slice(20, 0).is_some());
    }
}
