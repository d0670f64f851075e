//! Committing written objects: one metadata transaction writes each object's record
//! as committed, with its streams' ranges, conditional on every stream's epoch.
//!
//! A stream taken over by a newer owner does not hold back the streams sharing its
//! objects. A refused transaction is followed by a read of the streams' epochs; the
//! streams taken are marked fenced and left out, and the rest is committed again.
//! What the objects hold of a fenced stream is never referenced: an object left with
//! no range is deleted at once, the others' bytes go when merge, compaction or
//! retention rewrites or drops the object.

use std::sync::Arc;

use super::metadata::{self, ObjectRange, ObjectRecord, ObjectState};
use super::object_ranges;
use super::upload::{WrittenSet, discard_all};
use super::{Inner, OpenStream, StoreError};
use crate::meta::{Compare, Op, Txn};

/// What a commit did.
pub(super) struct Committed {
    /// Every range committed, with its stream.
    pub ranges: Vec<(Arc<OpenStream>, ObjectRange)>,
    /// Streams left out because a newer owner took them: their appends in these
    /// objects are not durable and never will be.
    pub fenced: Vec<Arc<OpenStream>>,
}

impl Committed {
    /// The stream, if this commit left it out as taken over.
    pub(super) fn fenced_stream(&self, stream: metadata::StreamId) -> Option<&OpenStream> {
        self.fenced
            .iter()
            .find(|open| open.id == stream)
            .map(|open| &**open)
    }
}

/// Commits written objects in one transaction (one sync of the metadata store, for
/// several object-WAL windows written at once); the ranges are then added to the
/// streams' state.
///
/// An error means the metadata store failed and whether the commit applied is
/// unknown: the objects are left alone (if it did not apply, they are still prepared
/// and the next open removes them).
pub(super) async fn commit(
    inner: &Inner,
    mut sets: Vec<WrittenSet>,
) -> Result<Committed, StoreError> {
    let mut fenced: Vec<Arc<OpenStream>> = Vec::new();
    loop {
        leave_out_fenced(inner, &mut sets, &mut fenced).await;
        let outcome = inner.meta.txn(commit_txn(&mut sets)).await?;
        if outcome.succeeded {
            break;
        }
        let taken = taken_over(inner, &sets).await?;
        if taken.is_empty() {
            // Refused, yet every epoch read back is ours: nothing to leave out, and
            // committing again could loop. Nothing was committed.
            return Err(StoreError::Task(
                "a commit was refused though every stream's epoch is still ours".to_string(),
            ));
        }
        for open in taken {
            if open.fence() {
                metrics::counter!("strata_stream_fenced_total").increment(1);
                tracing::warn!(
                    stream = ?open.id,
                    epoch = open.epoch,
                    "stream taken over by a newer owner; its appends here fail from now on"
                );
            }
        }
    }
    let mut ranges = Vec::new();
    for set in sets {
        for object in set.objects {
            metrics::counter!("strata_upload_objects_total").increment(1);
            metrics::counter!("strata_upload_bytes_total").increment(object.record.size);
            tracing::debug!(object = %object.id, bytes = object.record.size, streams = object.ranges.len(), "uploaded object");
            for (open, range) in object.ranges {
                open.lock_state().ranges.insert(range.start_offset, range);
                ranges.push((open, range));
            }
        }
        metrics::histogram!("strata_upload_duration_seconds")
            .record(set.started.elapsed().as_secs_f64());
    }
    Ok(Committed { ranges, fenced })
}

/// Removes the ranges of fenced streams from the objects (adding those streams to
/// `fenced`) and deletes the objects left with none.
async fn leave_out_fenced(
    inner: &Inner,
    sets: &mut Vec<WrittenSet>,
    fenced: &mut Vec<Arc<OpenStream>>,
) {
    for set in sets.iter_mut() {
        for object in &mut set.objects {
            object.ranges.retain(|(open, _)| {
                let left_out = open.is_fenced();
                if left_out && !fenced.iter().any(|f| f.id == open.id) {
                    fenced.push(open.clone());
                }
                !left_out
            });
        }
        let (empty, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut set.objects)
            .into_iter()
            .partition(|object| object.ranges.is_empty());
        set.objects = kept;
        discard_all(inner, &empty).await;
    }
    sets.retain(|set| !set.objects.is_empty());
}

fn commit_txn(sets: &mut [WrittenSet]) -> Txn {
    let mut txn = Txn::new();
    for object in sets.iter_mut().flat_map(|set| set.objects.iter_mut()) {
        for (open, range) in &mut object.ranges {
            range.object = object.id;
            txn = txn.when(Compare::Value(
                metadata::epoch_key(open.id),
                metadata::u64_value(open.epoch),
            ));
        }
        let committed = ObjectRecord {
            state: ObjectState::Committed,
            ..object.record
        };
        let ranges: Vec<_> = object
            .ranges
            .iter()
            .map(|(open, range)| (open.id, *range))
            .collect();
        txn = txn.and_then(Op::put(
            metadata::object_key(object.id),
            object_ranges::record_value(&committed, &ranges),
        ));
    }
    txn
}

/// The streams of `sets` whose epoch in the metadata store is no longer ours (taken
/// over, or deleted). A refused transaction does not say which comparison failed.
async fn taken_over(
    inner: &Inner,
    sets: &[WrittenSet],
) -> Result<Vec<Arc<OpenStream>>, StoreError> {
    let mut streams: Vec<&Arc<OpenStream>> = sets
        .iter()
        .flat_map(|set| &set.objects)
        .flat_map(|object| &object.ranges)
        .map(|(open, _)| open)
        .collect();
    streams.sort_unstable_by_key(|open| open.id);
    streams.dedup_by_key(|open| open.id);
    let mut taken = Vec::new();
    for open in streams {
        if !metadata::holds_epoch(inner.meta.as_ref(), open.id, open.epoch).await? {
            taken.push(open.clone());
        }
    }
    Ok(taken)
}
