//! Small batches carved out of shared chunks.
//!
//! A buffer of its own per batch costs the allocator's size class, four per power of
//! two: a batch of 16 KiB plus its header takes 20 KiB, and a log cache full of
//! such batches held a fifth more memory than it counted (docs/benchmarks.md).
//! Carved one after another out of 1 MiB chunks, batches waste only a chunk's tail.
//! The cache drops batches in the order they were uploaded, close to the order they
//! were carved, so a chunk's batches go at about the same time and the chunk is
//! reused whole.

use std::collections::VecDeque;

use bytes::BytesMut;

/// The size of a chunk.
pub(super) const CHUNK: usize = 1 << 20;

/// Batches up to this size are carved; a chunk then wastes at most this at its end.
pub(super) const CARVED_MAX: usize = CHUNK / 8;

#[derive(Default)]
pub(super) struct Chunks {
    /// The unwritten rest of the chunk being carved; none before the first batch.
    current: Option<BytesMut>,
    /// Chunks carved before, oldest first. A chunk none of whose batches is left
    /// has this handle as its only reference and is reused (or freed) from here.
    carved: VecDeque<BytesMut>,
}

impl Chunks {
    /// An empty buffer of capacity `len` (at most [`CARVED_MAX`]) in a chunk; frozen,
    /// it keeps the chunk alive.
    pub(super) fn carve(&mut self, len: usize, max_free: usize) -> BytesMut {
        debug_assert!(len <= CARVED_MAX);
        let mut current = match self.current.take() {
            Some(rest) if rest.capacity() >= len => rest,
            spent => {
                // Even an empty rest references its chunk: kept, it can take it back.
                self.carved.extend(spent);
                self.next_chunk(max_free)
            }
        };
        self.current = Some(current.split_off(len));
        current
    }

    /// A chunk no batch uses any more, else a new one. Free chunks beyond
    /// `max_free` are handed back to the allocator.
    fn next_chunk(&mut self, max_free: usize) -> BytesMut {
        let mut reusable = None;
        let mut free = 0;
        let mut at = 0;
        while at < self.carved.len() {
            // Only the last reference can take its whole chunk back.
            if self.carved[at].try_reclaim(CHUNK) {
                if reusable.is_none() {
                    reusable = self.carved.remove(at);
                    continue;
                }
                free += 1;
                if free * CHUNK > max_free {
                    self.carved.remove(at);
                    continue;
                }
            }
            at += 1;
        }
        match reusable {
            Some(mut chunk) => {
                chunk.clear();
                chunk
            }
            None => BytesMut::with_capacity(CHUNK),
        }
    }

    /// Chunks kept that no batch uses.
    #[cfg(test)]
    pub(super) fn free_chunks(&mut self) -> usize {
        let mut free = 0;
        for chunk in &mut self.carved {
            if chunk.try_reclaim(CHUNK) {
                free += 1;
            }
        }
        free
    }
}
