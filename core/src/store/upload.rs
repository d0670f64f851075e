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
use tokio::sync::Notify;

use super::cache::PendingStream;
use super::metadata::{self, ObjectRange, ObjectRecord, ObjectState};
use super::{Inner, OpenStream, StoreError};
use crate::batch::RecordBatch;
use crate::meta::{Compare, Op, Txn};
use crate::object::{BlockMeta, ObjectBuilder, ObjectId, ObjectKind, object_key};

/// The uploader task: uploads when asked (enough data) or every `upload_interval`.
pub(super) async fn run(store: Weak<Inner>, wanted: Arc<Notify>) {
    let mut failures = 0u32;
    loop {
        let interval = match store.upgrade() {
            Some(inner) => inner.config.upload_interval,
            None => return,
        };
        let wait = if failures > 0 {
            Duration::from_millis(100 * 2u64.pow(failures.min(6)))
        } else {
            interval
        };
        tokio::select! {
            () = wanted.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let Some(inner) = store.upgrade() else { return };
        if inner.lock_cache().unuploaded_bytes() == 0 {
            continue;
        }
        match upload(&inner).await {
            Ok(()) => failures = 0,
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

pub(super) async fn upload(inner: &Inner) -> Result<(), StoreError> {
    let _one_at_a_time = inner.upload_lock.lock().await;
    let pending = inner.lock_cache().pending();
    if pending.is_empty() {
        return Ok(());
    }
    let commits = write_stream_set(inner, pending).await?;
    let trim_point = {
        let mut cache = inner.lock_cache();
        for (open, range) in &commits {
            cache.mark_uploaded(open.id, range.end_offset);
        }
        cache.wal_trim_point()
    };
    if let super::Wal::Local(wal) = &inner.wal {
        wal.trim(trim_point).await?;
    }
    inner.uploaded.notify_waiters();
    Ok(())
}

/// Writes `pending` as one stream-set object and commits it: prepared record, PUT,
/// then one transaction conditional on every stream's epoch that adds the ranges and
/// marks the object committed. The ranges are added to the streams' state; a fenced
/// commit discards the object and fails.
pub(super) async fn write_stream_set(
    inner: &Inner,
    pending: Vec<PendingStream>,
) -> Result<Vec<(Arc<OpenStream>, ObjectRange)>, StoreError> {
    let started = Instant::now();
    let mut commits: Vec<(Arc<OpenStream>, ObjectRange)> = Vec::with_capacity(pending.len());
    for stream in &pending {
        let open = inner
            .open_stream_state(stream.stream)
            .ok_or(StoreError::StreamNotOpen(stream.stream))?;
        let whole = block_meta(stream.stream.0, &stream.batches);
        let range = ObjectRange {
            start_offset: whole.start_offset,
            end_offset: whole.end_offset,
            object: ObjectId(0),
            bytes: stream.batches.iter().map(|b| b.len() as u64).sum(),
            max_timestamp: whole.max_timestamp,
        };
        commits.push((open, range));
    }
    // Copying and checksumming tens of MiB is CPU work: keep it off the async
    // workers, where it would delay the acknowledgements of appends.
    let block_bytes = inner.config.block_bytes;
    let object = tokio::task::spawn_blocking(move || build_object(&pending, block_bytes))
        .await
        .map_err(|err| StoreError::Task(err.to_string()))??;
    let size = object.len() as u64;

    let meta = inner.meta.as_ref();
    let (id, record) = metadata::allocate_object(meta, size).await?;
    let key = object_key(id);
    inner
        .storage
        .operator()
        .write(&key, object)
        .await
        .map_err(StoreError::storage("write", &key))?;

    let mut txn = Txn::new();
    for (open, range) in &mut commits {
        range.object = id;
        txn = txn
            .when(Compare::Value(
                metadata::epoch_key(open.id),
                metadata::u64_value(open.epoch),
            ))
            .and_then(Op::put(
                metadata::range_key(open.id, range.start_offset),
                range.value(),
            ));
    }
    let committed = ObjectRecord {
        state: ObjectState::Committed,
        ..record
    };
    txn = txn.and_then(Op::put(metadata::object_key(id), committed.value()));
    if !meta.txn(txn).await?.succeeded {
        // A newer owner took one of the streams: this object must not be referenced.
        discard_object(inner, id).await?;
        let (open, _) = &commits[0];
        return Err(StoreError::Fenced {
            stream: open.id,
            epoch: open.epoch,
        });
    }
    for (open, range) in &commits {
        open.lock_state().ranges.insert(range.start_offset, *range);
    }
    metrics::counter!("strata_upload_objects_total").increment(1);
    metrics::counter!("strata_upload_bytes_total").increment(size);
    metrics::histogram!("strata_upload_duration_seconds").record(started.elapsed().as_secs_f64());
    tracing::debug!(object = %id, bytes = size, streams = commits.len(), "wrote stream-set object");
    Ok(commits)
}

/// Lays out one stream-set object from the pending batches.
fn build_object(pending: &[PendingStream], block_bytes: usize) -> Result<Bytes, StoreError> {
    let mut builder = ObjectBuilder::new(ObjectKind::StreamSet);
    for stream in pending {
        for block in blocks(&stream.batches, block_bytes) {
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
}
