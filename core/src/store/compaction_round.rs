//! Compacting every open stream together, as the background round does.
//!
//! Compacting one stream takes its ranges out of the stream-set records it shares
//! with the others, so compacted one after another, 64 streams sharing objects
//! rewrote each such record 64 times (45 MiB of metadata log for 7.65 GiB in the
//! store benchmark). A wave takes the next group of every stream, copies each into
//! a stream object, and commits them all in one transaction: each record shared by
//! the wave is rewritten once. A stream's maintenance lock is held for its wave,
//! from reading its ranges to the commit (a trim of it waits that long).

use std::collections::HashSet;
use std::sync::Arc;

use super::compaction::{CompactionReport, commit_rewrites, groups, write_stream_object};
use super::metadata::ObjectRange;
use super::{Inner, OpenStream, StoreError, StreamStore, upload};

/// Stream objects a wave writes at once.
const CONCURRENT_COPIES: usize = 4;

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
) -> Result<(CompactionReport, HashSet<super::StreamId>), StoreError> {
    let mut held = Vec::with_capacity(streams.len());
    let mut planned: Vec<(&OpenStream, Vec<ObjectRange>)> = Vec::new();
    for open in streams {
        let Some(exclusive) = open.maintenance().await else {
            continue;
        };
        let ranges: Vec<ObjectRange> = open.lock_state().ranges.values().copied().collect();
        let next = groups(
            &ranges,
            inner.config.stream_object_bytes,
            inner.config.compaction_min_ranges,
        )
        .first()
        .map(|group| group.to_vec());
        if let Some(group) = next {
            planned.push((&**open, group));
            held.push(exclusive);
        }
    }
    // A few copies at once: each is a GET and a write at a time, latency-bound on a
    // remote store, and holds at most two copy chunks.
    let mut written = Vec::with_capacity(planned.len());
    let mut failed = None;
    for batch in planned.chunks(CONCURRENT_COPIES) {
        let mut copies = Vec::with_capacity(batch.len());
        for (open, group) in batch {
            copies.push(write_stream_object(inner, open.id, group));
        }
        for copy in futures::future::join_all(copies).await {
            match copy {
                Ok(object) => written.push(object),
                Err(err) => failed = failed.or(Some(err)),
            }
        }
        if failed.is_some() {
            break;
        }
    }
    if let Some(err) = failed {
        for object in &written {
            upload::discard_object(inner, object.id).await?;
        }
        return Err(err);
    }
    let rewritten = written
        .iter()
        .zip(&planned)
        .map(|(object, (open, group))| object.rewritten(open, group))
        .collect();
    let ids: HashSet<_> = commit_rewrites(inner, rewritten)
        .await?
        .into_iter()
        .collect();
    drop(held);
    let mut report = CompactionReport::default();
    let mut compacted = HashSet::new();
    for (object, (open, group)) in written.iter().zip(&planned) {
        if ids.contains(&object.id) {
            report.ranges_merged += group.len();
            report.objects_written += 1;
            report.bytes += object.copied_bytes;
            compacted.insert(open.id);
        }
    }
    Ok((report, compacted))
}
