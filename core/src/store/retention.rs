//! Retention and garbage collection.
//!
//! Retention moves a stream's start past whole object ranges that are too old or
//! beyond the size limit, taking those ranges out of their objects' records. Garbage
//! collection then finds objects whose records list no range, marks them, and deletes them from the bucket once a
//! grace period has passed (reads that looked a range up just before still find the
//! object). Ranges are only ever added pointing at new objects, so an unreferenced
//! object can never become referenced again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::metadata::{self, ObjectRange, ObjectRecord, ObjectState, StreamId};
use super::object_ranges;
use super::{Inner, OpenStream, StoreError, StreamStore, upload};
use crate::meta::{Compare, Op, Txn};
use crate::object::ObjectId;

/// How much of a stream to keep. `None` keeps everything on that axis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Drop ranges whose newest record is older than this.
    pub max_age: Option<Duration>,
    /// Drop the oldest ranges while the stream's uploaded bytes exceed this.
    pub max_bytes: Option<u64>,
}

/// What one garbage collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects newly found unreferenced and marked.
    pub marked: usize,
    /// Objects deleted from the bucket.
    pub deleted: usize,
    /// Objects found in the bucket with no metadata record at all (a PUT that
    /// landed after a crash's cleanup), older than the grace period, and deleted.
    pub orphans: usize,
}

impl StreamStore {
    /// Applies `policy` to `stream` as of `now_ms` (ms since the epoch); returns the
    /// stream's start offset afterwards. Data not yet uploaded is never dropped.
    pub async fn enforce_retention(
        &self,
        stream: StreamId,
        policy: RetentionPolicy,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let open = self
            .inner
            .open_stream_state(stream)
            .ok_or(StoreError::StreamNotOpen(stream))?;
        let (start, ranges) = {
            let state = open.lock_state();
            (
                state.start_offset,
                state.ranges.values().copied().collect::<Vec<_>>(),
            )
        };
        let age_limit = policy
            .max_age
            .map(|age| now_ms.saturating_sub(age.as_millis() as i64));
        let mut retained_bytes: u64 = ranges.iter().map(|r| r.bytes).sum();
        let mut new_start = start;
        for range in &ranges {
            let too_old = age_limit.is_some_and(|limit| range.max_timestamp < limit);
            let too_big = policy.max_bytes.is_some_and(|max| retained_bytes > max);
            if !(too_old || too_big) {
                break;
            }
            retained_bytes -= range.bytes;
            new_start = new_start.max(range.end_offset);
        }
        if new_start > start {
            move_start(&self.inner, &open, new_start).await?;
            metrics::counter!("strata_retention_trims_total").increment(1);
        }
        Ok(new_start)
    }

    /// Objects some stream range points at.
    pub async fn referenced_objects(&self) -> Result<HashSet<ObjectId>, StoreError> {
        Ok(object_ranges::objects(self.inner.meta.as_ref())
            .await?
            .into_iter()
            .filter(|entry| entry.is_referenced())
            .map(|entry| entry.id)
            .collect())
    }

    /// Marks objects no range references and deletes those marked at least `grace`
    /// ago.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<GcReport, StoreError> {
        collect_garbage(&self.inner, grace).await
    }
}

/// Moves the start of `open` to `new_start` and takes the ranges wholly below it
/// out of their objects' records, in one transaction conditional on the stream's
/// epoch.
pub(super) async fn move_start(
    inner: &Inner,
    open: &Arc<OpenStream>,
    new_start: u64,
) -> Result<(), StoreError> {
    let Some(_exclusive) = open.maintenance().await else {
        return Err(StoreError::StreamClosing(open.id));
    };
    let doomed: Vec<ObjectRange> = open
        .lock_state()
        .ranges
        .values()
        .filter(|r| r.end_offset <= new_start)
        .copied()
        .collect();
    object_ranges::commit_removal(inner.meta.as_ref(), open, &doomed, || {
        Txn::new()
            .when(Compare::Value(
                metadata::epoch_key(open.id),
                metadata::u64_value(open.epoch),
            ))
            .and_then(Op::put(
                metadata::start_key(open.id),
                metadata::u64_value(new_start),
            ))
    })
    .await?;
    let mut state = open.lock_state();
    state.start_offset = state.start_offset.max(new_start);
    for range in &doomed {
        state.ranges.remove(&range.start_offset);
    }
    Ok(())
}

/// Every `interval`, until the store is dropped or closes: one maintenance
/// [`round`].
pub(super) async fn run(
    store: std::sync::Weak<Inner>,
    interval: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(inner) = store.upgrade() else { return };
        round(&inner).await;
    }
}

/// Applies every open stream's retention policy, merges small stream-set objects,
/// compacts every stream, then collects garbage. A closing store stops the round
/// between steps (each step is safe to leave there: what it did is committed, or
/// is garbage that the next round removes).
async fn round(inner: &Arc<Inner>) {
    let stopping = || inner.tasks.is_stopping();
    let streams: Vec<Arc<OpenStream>> = inner.lock_streams().values().cloned().collect();
    let handle = StreamStore {
        inner: inner.clone(),
    };
    let now = metadata::now_ms() as i64;
    for open in &streams {
        if stopping() {
            return;
        }
        let policy = open.lock_state().retention;
        if policy != RetentionPolicy::default()
            && let Err(err) = handle.enforce_retention(open.id, policy, now).await
        {
            tracing::warn!(stream = open.id.0, error = %err, "retention failed; retrying next round");
        }
    }
    if stopping() {
        return;
    }
    // After retention (nothing it drops is copied), before per-stream compaction
    // (which then reads each stream's part of a merged object with one GET
    // instead of one per small object).
    if let Err(err) = super::merge::merge_stream_sets(inner).await {
        tracing::warn!(error = %err, "merging stream-set objects failed; retrying next round");
    }
    // Every stream at once: stream-set records shared by the streams are rewritten
    // once per wave, not once per stream.
    if let Err(err) = super::compaction_round::compact_open_streams(inner).await {
        tracing::warn!(error = %err, "compaction failed; retrying next round");
    }
    if stopping() {
        return;
    }
    if let Err(err) = collect_garbage(inner, inner.config.deletion_grace).await {
        tracing::warn!(error = %err, "garbage collection failed; retrying next round");
    }
}

/// Deletes objects in the bucket below `watermark` that no metadata record names
/// and that are older than `grace`. An object's record is written with its id, before
/// its PUT, so such an object can only be a PUT that completed after its record was
/// discarded (a crashed or fenced upload cleaned up while its request was still in
/// flight).
async fn sweep_orphans(
    inner: &Inner,
    recorded: &HashSet<ObjectId>,
    watermark: ObjectId,
    grace: Duration,
) -> Result<usize, StoreError> {
    let op = inner.storage.operator();
    let listed = op
        .list_with("objects/")
        .recursive(true)
        .await
        .map_err(StoreError::storage("list", "objects/"))?;
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in listed {
        let path = entry.path();
        let Some(id) = path
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_suffix(".obj"))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(ObjectId)
        else {
            continue;
        };
        // At or above the watermark: allocated after the record scan, maybe in flight.
        if recorded.contains(&id) || id >= watermark {
            continue;
        }
        let old_enough = grace.is_zero() || {
            let modified = match entry.metadata().last_modified() {
                Some(at) => Some(at),
                None => op.stat(path).await.ok().and_then(|m| m.last_modified()),
            };
            modified.is_some_and(|at| {
                now.duration_since(std::time::SystemTime::from(at))
                    .is_ok_and(|age| age >= grace)
            })
        };
        if old_enough {
            op.delete(path)
                .await
                .map_err(StoreError::storage("delete", path))?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(objects = removed, "deleted objects no metadata names");
        metrics::counter!("strata_orphan_objects_removed_total").increment(removed as u64);
    }
    Ok(removed)
}

async fn collect_garbage(inner: &Inner, grace: Duration) -> Result<GcReport, StoreError> {
    let meta = inner.meta.as_ref();
    // Ids below the watermark have records (read after it): an object not among
    // them is an orphan only if its id is below it.
    let watermark = metadata::object_id_watermark(meta).await?;
    let entries = object_ranges::objects(meta).await?;
    let now = metadata::now_ms();
    let mut report = GcReport::default();
    let mut recorded = HashSet::new();
    for entry in entries {
        let id = entry.id;
        recorded.insert(id);
        let record = entry.record;
        match record.state {
            ObjectState::Committed if !entry.is_referenced() => {
                let marked = ObjectRecord {
                    state: ObjectState::MarkedForDeletion { at_ms: now },
                    ..record
                };
                let key = metadata::object_key(id);
                let txn = Txn::new()
                    .when(Compare::ModRevision(key.clone(), entry.mod_revision))
                    .and_then(Op::put(key, marked.value()));
                if meta.txn(txn).await?.succeeded {
                    report.marked += 1;
                }
            }
            ObjectState::MarkedForDeletion { at_ms }
                if at_ms.saturating_add(grace.as_millis() as u64) <= now =>
            {
                upload::discard_object(inner, id).await?;
                report.deleted += 1;
            }
            _ => {}
        }
    }
    report.orphans = sweep_orphans(inner, &recorded, watermark, grace).await?;
    if report.deleted > 0 {
        metrics::counter!("strata_retention_deleted_objects_total")
            .increment(report.deleted as u64);
    }
    Ok(report)
}
