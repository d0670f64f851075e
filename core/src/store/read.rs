//! Reads of data no longer in the log cache: object index, then the blocks that hold
//! the offsets, each verified against its checksum.
//!
//! A stream's blocks sit back to back in an object, so one ranged GET fetches the
//! block a read needs together with the following ones, up to `read_ahead_bytes`:
//! a sequential reader then finds its next blocks in the block cache. Cold reads take
//! permits from their own semaphore, so a burst of them cannot take every storage
//! request slot from uploads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::metadata::{self, ObjectRecord, StreamId};
use super::pieces::Pieces;
use super::{Inner, StoreError};
use crate::batch::RecordBatch;
use crate::object::{BlockEntry, FOOTER_LEN, Footer, Index, ObjectId, object_key};

/// Bytes fetched from an object's end on first read: the footer and, for objects
/// of a few hundred blocks, the whole index, in one request.
const TAIL_BYTES: u64 = 64 * 1024;

/// Decoded indexes of recently read objects.
pub(super) struct IndexCache {
    capacity: usize,
    entries: Mutex<HashMap<ObjectId, Arc<Index>>>,
}

impl IndexCache {
    pub(super) fn new(capacity: usize) -> Self {
        IndexCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, id: ObjectId) -> Option<Arc<Index>> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn insert(&self, id: ObjectId, index: Arc<Index>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            // Indexes are small and re-read cheaply; a full reset keeps this simple.
            entries.clear();
        }
        entries.insert(id, index);
    }
}

pub(super) async fn from_objects(
    inner: &Arc<Inner>,
    stream: StreamId,
    offset: u64,
    max_bytes: usize,
) -> Result<Vec<RecordBatch>, StoreError> {
    let open = inner
        .open_stream_state(stream)
        .ok_or(StoreError::StreamNotOpen(stream))?;
    let range = {
        let state = open.lock_state();
        state
            .ranges
            .range(..=offset)
            .next_back()
            .map(|(_, r)| *r)
            .filter(|r| offset < r.end_offset)
    };
    let Some(range) = range else {
        let start = open.lock_state().start_offset;
        let end = inner.lock_cache().acked_end(stream).unwrap_or(0);
        return Err(StoreError::OffsetOutOfRange {
            stream,
            offset,
            start,
            end,
        });
    };
    // The ranges after this one are fetched while this one is read.
    super::prefetch::schedule(inner, &open, range.end_offset);
    inner.prefetches.wait(range.object, stream).await;
    let index = load_index(inner, range.object).await?;
    let blocks: Vec<BlockEntry> = index
        .blocks_of(stream.0)
        .iter()
        .filter(|e| e.end_offset > offset)
        .copied()
        .collect();
    let mut out = Vec::new();
    let mut bytes = 0;
    for (i, entry) in blocks.iter().enumerate() {
        if !out.is_empty() && bytes >= max_bytes {
            break;
        }
        let data = match inner.blocks.get((range.object, entry.position)) {
            Some(data) => {
                metrics::counter!("strata_block_cache_hits_total").increment(1);
                data
            }
            None => {
                metrics::counter!("strata_block_cache_misses_total").increment(1);
                let budget = max_bytes.max(inner.config.read_ahead_bytes);
                fetch_run(inner, range.object, &blocks[i..], budget).await?
            }
        };
        for batch in RecordBatch::split_stored(data)? {
            if batch.end_offset() <= offset {
                continue;
            }
            if !out.is_empty() && bytes + batch.len() > max_bytes {
                return Ok(out);
            }
            bytes += batch.len();
            out.push(batch);
        }
    }
    Ok(out)
}

/// Fetches `run[0]` and the contiguous blocks after it, up to `budget` bytes, in one
/// ranged GET; verifies each and caches it; returns the first.
async fn fetch_run(
    inner: &Inner,
    object: ObjectId,
    run: &[BlockEntry],
    budget: usize,
) -> Result<Bytes, StoreError> {
    let blocks = read_run(inner, object, run, budget).await?;
    if blocks.len() > 1 {
        metrics::counter!("strata_read_ahead_blocks_total").increment(blocks.len() as u64 - 1);
    }
    let first = blocks[0].1.clone();
    cache_blocks(inner, object, blocks);
    Ok(first)
}

/// Puts blocks read from `object` in the block cache.
pub(super) fn cache_blocks(inner: &Inner, object: ObjectId, blocks: Vec<(BlockEntry, Bytes)>) {
    for (entry, block) in blocks {
        inner.blocks.insert((object, entry.position), block);
    }
    metrics::gauge!("strata_block_cache_bytes").set(inner.blocks.bytes() as f64);
}

/// Reads `run[0]` and the blocks right after it in the object (while contiguous and
/// within `budget` bytes) with one ranged GET, each verified against its checksum.
pub(super) async fn read_run(
    inner: &Inner,
    object: ObjectId,
    run: &[BlockEntry],
    budget: usize,
) -> Result<Vec<(BlockEntry, Bytes)>, StoreError> {
    read_contiguous(inner, object, &run[..run_len(run, budget)]).await
}

/// How many blocks of `run` one GET of at most `budget` bytes reads: the first, and
/// those right after it in the object while the total stays within `budget`.
pub(super) fn run_len(run: &[BlockEntry], budget: usize) -> usize {
    let Some(first) = run.first() else {
        return 0;
    };
    let mut count = 1;
    let mut len = u64::from(first.len);
    while let Some(next) = run.get(count) {
        let previous = &run[count - 1];
        let contiguous = next.position == previous.position + u64::from(previous.len);
        if !contiguous || len + u64::from(next.len) > budget as u64 {
            break;
        }
        len += u64::from(next.len);
        count += 1;
    }
    count
}

/// Reads `blocks` (back to back in `object`, as [`run_len`] counts them) with one
/// ranged GET, each verified against its checksum.
pub(super) async fn read_contiguous(
    inner: &Inner,
    object: ObjectId,
    blocks: &[BlockEntry],
) -> Result<Vec<(BlockEntry, Bytes)>, StoreError> {
    let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
        return Ok(Vec::new());
    };
    let key = object_key(object);
    let start = first.position;
    let end = last.position + u64::from(last.len);
    let data = get_range(inner, &key, start..end).await?;
    let mut read = Vec::with_capacity(blocks.len());
    for entry in blocks {
        let block = block_of(&data, entry, start, &key)?;
        read.push((*entry, block));
    }
    Ok(read)
}

/// The block of `entry`, verified against its checksum, out of `data` read from
/// position `start` of object `key`.
pub(super) fn block_of(
    data: &Pieces,
    entry: &BlockEntry,
    start: u64,
    key: &str,
) -> Result<Bytes, StoreError> {
    let block = entry
        .position
        .checked_sub(start)
        .and_then(|at| data.slice(at as usize, entry.len as usize))
        .ok_or_else(|| {
            StoreError::Task(format!(
                "object {key}: a read from {start} of {} bytes ends before block {}+{}",
                data.len(),
                entry.position,
                entry.len
            ))
        })?;
    entry.verify(&block).map_err(|source| StoreError::Format {
        key: key.to_string(),
        source,
    })?;
    Ok(block)
}

/// One ranged GET of `key`, within the cold-read budget (`cold_read_concurrency`),
/// in the pieces the backend returned.
pub(super) async fn get_range(
    inner: &Inner,
    key: &str,
    range: std::ops::Range<u64>,
) -> Result<Pieces, StoreError> {
    let _permit = inner
        .cold_reads
        .acquire()
        .await
        .map_err(|_| StoreError::Task("cold read budget closed".into()))?;
    inner
        .storage
        .operator()
        .read_with(key)
        .range(range)
        .await
        .map(Pieces::new)
        .map_err(StoreError::storage("read", key))
}

pub(super) async fn load_index(inner: &Inner, id: ObjectId) -> Result<Arc<Index>, StoreError> {
    if let Some(index) = inner.indexes.get(id) {
        return Ok(index);
    }
    let key = object_key(id);
    let record = inner
        .meta
        .get(&metadata::object_key(id))
        .await?
        .ok_or_else(|| metadata::StoreMetaError::Malformed(metadata::object_key(id)))?;
    let size = ObjectRecord::parse(&record)?.size;
    let read = |start: u64, end: u64| {
        let key = key.clone();
        async move {
            inner
                .storage
                .operator()
                .read_with(&key)
                .range(start..end)
                .await
                .map(|buffer| buffer.to_bytes())
                .map_err(StoreError::storage("read", &key))
        }
    };
    let format = |source| StoreError::Format {
        key: key.clone(),
        source,
    };
    let tail_start = size.saturating_sub(TAIL_BYTES.max(FOOTER_LEN as u64));
    let tail = read(tail_start, size).await?;
    let footer = Footer::decode(&tail, size).map_err(format)?;
    let index_end = footer.index_position + u64::from(footer.index_len);
    let index_bytes = if footer.index_position >= tail_start {
        let from = (footer.index_position - tail_start) as usize;
        tail.slice(from..from + footer.index_len as usize)
    } else {
        read(footer.index_position, index_end).await?
    };
    let index = Arc::new(Index::decode(&index_bytes, &footer).map_err(format)?);
    inner.indexes.insert(id, index.clone());
    Ok(index)
}
