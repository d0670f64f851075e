//! Compaction: a stream's small ranges, scattered over stream-set objects, are
//! rewritten into one stream object each run, so cold reads of a stream touch few
//! objects and stream-set objects become garbage once every stream has moved out.
//!
//! Memory stays bounded: source blocks are read in runs of at most `COPY_READ`
//! bytes, `READS_AHEAD` at a time (a part's worth), and streamed into a multipart
//! writer. The commit takes the old ranges out of their objects' records and writes
//! the new object's, in a transaction that compares the stream's epoch and each
//! record's revision: a record another stream rewrote meanwhile is read again, while
//! a concurrent retention of this stream or a new owner makes it fail cleanly (the
//! object is then discarded).

use bytes::Bytes;
use futures::StreamExt;

use super::metadata::{self, ObjectRange, ObjectRecord, ObjectState, StreamId};
use super::object_ranges;
use super::{Inner, OpenStream, StoreError, StreamStore, read, upload};
use crate::meta::{Compare, Op, Txn};
use crate::object::{BlockEntry, ObjectId, ObjectKind, encode_tail, object_key};

/// The writer's part size.
const COPY_CHUNK: usize = 8 << 20;
/// GETs of one copy in flight at once. A stream's part of a source object is often a
/// few hundred KiB (its share of a merged object, or of a large object-WAL window),
/// and one such GET at a time left a copy waiting on a remote store's latency.
pub(super) const READS_AHEAD: usize = 4;
/// The most one GET of a copy reads: the reads in flight hold one part's worth.
const COPY_READ: usize = COPY_CHUNK / READS_AHEAD;

/// What one compaction of a stream did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Old ranges replaced.
    pub ranges_merged: usize,
    /// Stream objects written.
    pub objects_written: usize,
    /// Bytes copied.
    pub bytes: u64,
}

impl StreamStore {
    /// Merges runs of `stream`'s small ranges into stream objects (in waves of
    /// one stream, see [`StreamStore::compact_all`]).
    pub async fn compact(&self, stream: StreamId) -> Result<CompactionReport, StoreError> {
        let open = self
            .inner
            .open_stream_state(stream)
            .ok_or(StoreError::StreamNotOpen(stream))?;
        super::compaction_round::compact_streams(&self.inner, vec![open]).await
    }
}

/// Runs of consecutive small ranges worth merging: each range smaller than half a
/// stream object, a run at most `target` bytes and at least `min_ranges` long.
pub(super) fn groups(
    ranges: &[ObjectRange],
    target: u64,
    min_ranges: usize,
) -> Vec<&[ObjectRange]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    let min_ranges = min_ranges.max(2);
    for (i, range) in ranges.iter().enumerate() {
        let small = range.bytes < target / 2;
        let contiguous = i == start || ranges[i - 1].end_offset == range.start_offset;
        if !small || !contiguous || bytes + range.bytes > target {
            if i - start >= min_ranges {
                out.push(&ranges[start..i]);
            }
            start = if small { i } else { i + 1 };
            bytes = 0;
        }
        if small {
            bytes += range.bytes;
        }
    }
    if ranges.len() > start && ranges.len() - start >= min_ranges {
        out.push(&ranges[start..]);
    }
    out
}

/// A stream object written from a group of one stream's ranges, not yet committed.
pub(super) struct WrittenGroup {
    pub id: ObjectId,
    pub committed: ObjectRecord,
    /// The one range it holds, in place of the group's.
    pub merged: ObjectRange,
    pub copied_bytes: u64,
}

impl WrittenGroup {
    /// Its commit: `group` of `open` gives way to the merged range.
    pub(super) fn rewritten<'a>(
        &self,
        open: &'a OpenStream,
        group: &'a [ObjectRange],
    ) -> Rewritten<'a> {
        Rewritten {
            id: self.id,
            committed: self.committed,
            swaps: vec![RangeSwap {
                open,
                old: group,
                new: vec![self.merged],
            }],
        }
    }
}

/// Copies `group` of `stream` into a new stream object; discarded again on error.
pub(super) async fn write_stream_object(
    inner: &Inner,
    stream: StreamId,
    group: &[ObjectRange],
) -> Result<WrittenGroup, StoreError> {
    let (id, prepared) = inner
        .new_object(crate::object::ObjectKind::Stream, 0)
        .await?;
    let (size, copied_bytes) = match copy_blocks(inner, stream, id, group).await {
        Ok(sizes) => sizes,
        Err(err) => {
            upload::discard_object(inner, id).await?;
            return Err(err);
        }
    };
    let merged = ObjectRange {
        start_offset: group[0].start_offset,
        end_offset: group[group.len() - 1].end_offset,
        object: id,
        bytes: group.iter().map(|r| r.bytes).sum(),
        max_timestamp: group
            .iter()
            .map(|r| r.max_timestamp)
            .max()
            .unwrap_or(i64::MIN),
    };
    tracing::debug!(stream = stream.0, object = %id, ranges = group.len(), bytes = copied_bytes, "compacted ranges into a stream object");
    Ok(WrittenGroup {
        id,
        committed: ObjectRecord {
            state: ObjectState::Committed,
            size,
            ..prepared
        },
        merged,
        copied_bytes,
    })
}

/// One stream's ranges rewritten into a new object: `old` give way to `new`.
pub(super) struct RangeSwap<'a> {
    pub open: &'a OpenStream,
    pub old: &'a [ObjectRange],
    pub new: Vec<ObjectRange>,
}

/// A new object of a rewrite, with the swaps its commit makes.
pub(super) struct Rewritten<'a> {
    pub id: ObjectId,
    /// Its record as committed (the ranges are added from `swaps`).
    pub committed: ObjectRecord,
    pub swaps: Vec<RangeSwap<'a>>,
}

/// Commits the `rewritten` objects (their records, listing the new ranges) and takes
/// the old ranges out of their objects' records, in one transaction that compares
/// every stream's epoch and every record rewritten, then applies the swaps to the
/// streams' in-memory ranges; returns the ids committed. A record another stream's
/// change rewrote meanwhile is read again. An object one of whose streams was taken
/// over is discarded and the others committed without it; if something else changed
/// (every stream still ours, yet a range gone from its record), all are discarded.
pub(super) async fn commit_rewrites(
    inner: &Inner,
    mut rewritten: Vec<Rewritten<'_>>,
) -> Result<Vec<ObjectId>, StoreError> {
    let meta = inner.meta.as_ref();
    for _ in 0..object_ranges::MAX_ATTEMPTS {
        if rewritten.is_empty() {
            break;
        }
        let swaps = || rewritten.iter().flat_map(|r| &r.swaps);
        let removed = swaps()
            .flat_map(|swap| swap.old.iter().map(|old| (swap.open.id, *old)))
            .collect();
        let edits = object_ranges::remove_ranges(meta, removed).await?;
        let ranges_listed = edits.is_some();
        if let Some(edits) = edits {
            let mut txn = Txn::new();
            for swap in swaps() {
                txn = txn.when(Compare::Value(
                    metadata::epoch_key(swap.open.id),
                    metadata::u64_value(swap.open.epoch),
                ));
            }
            let mut txn = edits.into_txn(txn);
            for object in &rewritten {
                let added: Vec<_> = object
                    .swaps
                    .iter()
                    .flat_map(|swap| swap.new.iter().map(|new| (swap.open.id, *new)))
                    .collect();
                txn = txn.and_then(Op::put(
                    metadata::object_key(object.id),
                    object_ranges::record_value(&object.committed, &added),
                ));
            }
            if meta.txn(txn).await?.succeeded {
                for swap in swaps() {
                    let mut state = swap.open.lock_state();
                    for old in swap.old {
                        state.ranges.remove(&old.start_offset);
                    }
                    for new in &swap.new {
                        state.ranges.insert(new.start_offset, *new);
                    }
                }
                return Ok(rewritten.iter().map(|object| object.id).collect());
            }
        }
        let mut lost = Vec::new();
        for (at, object) in rewritten.iter().enumerate() {
            for swap in &object.swaps {
                if !metadata::holds_epoch(meta, swap.open.id, swap.open.epoch).await? {
                    lost.push(at);
                    break;
                }
            }
        }
        if lost.is_empty() && !ranges_listed {
            break;
        }
        for at in lost.into_iter().rev() {
            upload::discard_object(inner, rewritten.remove(at).id).await?;
        }
    }
    for object in rewritten {
        upload::discard_object(inner, object.id).await?;
    }
    Ok(Vec::new())
}

/// Streams the blocks of `group` into object `id`; returns (object size, block bytes).
async fn copy_blocks(
    inner: &Inner,
    stream: StreamId,
    id: ObjectId,
    group: &[ObjectRange],
) -> Result<(u64, u64), StoreError> {
    let key = object_key(id);
    let mut writer = inner
        .storage
        .operator()
        .writer_with(&key)
        .chunk(COPY_CHUNK)
        .await
        .map_err(StoreError::storage("write", &key))?;
    // Every GET of the group, planned up front (the sources' indexes are mostly
    // cached: a wave's streams share their source objects).
    let mut runs: Vec<(ObjectId, Vec<BlockEntry>)> = Vec::new();
    for range in group {
        let index = read::load_index(inner, range.object).await?;
        let blocks: Vec<BlockEntry> = index
            .blocks_of(stream.0)
            .iter()
            .filter(|e| e.start_offset >= range.start_offset && e.end_offset <= range.end_offset)
            .copied()
            .collect();
        let mut next = 0;
        while next < blocks.len() {
            let len = read::run_len(&blocks[next..], COPY_READ);
            runs.push((range.object, blocks[next..next + len].to_vec()));
            next += len;
        }
    }
    let reads: Vec<_> = runs
        .iter()
        .map(|(object, blocks)| read::read_contiguous(inner, *object, blocks))
        .collect();
    let mut fetched = futures::stream::iter(reads).buffered(READS_AHEAD);
    let mut entries: Vec<BlockEntry> = Vec::new();
    let mut position = 0u64;
    while let Some(run) = fetched.next().await {
        for (entry, data) in run? {
            writer
                .write(data)
                .await
                .map_err(StoreError::storage("write", &key))?;
            entries.push(BlockEntry { position, ..entry });
            position += u64::from(entry.len);
        }
    }
    let tail = encode_tail(ObjectKind::Stream, &entries, position);
    let size = position + tail.len() as u64;
    metrics::counter!("strata_compaction_written_bytes_total").increment(size);
    writer
        .write(Bytes::from(tail))
        .await
        .map_err(StoreError::storage("write", &key))?;
    writer
        .close()
        .await
        .map_err(StoreError::storage("write", &key))?;
    Ok((size, position))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end: u64, bytes: u64) -> ObjectRange {
        ObjectRange {
            start_offset: start,
            end_offset: end,
            object: ObjectId(start),
            bytes,
            max_timestamp: 0,
        }
    }

    #[test]
    fn groups_take_runs_of_small_contiguous_ranges() {
        let ranges = [
            range(0, 10, 10),
            range(10, 20, 10),
            range(20, 30, 10),
            range(30, 40, 500),
            range(40, 50, 10),
            range(50, 60, 10),
        ];
        let found = groups(&ranges, 100, 2);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].len(), 3);
        assert_eq!(found[1].len(), 2);
        assert!(
            groups(&ranges, 100, 4).is_empty(),
            "runs shorter than the minimum stay"
        );
        let many: Vec<_> = (0..10).map(|i| range(i * 10, i * 10 + 10, 30)).collect();
        let capped = groups(&many, 100, 2);
        assert!(
            capped
                .iter()
                .all(|g| g.iter().map(|r| r.bytes).sum::<u64>() <= 100)
        );
    }
}
