//! Recycled memory for the record batches the store keeps.
//!
//! Every append copies its batch once, to place it at the stream's end, and the copy
//! lives in the log cache until it is evicted: a fraction of a second at high ingest.
//! Left to the allocator, which returns freed pages to the kernel within 100 ms to
//! keep the RSS near the live bytes (`broker/src/main.rs`), each copy landed on pages
//! purged since: a page fault per 4 KiB copied and, per 4 KiB freed, a purge whose TLB
//! shootdown interrupts every CPU. At 850 MiB/s of ingest that was a third of the
//! store's CPU (docs/benchmarks.md). A buffer whose batch is dropped comes back here
//! instead, up to a bound, and the next batch of its size class reuses it.
//!
//! With [`Layout::Carved`], batches up to [`chunks::CARVED_MAX`] are carved out of
//! shared chunks instead ([`chunks`]): a buffer per batch costs up to a quarter more
//! than the batch.

mod chunks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;

use chunks::{CARVED_MAX, Chunks};

/// Batches larger than this are copied into memory of their own, not pooled: Kafka's
/// default batch limit is 1 MiB, and a few huge buffers would crowd the bound.
const MAX_POOLED: usize = 8 << 20;

/// Chunks small batches are carved from, and buffers of dropped larger batches by
/// size class, kept for the next copies.
pub(crate) struct BufferPool {
    shared: Arc<Shared>,
    layout: Layout,
}

/// How the pool lays batches out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Small batches back to back in shared chunks, no size-class rounding; for
    /// batches freed in about the order they were copied, since a chunk lives as
    /// long as its longest-lived batch.
    Carved,
    /// A buffer per batch, of one of four size classes per power of two; for batches
    /// freed in any order.
    PerBatch,
}

struct Shared {
    free: Mutex<Free>,
    /// Bytes of free buffers kept at most, and of free chunks; the rest go back to
    /// the allocator.
    max_retained: usize,
}

#[derive(Default)]
struct Free {
    chunks: Chunks,
    by_class: HashMap<usize, Vec<Vec<u8>>>,
    retained: usize,
}

impl BufferPool {
    pub(crate) fn new(max_retained: usize, layout: Layout) -> Self {
        BufferPool {
            shared: Arc::new(Shared {
                free: Mutex::new(Free::default()),
                max_retained,
            }),
            layout,
        }
    }

    /// `data` copied into a buffer of the pool and changed by `edit`; the buffer
    /// returns to the pool when the last clone of the result is dropped.
    pub(crate) fn copy_with(&self, data: &[u8], edit: impl FnOnce(&mut [u8])) -> Bytes {
        if self.layout == Layout::Carved && data.len() <= CARVED_MAX {
            let mut carved = {
                let mut free = self.shared.lock();
                // Free chunks and free buffers share the bound.
                let max_free = self.shared.max_retained.saturating_sub(free.retained);
                free.chunks.carve(data.len(), max_free)
            };
            // Outside the lock: the buffer is this batch's alone until frozen.
            carved.extend_from_slice(data);
            edit(&mut carved);
            return carved.freeze();
        }
        let class = size_class(data.len());
        if class > MAX_POOLED {
            let mut copy = data.to_vec();
            edit(&mut copy);
            return Bytes::from(copy);
        }
        let mut buffer = self
            .shared
            .lock()
            .take(class)
            .unwrap_or_else(|| Vec::with_capacity(class));
        buffer.extend_from_slice(data);
        edit(&mut buffer);
        Bytes::from_owner(Pooled {
            buffer,
            pool: Arc::downgrade(&self.shared),
        })
    }

    /// Bytes of free buffers the pool holds.
    #[cfg(test)]
    fn retained_bytes(&self) -> usize {
        self.shared.lock().retained
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Free {
    fn take(&mut self, class: usize) -> Option<Vec<u8>> {
        let buffer = self.by_class.get_mut(&class)?.pop()?;
        self.retained -= class;
        Some(buffer)
    }
}

/// A pooled buffer holding one batch; dropped, it goes back to its pool.
struct Pooled {
    buffer: Vec<u8>,
    /// Weak: batches may outlive the store (a fetch response still being sent).
    pool: Weak<Shared>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(shared) = self.pool.upgrade() else {
            return;
        };
        let mut buffer = std::mem::take(&mut self.buffer);
        let class = buffer.capacity();
        let mut free = shared.lock();
        if free.retained + class <= shared.max_retained {
            buffer.clear();
            free.retained += class;
            free.by_class.entry(class).or_default().push(buffer);
        }
    }
}

/// The capacity a buffer of `len` bytes gets: four classes per power of two, like
/// the allocator's own, so a buffer is at most a quarter larger than its batch and
/// batches of nearby sizes share buffers.
fn size_class(len: usize) -> usize {
    const SMALLEST: usize = 64;
    if len <= SMALLEST {
        return SMALLEST;
    }
    let lower_power = 1usize << (usize::BITS - 1 - (len - 1).leading_zeros());
    let step = lower_power / 4;
    len.div_ceil(step) * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_holds_its_length_and_wastes_at_most_a_quarter() {
        for len in (1..70_000).chain([1 << 20, (1 << 20) + 1, MAX_POOLED]) {
            let class = size_class(len);
            assert!(class >= len, "{len} -> {class}");
            assert!(class <= (len * 5 / 4).max(64), "{len} -> {class}");
        }
        assert_eq!(size_class(16 << 10), 16 << 10);
        assert_eq!(size_class((16 << 10) + 1), 20 << 10);
    }

    /// A batch too large to be carved: it gets a pooled buffer of its own.
    const LARGE: usize = CARVED_MAX + 1000;

    #[test]
    fn a_dropped_batch_buffer_is_reused_for_the_next_of_its_class() {
        // Per batch, every batch has a buffer of its own; carved, only large ones.
        for (layout, len) in [(Layout::PerBatch, 1000), (Layout::Carved, LARGE)] {
            let pool = BufferPool::new(1 << 20, layout);
            let first = pool.copy_with(&vec![7u8; len], |b| b[0] = 1);
            assert_eq!(first[0], 1);
            assert!(first[1..].iter().all(|&b| b == 7));
            let address = first.as_ptr();
            let clone = first.clone();
            drop(first);
            assert_eq!(pool.retained_bytes(), 0, "a clone still holds the buffer");
            drop(clone);
            assert_eq!(pool.retained_bytes(), size_class(len), "{layout:?}");

            let second = pool.copy_with(&vec![9u8; len - 10], |_| {});
            assert_eq!(second.as_ptr(), address, "same class: the buffer is reused");
            assert!(second.iter().all(|&b| b == 9));
            assert_eq!(pool.retained_bytes(), 0);
        }
    }

    #[test]
    fn buffers_beyond_the_bound_or_the_pooled_size_go_back_to_the_allocator() {
        let pool = BufferPool::new(2 * size_class(LARGE) + 1000, Layout::Carved);
        let batches: Vec<Bytes> = (0..4)
            .map(|_| pool.copy_with(&[0u8; LARGE], |_| {}))
            .collect();
        drop(batches);
        assert_eq!(pool.retained_bytes(), 2 * size_class(LARGE));

        let huge = pool.copy_with(&vec![1u8; MAX_POOLED + 1], |b| b[0] = 2);
        assert_eq!((huge[0], huge.len()), (2, MAX_POOLED + 1));
        drop(huge);
        assert_eq!(pool.retained_bytes(), 2 * size_class(LARGE));
    }

    /// `count` batches of `len` bytes, each starting with its index.
    fn carve_all(pool: &BufferPool, count: usize, len: usize) -> Vec<Bytes> {
        (0..count)
            .map(|i| pool.copy_with(&vec![0xAB; len], |b| b[0] = i as u8))
            .collect()
    }

    #[test]
    fn small_batches_are_carved_back_to_back_and_keep_their_own_bytes() {
        let pool = BufferPool::new(4 * chunks::CHUNK, Layout::Carved);
        let len = (16 << 10) + 61;
        let batches = carve_all(&pool, 8, len);
        for (i, pair) in batches.windows(2).enumerate() {
            assert_eq!(
                pair[1].as_ptr() as usize,
                pair[0].as_ptr() as usize + len,
                "no size-class rounding between batches {i} and {}",
                i + 1
            );
        }
        for (i, batch) in batches.iter().enumerate() {
            assert_eq!((batch.len(), batch[0]), (len, i as u8));
            assert!(batch[1..].iter().all(|&b| b == 0xAB));
        }
    }

    #[test]
    fn a_chunk_whose_batches_are_gone_is_reused_even_behind_one_still_held() {
        let pool = BufferPool::new(8 * chunks::CHUNK, Layout::Carved);
        let len = 100 << 10;
        let per_chunk = chunks::CHUNK / len;
        // Chunk A: one batch kept (a slow reader); chunk B: all dropped.
        let mut first = carve_all(&pool, per_chunk, len);
        let held = first.swap_remove(0);
        drop(first);
        let second = carve_all(&pool, per_chunk, len);
        let second_chunk = second[0].as_ptr();
        drop(second);
        // B's rest has no room for the next batch: B comes back, A stays out.
        let third = carve_all(&pool, 1, len);
        assert_eq!(third[0].as_ptr(), second_chunk, "the free chunk is reused");
        assert_eq!(held[0], 0, "the batch held keeps its bytes");
        assert!(held[1..].iter().all(|&b| b == 0xAB));
    }

    #[test]
    fn free_chunks_beyond_the_bound_go_back_to_the_allocator() {
        let pool = BufferPool::new(2 * chunks::CHUNK, Layout::Carved);
        let len = 100 << 10;
        let per_chunk = chunks::CHUNK / len;
        drop(carve_all(&pool, 6 * per_chunk, len));
        // The next chunk reuses one free chunk and keeps two more at most.
        drop(carve_all(&pool, per_chunk + 1, len));
        let free = pool.shared.lock().chunks.free_chunks();
        assert!(free <= 2, "{free} free chunks kept, bound 2");
    }

    #[test]
    fn batches_outliving_their_pool_are_freed() {
        let pool = BufferPool::new(1 << 20, Layout::PerBatch);
        let batch = pool.copy_with(b"kept past the store", |_| {});
        drop(pool);
        assert_eq!(&batch[..], b"kept past the store");
    }
}
