//! Turns the log cache's acknowledged data into stream-set objects.
//!
//! One upload: take every pending batch, build one object (blocks of at most
//! `block_bytes` per stream), record the object as prepared, PUT it, then in one
//! metadata transaction — conditional on every included stream's epoch — add the
//! streams' ranges and mark the object committed. Only then is the cache told the
//! data is uploaded and the WAL trimmed. A crash before the commit leaves a prepared
//! object, which the next open deletes; the data is still in the WAL.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opendal::ErrorKind;
use strata_backends::Flush;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::cache::PendingStream;
use super::commit::{self, Committed};
use super::metadata::{self, ObjectRange, ObjectRecord, ObjectState};
use super::{Inner, OpenStream, StoreError};
use crate::batch::RecordBatch;
use crate::object::{BlockMeta, EncodedObject, ObjectBuilder, ObjectId, ObjectKind, object_key};

/// The uploader task: uploads when asked (enough data) or every `interval`, until
/// the store is dropped or closes (closing uploads what is left itself).
pub(super) async fn run(
    store: Weak<Inner>,
    wanted: Arc<Notify>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let wait = if failures > 0 {
            Duration::from_millis(100 * 2u64.pow(failures.min(6)))
        } else {
            interval
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = wanted.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let Some(inner) = store.upgrade() else { return };
        if inner.lock_cache().unuploaded_bytes() == 0 {
            continue;
        }
        match upload(&inner).await {
            Ok(_) => {
                failures = 0;
                // Behind: go again at once rather than after the interval.
                if inner.lock_cache().unuploaded_bytes() >= inner.config.upload_bytes {
                    wanted.notify_one();
                }
            }
            Err(err) => {
                failures += 1;
                metrics::counter!("strata_upload_failures_total").increment(1);
                tracing::warn!(
                    error = %err,
                    attempt = failures,
                    "upload failed; the data stays in the WAL and will be retried"
                );
            }
        }
    }
}

/// Uploads until nothing acknowledged is left out of objects (shutdown, tests, open).
pub(super) async fn upload_all(inner: &Inner) -> Result<(), StoreError> {
    while upload(inner).await? {}
    Ok(())
}

/// Uploads one bounded round; `Ok(false)` when there was nothing to upload.
pub(super) async fn upload(inner: &Inner) -> Result<bool, StoreError> {
    let _one_at_a_time = inner.upload_lock.lock().await;
    // A bounded share per round, so the WAL is trimmed as rounds land; what is left
    // goes in the next round. Two objects' worth: rounds of four (objects are not
    // copied, so memory would allow it) made SeaweedFS's PUTs twice as slow here and
    // ingest no faster.
    let pending = take_pending(inner, inner.config.upload_bytes.saturating_mul(2));
    if pending.is_empty() {
        return Ok(false);
    }
    // What waits still includes what was just taken: it leaves the count on commit.
    let flush = upload_flush(inner);
    if flush == Flush::Once {
        metrics::counter!("strata_upload_rounds_behind_total").increment(1);
    }
    let committed = write_stream_set(
        inner,
        pending,
        Grouping::About(inner.config.upload_bytes),
        flush,
    )
    .await?;
    {
        let mut cache = inner.lock_cache();
        for (open, range) in &committed.ranges {
            cache.mark_uploaded(open.id, range.end_offset);
        }
        // Never to be committed by this store: kept, they would hold the WAL's trim
        // point and come back in every round.
        for open in &committed.fenced {
            cache.forget_unuploaded(open.id);
        }
    }
    loop {
        let eviction = inner.lock_cache().evict(EVICT_PER_LOCK);
        drop(eviction.dropped);
        if !eviction.more {
            break;
        }
        tokio::task::yield_now().await;
    }
    let trim_point = inner.lock_cache().wal_trim_point();
    if let super::Wal::Local(wal) = &inner.wal {
        wal.trim(trim_point).await?;
    }
    inner.uploaded.notify_waiters();
    Ok(true)
}

/// How this round's objects are flushed to a local directory. Paced writes keep the
/// WAL's syncs on the same disk short but cost one `fsync` per piece, which caps the
/// upload (about 200 MiB/s on the project's VM against 500 in one flush). The
/// uploader is behind the WAL once more waits than this round can take (two
/// `upload_bytes`) and at least a quarter of `max_unuploaded_bytes`: appends will
/// soon wait for it, so it writes as fast as it can and a WAL sync may wait behind an
/// object's flush. At a rate the paced writes keep up with, nothing waits.
pub(super) fn upload_flush(inner: &Inner) -> Flush {
    let config = &inner.config;
    let behind_at = (config.max_unuploaded_bytes / 4).max(config.upload_bytes.saturating_mul(2));
    if inner.lock_cache().unuploaded_bytes() >= behind_at {
        Flush::Once
    } else {
        Flush::Paced
    }
}

/// Batches evicted per hold of the cache lock after an upload. Every append takes
/// that lock; evicting a whole upload's worth (thousands of batches) at once held it
/// for milliseconds.
const EVICT_PER_LOCK: usize = 256;

/// About `max_bytes` of acknowledged, not yet uploaded batches, streams holding the
/// oldest WAL records first, each contributing a prefix of its batches. The cache
/// lock is taken once per stream rather than once for all: appends wait only for
/// one stream's copying.
fn take_pending(inner: &Inner, max_bytes: usize) -> Vec<PendingStream> {
    let order = inner.lock_cache().upload_order();
    let mut budget = max_bytes.max(1);
    let mut pending = Vec::with_capacity(order.len());
    for stream in order {
        if budget == 0 {
            break;
        }
        if let Some(taken) = inner.lock_cache().pending(stream, budget) {
            budget = budget.saturating_sub(pending_bytes(&taken));
            pending.push(taken);
        }
    }
    pending.sort_by_key(|p| p.stream);
    pending
}

/// How the streams of one upload that are too small for stream objects of their own
/// are laid out in stream-set objects.
#[derive(Debug, Clone, Copy)]
pub(super) enum Grouping {
    /// All in one object: the object WAL writes one object per window.
    Single,
    /// Objects of about this many bytes, written concurrently: one PUT at a time
    /// leaves a remote store's (or a disk's) parallelism unused.
    About(usize),
}

/// Writes `pending` as objects and commits them ([`write_objects`], then
/// [`commit::commit`]).
pub(super) async fn write_stream_set(
    inner: &Inner,
    pending: Vec<PendingStream>,
    grouping: Grouping,
    flush: Flush,
) -> Result<Committed, StoreError> {
    let written = write_objects(inner, pending, grouping, flush).await?;
    commit::commit(inner, vec![written]).await
}

/// Objects written but not yet committed: nothing references them until
/// [`commit::commit`]; [`discard_objects`] removes them instead.
pub(super) struct WrittenSet {
    pub(super) objects: Vec<Written>,
    pub(super) started: Instant,
}

/// Writes `pending` as objects: streams with at least `stream_split_bytes` pending
/// get a stream object of their own, the rest share stream-set objects laid out by
/// `grouping`. The objects are written concurrently, each with its id allocated (and
/// its prepared record stored) before its PUT, and flushed to a local directory as
/// `flush` says. If any PUT fails, the others are discarded (best effort; what
/// remains is removed at the next open or by garbage collection).
pub(super) async fn write_objects(
    inner: &Inner,
    pending: Vec<PendingStream>,
    grouping: Grouping,
    flush: Flush,
) -> Result<WrittenSet, StoreError> {
    let started = Instant::now();
    let split = inner.config.stream_split_bytes;
    let (large, small): (Vec<_>, Vec<_>) =
        pending.into_iter().partition(|p| pending_bytes(p) >= split);
    let mut layouts: Vec<(ObjectKind, Vec<PendingStream>)> = large
        .into_iter()
        .map(|p| (ObjectKind::Stream, vec![p]))
        .collect();
    let groups = match grouping {
        Grouping::Single => vec![small],
        Grouping::About(bytes) => group_by_size(small, bytes),
    };
    layouts.extend(
        groups
            .into_iter()
            .filter(|group| !group.is_empty())
            .map(|group| (ObjectKind::StreamSet, group)),
    );

    let results = futures::future::join_all(
        layouts
            .into_iter()
            .map(|(kind, streams)| write_object(inner, kind, streams, flush)),
    )
    .await;
    let mut written: Vec<Written> = Vec::with_capacity(results.len());
    let mut failed = None;
    for result in results {
        match result {
            Ok(object) => written.push(object),
            Err(err) => failed = failed.or(Some(err)),
        }
    }
    if let Some(err) = failed {
        discard_all(inner, &written).await;
        return Err(err);
    }
    Ok(WrittenSet {
        objects: written,
        started,
    })
}

/// Discards objects that will not be committed (best effort, like a failed write).
pub(super) async fn discard_objects(inner: &Inner, set: WrittenSet) {
    discard_all(inner, &set.objects).await;
}

/// An object PUT but not yet committed.
pub(super) struct Written {
    pub(super) id: ObjectId,
    pub(super) record: ObjectRecord,
    pub(super) ranges: Vec<(Arc<OpenStream>, ObjectRange)>,
}

fn pending_bytes(stream: &PendingStream) -> usize {
    stream.batches.iter().map(RecordBatch::len).sum()
}

/// Splits `streams` (kept in order) into groups of about `target` bytes: as many
/// groups as whole targets fit in the total, at least one, of even size. Objects
/// stay at least `target` large on average, so PUTs per GiB do not grow.
fn group_by_size(streams: Vec<PendingStream>, target: usize) -> Vec<Vec<PendingStream>> {
    let total: usize = streams.iter().map(pending_bytes).sum();
    let count = (total / target.max(1)).max(1);
    let share = total.div_ceil(count);
    let mut groups: Vec<Vec<PendingStream>> = Vec::with_capacity(count);
    let mut current = Vec::new();
    let mut current_bytes = 0;
    for stream in streams {
        current_bytes += pending_bytes(&stream);
        current.push(stream);
        if current_bytes >= share && groups.len() + 1 < count {
            groups.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
    }
    groups.push(current);
    groups
}

async fn write_object(
    inner: &Inner,
    kind: ObjectKind,
    streams: Vec<PendingStream>,
    flush: Flush,
) -> Result<Written, StoreError> {
    let mut ranges = Vec::with_capacity(streams.len());
    for stream in &streams {
        let open = inner
            .open_stream_state(stream.stream)
            .ok_or(StoreError::StreamNotOpen(stream.stream))?;
        let whole = block_meta(stream.stream.0, &stream.batches);
        let range = ObjectRange {
            start_offset: whole.start_offset,
            end_offset: whole.end_offset,
            object: ObjectId(0),
            bytes: pending_bytes(stream) as u64,
            max_timestamp: whole.max_timestamp,
        };
        ranges.push((open, range));
    }
    // Checksumming tens of MiB is CPU work: keep it off the async
    // workers, where it would delay the acknowledgements of appends. With the local
    // WAL the appends are already acknowledged, so the build also yields the CPU to
    // them; with the object WAL the build is on the acknowledgement path itself.
    let local_wal = matches!(inner.wal, super::Wal::Local(_));
    let block_bytes = inner.config.block_bytes;
    let build = move || build_object(&streams, block_bytes, kind);
    let object = if local_wal {
        inner.background.run(build).await??
    } else {
        tokio::task::spawn_blocking(build)
            .await
            .map_err(|err| StoreError::Task(err.to_string()))??
    };
    let (id, record) = inner.new_object(kind, object.len()).await?;
    let key = object_key(id);
    let object = opendal::Buffer::from(object.into_parts());
    if let Err(err) = inner.storage.write_whole(&key, object, flush).await {
        let written = Written {
            id,
            record,
            ranges: Vec::new(),
        };
        discard_all(inner, std::slice::from_ref(&written)).await;
        return Err(StoreError::storage("write", &key)(err));
    }
    Ok(Written { id, record, ranges })
}

/// Best-effort removal of objects that will not be committed.
pub(super) async fn discard_all(inner: &Inner, written: &[Written]) {
    for object in written {
        if let Err(err) = discard_object(inner, object.id).await {
            tracing::warn!(object = %object.id, error = %err, "cannot discard an uncommitted object; the next open or GC removes it");
        }
    }
}

/// Lays out one object from the pending batches.
fn build_object(
    pending: &[PendingStream],
    block_bytes: usize,
    kind: ObjectKind,
) -> Result<EncodedObject, StoreError> {
    let laid_out: Vec<(&PendingStream, Vec<&[RecordBatch]>)> = pending
        .iter()
        .map(|stream| (stream, blocks(&stream.batches, block_bytes)))
        .collect();
    let mut builder = ObjectBuilder::with_capacity(
        kind,
        pending.iter().map(|p| p.batches.len()).sum(),
        laid_out.iter().map(|(_, blocks)| blocks.len()).sum(),
    );
    for (stream, blocks) in laid_out {
        for block in blocks {
            let parts: Vec<Bytes> = block.iter().map(|b| b.bytes().clone()).collect();
            builder
                .add_block(block_meta(stream.stream.0, block), &parts)
                .map_err(|source| StoreError::Format {
                    key: "(being built)".to_string(),
                    source,
                })?;
        }
    }
    Ok(builder.finish().0)
}

/// What a run of consecutive batches of one stream holds.
fn block_meta(stream_id: u64, batches: &[RecordBatch]) -> BlockMeta {
    BlockMeta {
        stream_id,
        start_offset: batches.first().map_or(0, RecordBatch::base_offset),
        end_offset: batches.last().map_or(0, RecordBatch::end_offset),
        record_count: batches.iter().map(RecordBatch::record_count).sum(),
        max_timestamp: batches
            .iter()
            .map(RecordBatch::max_timestamp)
            .max()
            .unwrap_or(i64::MIN),
    }
}

/// Consecutive batches grouped into blocks of at most `block_bytes` (a batch larger
/// than that is a block of its own).
fn blocks(batches: &[RecordBatch], block_bytes: usize) -> Vec<&[RecordBatch]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, batch) in batches.iter().enumerate() {
        if i > start && bytes + batch.len() > block_bytes {
            out.push(&batches[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += batch.len();
    }
    if start < batches.len() {
        out.push(&batches[start..]);
    }
    out
}

/// Deletes an object and then its record; either step may already be done.
pub(super) async fn discard_object(inner: &Inner, id: ObjectId) -> Result<(), StoreError> {
    let key = object_key(id);
    match inner.storage.operator().delete(&key).await {
        Ok(()) => {}
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(StoreError::storage("delete", &key)(err)),
    }
    inner.meta.delete(metadata::object_key(id)).await?;
    Ok(())
}

/// Deletes objects recorded as prepared: a crash came between their PUT and their
/// commit, so nothing references them (their data is still in the WAL).
pub(super) async fn remove_uncommitted_objects(inner: &Inner) -> Result<(), StoreError> {
    let mut removed = 0;
    for kv in inner.meta.scan_prefix(metadata::OBJECTS_PREFIX, 0).await? {
        if ObjectRecord::parse(&kv)?.state != ObjectState::Prepared {
            continue;
        }
        discard_object(inner, metadata::parse_object_key(&kv.key)?).await?;
        removed += 1;
    }
    if removed > 0 {
        tracing::info!(
            objects = removed,
            "removed objects a crash left uncommitted"
        );
        metrics::counter!("strata_orphan_objects_removed_total").increment(removed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::synthetic_batch;
    use crate::store::metadata::StreamId;

    #[test]
    fn blocks_respect_the_size_limit_and_keep_order() {
        let batches: Vec<RecordBatch> = (0..10)
            .map(|i| synthetic_batch(1, 39, 0).with_base_offset(i))
            .collect();
        let grouped = blocks(&batches, 250);
        assert!(
            grouped
                .iter()
                .all(|b| b.iter().map(RecordBatch::len).sum::<usize>() <= 250)
        );
        let flat: Vec<u64> = grouped
            .iter()
            .flat_map(|b| b.iter().map(RecordBatch::base_offset))
            .collect();
        assert_eq!(flat, (0..10).collect::<Vec<_>>());
        let huge = [synthetic_batch(1, 1000, 0)];
        assert_eq!(blocks(&huge, 10).len(), 1);
    }

    #[test]
    fn small_streams_group_into_objects_of_about_the_target_size() {
        let batch_len = synthetic_batch(1, 1000, 0).len();
        let streams = |count: u64| -> Vec<PendingStream> {
            (0..count)
                .map(|i| PendingStream {
                    stream: StreamId(i),
                    batches: vec![synthetic_batch(1, 1000, 0)],
                })
                .collect()
        };
        let sizes =
            |groups: &[Vec<PendingStream>]| -> Vec<usize> { groups.iter().map(Vec::len).collect() };
        // 64 streams, target 16 of them: four even objects.
        assert_eq!(
            sizes(&group_by_size(streams(64), 16 * batch_len)),
            vec![16; 4]
        );
        // Less than two targets' worth stays one object: none falls below target.
        assert_eq!(sizes(&group_by_size(streams(31), 16 * batch_len)), vec![31]);
        assert_eq!(sizes(&group_by_size(streams(3), 16 * batch_len)), vec![3]);
        // Uneven totals spread the remainder rather than leaving a small last object.
        assert_eq!(
            sizes(&group_by_size(streams(40), 16 * batch_len)),
            vec![20, 20]
        );
        let order: Vec<u64> = group_by_size(streams(40), 16 * batch_len)
            .iter()
            .flatten()
            .map(|p| p.stream.0)
            .collect();
        assert_eq!(order, (0..40).collect::<Vec<_>>());
    }
}
