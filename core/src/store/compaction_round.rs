//! Compacting every open stream together, as the background round does.
//!
//! Compacting one stream takes its ranges out of the stream-set records it shares
//! with the others, so compacted one after another, 64 streams sharing objects
//! rewrote each such record 64 times (45 MiB of metadata log for 7.65 GiB in the
//! store benchmark). A wave takes the next group of every stream, copies each into
//! a stream object, and commits them all in one transaction: each record shared by
//! the wave is rewritten once. The copies run without the streams' maintenance
//! locks (a wave copies up to one stream object per stream, seconds of work that a
//! trim or a Kafka DeleteRecords would otherwise wait out); the locks are taken
//! for the commit, and a stream whose ranges changed meanwhile has its copy
//! discarded while the others commit.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::MutexGuard;

use super::compaction::{CompactionReport, WrittenGroup, commit_rewrites, groups};
use super::compaction_copy::{Planned, STREAMS_PER_BATCH, write_stream_objects};
use super::metadata::{ObjectRange, StreamId};
use super::{Inner, OpenStream, StoreError, StreamStore, upload};

impl StreamStore {
    /// Compacts every open stream, a wave at a time, as the background round does.
    pub async fn compact_all(&self) -> Result<CompactionReport, StoreError> {
        compact_open_streams(&self.inner).await
    }
}

pub(super) async fn compact_open_streams(inner: &Inner) -> Result<CompactionReport, StoreError> {
    let streams: Vec<Arc<OpenStream>> = inner.lock_streams().values().cloned().collect();
    compact_streams(inner, streams).await
}

/// Compacts `streams` in waves until none has a group left (or its commit failed).
pub(super) async fn compact_streams(
    inner: &Inner,
    mut streams: Vec<Arc<OpenStream>>,
) -> Result<CompactionReport, StoreError> {
    let _job = inner.rewrite_job.lock().await;
    // The order every holder of several maintenance locks takes them in.
    streams.sort_unstable_by_key(|open| open.id);
    let mut report = CompactionReport::default();
    let mut compacted = HashSet::new();
    while !streams.is_empty() && !inner.tasks.is_stopping() {
        let (wave, committed) = compact_wave(inner, &streams).await?;
        report.ranges_merged += wave.ranges_merged;
        report.objects_written += wave.objects_written;
        report.bytes += wave.bytes;
        // Streams with nothing left to compact, or whose commit failed, are done
        // for this round.
        streams.retain(|open| committed.contains(&open.id));
        compacted.extend(committed);
    }
    if report.objects_written > 0 {
        // One run per stream compacted.
        metrics::counter!("strata_compaction_runs_total").increment(compacted.len() as u64);
        metrics::counter!("strata_compaction_read_bytes_total").increment(report.bytes);
    }
    Ok(report)
}

/// One wave: the next group of each of `streams`, committed together. Returns what
/// it did and the streams it compacted.
async fn compact_wave(
    inner: &Inner,
    streams: &[Arc<OpenStream>],
) -> Result<(CompactionReport, HashSet<StreamId>), StoreError> {
    let planned: Vec<(&OpenStream, Vec<ObjectRange>)> = streams
        .iter()
        .filter_map(|open| next_group(inner, open).map(|group| (&**open, group)))
        .collect();
    let written = write_all(inner, &planned).await?;
    let written_count = written.len();
    let (held, current) = still_current(inner, written).await?;
    let rewritten = current
        .iter()
        .map(|copied| copied.object.rewritten(copied.open, copied.group))
        .collect();
    let ids: HashSet<_> = commit_rewrites(inner, rewritten)
        .await?
        .into_iter()
        .collect();
    drop(held);
    let discarded = written_count - ids.len();
    if discarded > 0 {
        metrics::counter!("strata_compaction_discarded_objects_total", "job" => "compaction")
            .increment(discarded as u64);
    }
    let mut report = CompactionReport::default();
    let mut compacted = HashSet::new();
    for copied in current {
        if ids.contains(&copied.object.id) {
            report.ranges_merged += copied.group.len();
            report.objects_written += 1;
            report.bytes += copied.object.copied_bytes;
            compacted.insert(copied.open.id);
        }
    }
    Ok((report, compacted))
}

/// A stream's group copied into a stream object, not yet committed.
struct Copied<'a> {
    object: WrittenGroup,
    open: &'a OpenStream,
    group: &'a [ObjectRange],
}

/// The first group of `open`'s ranges worth compacting, if any.
fn next_group(inner: &Inner, open: &OpenStream) -> Option<Vec<ObjectRange>> {
    if open.is_closing() {
        return None;
    }
    let ranges: Vec<ObjectRange> = open.lock_state().ranges.values().copied().collect();
    groups(
        &ranges,
        inner.config.stream_object_bytes,
        inner.config.compaction_min_ranges,
    )
    .first()
    .map(|group| group.to_vec())
}

/// Each planned group written into a stream object, [`STREAMS_PER_BATCH`] at a
/// time (their reads shared); on any error every object written is discarded.
async fn write_all<'a>(
    inner: &Inner,
    planned: &'a [(&'a OpenStream, Vec<ObjectRange>)],
) -> Result<Vec<Copied<'a>>, StoreError> {
    // A few copies at once: each holds its writer's parts, the batch its reads
    // (`core/tests/compaction_memory.rs`).
    let mut written = Vec::with_capacity(planned.len());
    for batch in planned.chunks(STREAMS_PER_BATCH) {
        let copies: Vec<Planned<'_>> = batch
            .iter()
            .map(|(open, group)| Planned {
                stream: open.id,
                group,
            })
            .collect();
        match write_stream_objects(inner, &copies).await {
            Ok(objects) => {
                written.extend(
                    objects
                        .into_iter()
                        .zip(batch)
                        .map(|(object, (open, group))| Copied {
                            object,
                            open,
                            group,
                        }),
                );
            }
            Err(err) => {
                for copied in &written {
                    upload::discard_object(inner, copied.object.id).await?;
                }
                return Err(err);
            }
        }
    }
    Ok(written)
}

/// Takes the maintenance lock of each written group's stream (in stream order, as
/// every holder of several takes them) and keeps the groups whose ranges are still
/// the stream's: a trim, merge or close since the plan discards that stream's
/// object, so the others still commit. Returns the locks with the groups kept.
async fn still_current<'a>(
    inner: &Inner,
    written: Vec<Copied<'a>>,
) -> Result<(Vec<MutexGuard<'a, ()>>, Vec<Copied<'a>>), StoreError> {
    let mut held = Vec::with_capacity(written.len());
    let mut current = Vec::with_capacity(written.len());
    for copied in written {
        let exclusive = copied.open.maintenance().await;
        let unchanged = exclusive.is_some() && copied.open.holds_ranges(copied.group);
        match exclusive {
            Some(exclusive) if unchanged => {
                held.push(exclusive);
                current.push(copied);
            }
            _ => {
                tracing::debug!(stream = copied.open.id.0, object = %copied.object.id, "stream changed while its group was copied; discarding the copy");
                upload::discard_object(inner, copied.object.id).await?;
            }
        }
    }
    Ok((held, current))
}
