//! Merging small stream-set objects into larger ones.
//!
//! The object WAL writes one stream-set object per window (a few MiB shared by every
//! stream), and so does an upload that runs on a timer rather than on size. Reading
//! one stream back then costs one small GET per object, and compacting it into a
//! stream object costs the same. A merge reads a run of small stream-set objects
//! whole (one GET each) and writes them as one object in which each stream's blocks
//! are contiguous, so later reads and per-stream compaction fetch each stream's part
//! with one GET.
//!
//! Memory is bounded by the merged object's size: the sources are held while it is
//! written, and its blocks are slices of theirs. The object is read and written
//! without the streams' maintenance locks; they are taken for the commit, which
//! goes ahead only if every stream still holds the ranges it was planned from (a
//! trim, compaction or close meanwhile discards the merged object instead of
//! waiting for it). The commit compares every stream's epoch and every source's
//! record, read again while only other streams' edits changed them, so a new owner
//! makes it fail cleanly too. The sources become unreferenced and garbage
//! collection deletes them after the grace period.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use strata_backends::Flush;

use super::compaction::{RangeSwap, Rewritten, commit_rewrites};
use super::metadata::{ObjectRange, ObjectRecord, ObjectState, StreamId};
use super::object_ranges;
use super::{Inner, OpenStream, StoreError, StreamStore, read, upload};
use crate::object::{BlockEntry, BlockMeta, EncodedObject, ObjectBuilder, ObjectId, ObjectKind};

/// What one merge pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Small stream-set objects replaced.
    pub objects_merged: usize,
    /// Stream-set objects written.
    pub objects_written: usize,
    /// Block bytes copied.
    pub bytes: u64,
}

impl StreamStore {
    /// Merges runs of small stream-set objects whose streams are all open here.
    pub async fn merge_stream_sets(&self) -> Result<MergeReport, StoreError> {
        merge_stream_sets(&self.inner).await
    }
}

/// A small stream-set object and the ranges that reference it.
struct Source {
    object: ObjectId,
    data_bytes: u64,
    ranges: Vec<(StreamId, ObjectRange)>,
}

pub(super) async fn merge_stream_sets(inner: &Inner) -> Result<MergeReport, StoreError> {
    // Planned once the merge or compaction before it has committed.
    let _job = inner.rewrite_job.lock().await;
    let sources = small_stream_sets(inner, inner.config.merge_below_bytes).await?;
    let mut report = MergeReport::default();
    for group in runs(&sources, inner.config.stream_set_merge_bytes) {
        // A closing store waits for the merge in progress, not for all of them.
        if inner.tasks.is_stopping() {
            break;
        }
        if let Some(bytes) = merge(inner, group).await? {
            report.objects_merged += group.len();
            report.objects_written += 1;
            report.bytes += bytes;
        }
    }
    if report.objects_written > 0 {
        metrics::counter!("strata_compaction_merged_objects_total")
            .increment(report.objects_merged as u64);
        metrics::counter!("strata_compaction_read_bytes_total").increment(report.bytes);
    }
    Ok(report)
}

/// Committed stream-set objects holding under `below` bytes of blocks, referenced
/// only by streams open on this store, oldest first.
async fn small_stream_sets(inner: &Inner, below: u64) -> Result<Vec<Source>, StoreError> {
    Ok(object_ranges::objects(inner.meta.as_ref())
        .await?
        .into_iter()
        .filter(|entry| {
            entry.record.kind == ObjectKind::StreamSet
                && entry.record.state == ObjectState::Committed
                && entry.is_referenced()
        })
        .map(|entry| Source {
            object: entry.id,
            data_bytes: entry.ranges.iter().map(|(_, r)| r.bytes).sum(),
            ranges: entry.ranges,
        })
        .filter(|source| {
            source.data_bytes < below
                && source
                    .ranges
                    .iter()
                    .all(|(stream, _)| inner.open_stream_state(*stream).is_some())
        })
        .collect())
}

/// Consecutive sources of at most `target` bytes in all, at least two.
fn runs(sources: &[Source], target: u64) -> Vec<&[Source]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, source) in sources.iter().enumerate() {
        if bytes + source.data_bytes > target && i > start {
            if i - start >= 2 {
                out.push(&sources[start..i]);
            }
            start = i;
            bytes = 0;
        }
        bytes += source.data_bytes;
    }
    if sources.len() - start >= 2 {
        out.push(&sources[start..]);
    }
    out
}

/// Writes `group` as one object and moves the ranges into its record. `None` when a stream
/// changed meanwhile (the merged object is discarded).
async fn merge(inner: &Inner, group: &[Source]) -> Result<Option<u64>, StoreError> {
    let mut per_stream: BTreeMap<StreamId, Vec<ObjectRange>> = BTreeMap::new();
    for source in group {
        for (stream, range) in &source.ranges {
            per_stream.entry(*stream).or_default().push(*range);
        }
    }
    let mut opens: Vec<Arc<OpenStream>> = Vec::with_capacity(per_stream.len());
    for stream in per_stream.keys() {
        match inner.open_stream_state(*stream) {
            Some(open) => opens.push(open),
            None => return Ok(None),
        }
    }
    // Planned from the ranges as they are now and written without the streams'
    // maintenance locks, which are taken for the commit only (a trim of any of
    // these streams would otherwise wait for the whole copy).
    if !holds_all(&opens, &per_stream) {
        // Retention or compaction moved a stream on since the scan.
        return Ok(None);
    }
    for ranges in per_stream.values_mut() {
        ranges.sort_by_key(|r| r.start_offset);
    }

    // The sources at once: each is one GET, and together they are bounded by the
    // merged object's size.
    let read = futures::future::try_join_all(group.iter().map(|source| async move {
        let index = read::load_index(inner, source.object).await?;
        let data = read_blocks(inner, source.object, index.entries()).await?;
        Ok::<_, StoreError>((source.object, (index, data)))
    }))
    .await?;
    let blocks: HashMap<ObjectId, (Arc<crate::object::Index>, HashMap<u64, Bytes>)> =
        read.into_iter().collect();
    let mut layout: Vec<(BlockMeta, Bytes)> = Vec::new();
    for (stream, ranges) in &per_stream {
        for range in ranges {
            let (index, data) = blocks.get(&range.object).ok_or_else(|| {
                StoreError::Task(format!("merge: object {} was not read", range.object))
            })?;
            let mut next = range.start_offset;
            for entry in index.blocks_of(stream.0).iter().filter(|e| {
                e.start_offset >= range.start_offset && e.end_offset <= range.end_offset
            }) {
                if entry.start_offset != next {
                    break;
                }
                next = entry.end_offset;
                let block = data.get(&entry.position).ok_or_else(|| {
                    StoreError::Task(format!(
                        "merge: object {} has no block at {}",
                        range.object, entry.position
                    ))
                })?;
                layout.push((block_meta(entry), block.clone()));
            }
            // The merged object must hold every offset its new range will claim.
            if next != range.end_offset {
                return Err(StoreError::Task(format!(
                    "merge: object {} holds offsets {}..{next} of stream {} where its range says {}..{}",
                    range.object,
                    range.start_offset,
                    stream.0,
                    range.start_offset,
                    range.end_offset
                )));
            }
        }
    }
    drop(blocks);
    let copied: u64 = layout.iter().map(|(_, b)| b.len() as u64).sum();
    let object = inner.background.run(move || build(layout)).await??;

    let (id, prepared) = inner.new_object(ObjectKind::StreamSet, 0).await?;
    let key = crate::object::object_key(id);
    let size = object.len();
    let written = inner
        .storage
        .write_whole(
            &key,
            opendal::Buffer::from(object.into_parts()),
            Flush::Paced,
        )
        .await;
    if let Err(err) = written {
        upload::discard_object(inner, id).await?;
        return Err(StoreError::storage("write", &key)(err));
    }
    metrics::counter!("strata_compaction_written_bytes_total").increment(size);

    // In stream order, as every holder of several of these locks takes them.
    let mut exclusive = Vec::with_capacity(opens.len());
    for open in &opens {
        match open.maintenance().await {
            Some(guard) => exclusive.push(guard),
            None => break,
        }
    }
    if exclusive.len() < opens.len() || !holds_all(&opens, &per_stream) {
        // A stream was trimmed, compacted or closed while the object was written.
        drop(exclusive);
        upload::discard_object(inner, id).await?;
        count_discarded();
        return Ok(None);
    }
    let swaps: Vec<RangeSwap<'_>> = opens
        .iter()
        .zip(per_stream.values())
        .map(|(open, old)| RangeSwap {
            open,
            old,
            new: coalesce(old, id),
        })
        .collect();
    let committed = ObjectRecord {
        state: ObjectState::Committed,
        size,
        ..prepared
    };
    let streams = swaps.len();
    let rewritten = Rewritten {
        id,
        committed,
        swaps,
    };
    if commit_rewrites(inner, vec![rewritten]).await?.is_empty() {
        count_discarded();
        return Ok(None);
    }
    drop(exclusive);
    tracing::debug!(object = %id, sources = group.len(), streams, bytes = copied, "merged small stream-set objects");
    Ok(Some(copied))
}

fn count_discarded() {
    metrics::counter!("strata_compaction_discarded_objects_total", "job" => "merge").increment(1);
}

/// Whether each of `opens` still holds its ranges in `per_stream` (in the same order).
fn holds_all(opens: &[Arc<OpenStream>], per_stream: &BTreeMap<StreamId, Vec<ObjectRange>>) -> bool {
    opens
        .iter()
        .zip(per_stream.values())
        .all(|(open, ranges)| open.holds_ranges(ranges))
}

/// The blocks of `object` (everything before its index) read in one GET, each
/// verified against its checksum, by position.
async fn read_blocks(
    inner: &Inner,
    object: ObjectId,
    entries: &[BlockEntry],
) -> Result<HashMap<u64, Bytes>, StoreError> {
    let end = entries
        .iter()
        .map(|e| e.position + u64::from(e.len))
        .max()
        .unwrap_or(0);
    let key = crate::object::object_key(object);
    let data = read::get_range(inner, &key, 0..end).await?;
    entries
        .iter()
        .map(|entry| Ok((entry.position, read::block_of(&data, entry, 0, &key)?)))
        .collect()
}

fn block_meta(entry: &BlockEntry) -> BlockMeta {
    BlockMeta {
        stream_id: entry.stream_id,
        start_offset: entry.start_offset,
        end_offset: entry.end_offset,
        record_count: entry.record_count,
        max_timestamp: entry.max_timestamp,
    }
}

fn build(layout: Vec<(BlockMeta, Bytes)>) -> Result<EncodedObject, StoreError> {
    let mut builder =
        ObjectBuilder::with_capacity(ObjectKind::StreamSet, layout.len(), layout.len());
    for (meta, block) in layout {
        builder
            .add_block(meta, std::slice::from_ref(&block))
            .map_err(|source| StoreError::Format {
                key: "(being merged)".to_string(),
                source,
            })?;
    }
    Ok(builder.finish().0)
}

/// `ranges` (sorted, of one stream) now in `object`: runs that follow each other
/// become one range.
fn coalesce(ranges: &[ObjectRange], object: ObjectId) -> Vec<ObjectRange> {
    let mut out: Vec<ObjectRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match out.last_mut() {
            Some(last) if last.end_offset == range.start_offset => {
                last.end_offset = range.end_offset;
                last.bytes += range.bytes;
                last.max_timestamp = last.max_timestamp.max(range.max_timestamp);
            }
            _ => out.push(ObjectRange { object, ..*range }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end: u64, bytes: u64, max_timestamp: i64) -> ObjectRange {
        ObjectRange {
            start_offset: start,
            end_offset: end,
            object: ObjectId(start + 100),
            bytes,
            max_timestamp,
        }
    }

    #[test]
    fn ranges_that_follow_each_other_become_one() {
        let merged = coalesce(
            &[range(0, 10, 5, 7), range(10, 20, 6, 3), range(30, 40, 7, 9)],
            ObjectId(9),
        );
        assert_eq!(
            merged,
            vec![
                ObjectRange {
                    start_offset: 0,
                    end_offset: 20,
                    object: ObjectId(9),
                    bytes: 11,
                    max_timestamp: 7,
                },
                ObjectRange {
                    start_offset: 30,
                    end_offset: 40,
                    object: ObjectId(9),
                    bytes: 7,
                    max_timestamp: 9,
                },
            ]
        );
    }

    #[test]
    fn runs_stay_within_the_target_and_hold_two_sources_or_more() {
        let sources: Vec<Source> = [4u64, 4, 4, 9, 2, 1]
            .iter()
            .enumerate()
            .map(|(i, bytes)| Source {
                object: ObjectId(i as u64),
                data_bytes: *bytes,
                ranges: Vec::new(),
            })
            .collect();
        let found: Vec<Vec<u64>> = runs(&sources, 10)
            .iter()
            .map(|run| run.iter().map(|s| s.object.0).collect())
            .collect();
        assert_eq!(found, vec![vec![0, 1], vec![4, 5]]);
    }
}
