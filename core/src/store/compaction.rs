//! Compaction: a stream's small ranges, scattered over stream-set objects, are
//! rewritten into one stream object each run, so cold reads of a stream touch few
//! objects and stream-set objects become garbage once every stream has moved out.
//!
//! The copies themselves, a batch of streams at a time with bounded memory, are in
//! `compaction_copy`. The commit takes the old ranges out of their objects' records
//! and writes the new object's, in a transaction that compares the stream's epoch and
//! each record's revision: a record another stream rewrote meanwhile is read again,
//! while a concurrent retention of this stream or a new owner makes it fail cleanly
//! (the object is then discarded).

use super::metadata::{self, ObjectRange, ObjectRecord, StreamId};
use super::object_ranges;
use super::{Inner, OpenStream, StoreError, StreamStore, upload};
use crate::meta::{Compare, Op, Txn};
use crate::object::ObjectId;

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
