//! The log cache: every acknowledged batch not yet in an object, plus recently
//! uploaded ones, so that tail readers never touch storage.
//!
//! It also sequences WAL appends: an LSN is taken under the cache lock at the moment
//! the record is queued, so the cache knows every LSN still in flight and never lets
//! the WAL be trimmed past data that is not in an object yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::batch::RecordBatch;
use crate::wal::Lsn;

use super::metadata::StreamId;

#[derive(Debug)]
pub(super) struct LogCache {
    capacity_bytes: usize,
    streams: HashMap<StreamId, StreamCache>,
    cached_bytes: usize,
    unuploaded_bytes: usize,
    next_lsn: Lsn,
    in_flight: BTreeSet<Lsn>,
    /// Cached batches that are in committed objects, the ones eviction may drop,
    /// oldest first: by WAL LSN (local WAL) or by commit (object WAL), which is the
    /// order they were appended in, each stream's in offset order. Uploads take one
    /// stream's backlog at a time; evicted in that order instead, the cache dropped
    /// whole streams' recent batches while keeping others' older ones. Un-uploaded
    /// batches never enter it, so eviction never walks past them.
    evictable: BTreeMap<u64, (StreamId, u64)>,
    /// The key of the next batch [`LogCache::insert_committed`] makes evictable.
    next_committed: u64,
    /// Bytes held outside the cache that count against its size: the object WAL's
    /// appends gathered and not yet committed (they enter the cache on commit).
    charged: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct StreamCache {
    batches: BTreeMap<u64, Cached>,
    /// Offsets below this are in committed objects.
    uploaded_end: u64,
    /// Offsets below this are acknowledged and readable: the contiguous prefix of
    /// what the WAL confirmed.
    acked_end: u64,
    /// A newer owner took the stream: nothing more of it is taken in.
    taken_over: bool,
}

#[derive(Debug, Clone)]
struct Cached {
    batch: RecordBatch,
    lsn: Lsn,
}

/// The un-uploaded data of one stream, taken for an upload.
#[derive(Debug, Clone)]
pub(super) struct PendingStream {
    pub stream: StreamId,
    pub batches: Vec<RecordBatch>,
}

impl LogCache {
    pub(super) fn new(capacity_bytes: usize, next_lsn: Lsn) -> Self {
        LogCache {
            capacity_bytes,
            streams: HashMap::new(),
            cached_bytes: 0,
            unuploaded_bytes: 0,
            next_lsn,
            in_flight: BTreeSet::new(),
            evictable: BTreeMap::new(),
            next_committed: 0,
            charged: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Counts `bytes` (kept current by their owner) against the cache's size.
    pub(super) fn charge(&mut self, bytes: Arc<AtomicUsize>) {
        self.charged = bytes;
    }

    /// What cached batches may take: the size less what is charged to it.
    fn room(&self) -> usize {
        self.capacity_bytes
            .saturating_sub(self.charged.load(Ordering::Relaxed))
    }

    /// Registers a stream whose offsets below `end` are all in objects.
    pub(super) fn open_stream(&mut self, stream: StreamId, end: u64) {
        let entry = self.streams.entry(stream).or_default();
        entry.uploaded_end = entry.uploaded_end.max(end);
        entry.acked_end = entry.acked_end.max(end);
        entry.taken_over = false;
    }

    /// Whether objects already hold `stream` up to `end` (a WAL record of it being
    /// replayed was uploaded before the restart).
    pub(super) fn is_uploaded(&self, stream: StreamId, end: u64) -> bool {
        self.streams
            .get(&stream)
            .is_some_and(|entry| end <= entry.uploaded_end)
    }

    /// Takes the LSN the next queued WAL record will get.
    pub(super) fn reserve_lsn(&mut self) -> Lsn {
        let lsn = self.next_lsn;
        self.next_lsn = Lsn(lsn.0 + 1);
        self.in_flight.insert(lsn);
        lsn
    }

    /// The WAL did not make `lsn` durable.
    pub(super) fn abandon(&mut self, lsn: Lsn) {
        self.in_flight.remove(&lsn);
    }

    /// Adds a durable batch; returns the stream's new acknowledged end.
    pub(super) fn insert(&mut self, stream: StreamId, batch: RecordBatch, lsn: Lsn) -> u64 {
        self.in_flight.remove(&lsn);
        let entry = self.streams.entry(stream).or_default();
        if batch.end_offset() <= entry.uploaded_end {
            return entry.acked_end;
        }
        self.cached_bytes += batch.len();
        self.unuploaded_bytes += batch.len();
        entry
            .batches
            .insert(batch.base_offset(), Cached { batch, lsn });
        while let Some(next) = entry.batches.get(&entry.acked_end) {
            entry.acked_end = next.batch.end_offset();
        }
        let acked_end = entry.acked_end;
        // Uploaded batches go as new ones come, not only after the next upload:
        // otherwise a slow upload lets the cache grow by everything appended
        // meanwhile, up to the un-uploaded limit on top of a full cache.
        if self.cached_bytes > self.room() {
            // `evict` publishes the sizes.
            drop(self.evict(EVICT_PER_INSERT));
        } else {
            self.publish_sizes();
        }
        acked_end
    }

    /// Adds a batch that is already in a committed object (object WAL): readable at
    /// once, nothing to upload.
    pub(super) fn insert_committed(&mut self, stream: StreamId, batch: RecordBatch) {
        let entry = self.streams.entry(stream).or_default();
        let end = batch.end_offset();
        if end <= entry.uploaded_end {
            return;
        }
        self.cached_bytes += batch.len();
        self.evictable
            .insert(self.next_committed, (stream, batch.base_offset()));
        self.next_committed += 1;
        entry
            .batches
            .insert(batch.base_offset(), Cached { batch, lsn: Lsn(0) });
        entry.uploaded_end = end;
        entry.acked_end = entry.acked_end.max(end);
        // One insert per stream and window: what it pushes out is about its own size.
        // `evict` publishes the sizes.
        drop(self.evict(usize::MAX));
    }

    pub(super) fn acked_end(&self, stream: StreamId) -> Option<u64> {
        self.streams.get(&stream).map(|s| s.acked_end)
    }

    /// Acknowledged batches from `offset` on, up to about `max_bytes` (at least one
    /// batch); `None` when the cache no longer holds `offset`.
    pub(super) fn read(
        &self,
        stream: StreamId,
        offset: u64,
        max_bytes: usize,
    ) -> Option<Vec<RecordBatch>> {
        let entry = self.streams.get(&stream)?;
        let first = entry.batches.range(..=offset).next_back().map(|(_, c)| c)?;
        if first.batch.end_offset() <= offset {
            // `offset` falls between cached batches: only possible below the cache.
            return None;
        }
        let mut out: Vec<RecordBatch> = Vec::new();
        let mut bytes = 0;
        for cached in entry
            .batches
            .range(first.batch.base_offset()..)
            .map(|(_, c)| c)
        {
            // A batch that does not start where the previous one ended lies past a
            // hole: what is missing is read from objects by the next fetch.
            let follows = out
                .last()
                .is_none_or(|previous| previous.end_offset() == cached.batch.base_offset());
            if !follows
                || cached.batch.base_offset() >= entry.acked_end
                || (!out.is_empty() && bytes + cached.batch.len() > max_bytes)
            {
                break;
            }
            bytes += cached.batch.len();
            out.push(cached.batch.clone());
        }
        Some(out)
    }

    pub(super) fn unuploaded_bytes(&self) -> usize {
        self.unuploaded_bytes
    }

    /// Streams with acknowledged batches not yet in an object, the one holding the
    /// oldest WAL record first: uploading in this order lets the WAL be trimmed.
    pub(super) fn upload_order(&self) -> Vec<StreamId> {
        let mut candidates: Vec<(Lsn, StreamId)> = self
            .streams
            .iter()
            .filter_map(|(stream, entry)| {
                let first = entry.first_unuploaded()?;
                (first.batch.base_offset() < entry.acked_end).then_some((first.lsn, *stream))
            })
            .collect();
        candidates.sort_unstable();
        candidates.into_iter().map(|(_, stream)| stream).collect()
    }

    /// A prefix of `stream`'s acknowledged batches not yet in an object: about
    /// `max_bytes` of them, at least one.
    pub(super) fn pending(&self, stream: StreamId, max_bytes: usize) -> Option<PendingStream> {
        let entry = self.streams.get(&stream)?;
        let mut budget = max_bytes.max(1);
        let mut batches = Vec::new();
        for (_, cached) in entry.batches.range(entry.uploaded_end..) {
            if budget == 0 || cached.batch.base_offset() >= entry.acked_end {
                break;
            }
            budget = budget.saturating_sub(cached.batch.len());
            batches.push(cached.batch.clone());
        }
        (!batches.is_empty()).then_some(PendingStream { stream, batches })
    }

    /// Offsets below `end` of `stream` are now in a committed object. What this
    /// frees is evicted by [`LogCache::evict`].
    pub(super) fn mark_uploaded(&mut self, stream: StreamId, end: u64) {
        let Some(entry) = self.streams.get_mut(&stream) else {
            return;
        };
        if end <= entry.uploaded_end {
            // Already uploaded (a range reported twice, or out of order): a range
            // from above `end` would be inverted.
            return;
        }
        let mut newly = 0;
        for (base, cached) in entry.batches.range(entry.uploaded_end..end) {
            newly += cached.batch.len();
            self.evictable.insert(cached.lsn.0, (stream, *base));
        }
        self.unuploaded_bytes -= newly;
        entry.uploaded_end = entry.uploaded_end.max(end);
        self.publish_sizes();
    }

    /// Drops `stream`'s batches not in an object, now and as the WAL confirms more:
    /// a newer owner took the stream, so they will never be uploaded, and kept they
    /// would hold the WAL's trim point. Its offsets from there on are no longer
    /// readable here.
    pub(super) fn forget_unuploaded(&mut self, stream: StreamId) {
        let Some(entry) = self.streams.get_mut(&stream) else {
            return;
        };
        entry.taken_over = true;
        let dropped = entry.batches.split_off(&entry.uploaded_end);
        let bytes: usize = dropped.values().map(|cached| cached.batch.len()).sum();
        self.cached_bytes -= bytes;
        self.unuploaded_bytes -= bytes;
        entry.acked_end = entry.acked_end.min(entry.uploaded_end);
        self.publish_sizes();
    }

    /// Forgets `stream` (closed on this store) and returns its batches, to be freed
    /// after the lock is released. Batches not in an object go too: the caller
    /// uploaded everything acknowledged first, so only a taken-over stream's remain.
    pub(super) fn close_stream(&mut self, stream: StreamId) -> Vec<RecordBatch> {
        let Some(entry) = self.streams.remove(&stream) else {
            return Vec::new();
        };
        self.evictable
            .retain(|_, (evictable, _)| *evictable != stream);
        let mut dropped = Vec::with_capacity(entry.batches.len());
        for (base, cached) in entry.batches {
            self.cached_bytes -= cached.batch.len();
            if base >= entry.uploaded_end {
                self.unuploaded_bytes -= cached.batch.len();
            }
            dropped.push(cached.batch);
        }
        self.publish_sizes();
        dropped
    }

    /// Whether [`LogCache::forget_unuploaded`] dropped the stream (until reopened).
    pub(super) fn is_taken_over(&self, stream: StreamId) -> bool {
        self.streams
            .get(&stream)
            .is_some_and(|entry| entry.taken_over)
    }

    /// The WAL may drop records below this LSN: everything before it is in objects.
    pub(super) fn wal_trim_point(&self) -> Lsn {
        let unuploaded = self
            .streams
            .values()
            .filter_map(|s| s.first_unuploaded().map(|c| c.lsn))
            .min();
        [
            unuploaded,
            self.in_flight.first().copied(),
            Some(self.next_lsn),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_lsn)
    }

    fn publish_sizes(&self) {
        metrics::gauge!("strata_log_cache_bytes").set(self.cached_bytes as f64);
        metrics::gauge!("strata_wal_unuploaded_bytes").set(self.unuploaded_bytes as f64);
    }

    /// Drops uploaded batches until within [`LogCache::room`], in the order they were
    /// appended, which within a stream is offset order: a stream's cached run only
    /// ever loses its oldest batch, never one from its middle (a read stops at a
    /// hole, and batches of one stream can enter the cache out of offset order).
    /// Un-uploaded batches are never dropped (back-pressure bounds them).
    ///
    /// Drops at most `max_batches` per call, so that a caller holding the cache lock
    /// (which every append takes) holds it briefly; `Eviction::more` says whether to
    /// call again. The dropped batches are returned, to be freed after the lock is
    /// released.
    pub(super) fn evict(&mut self, max_batches: usize) -> Eviction {
        let mut dropped = Vec::new();
        let room = self.room();
        while self.cached_bytes > room {
            if dropped.len() >= max_batches {
                self.publish_sizes();
                return Eviction {
                    dropped,
                    more: !self.evictable.is_empty(),
                };
            }
            let Some((_, (stream, base))) = self.evictable.pop_first() else {
                break;
            };
            let removed = self
                .streams
                .get_mut(&stream)
                .and_then(|entry| entry.batches.remove(&base));
            if let Some(cached) = removed {
                self.cached_bytes -= cached.batch.len();
                dropped.push(cached.batch);
            }
        }
        self.publish_sizes();
        Eviction {
            dropped,
            more: false,
        }
    }
}

/// Uploaded batches an append evicts at most: about its own size in the steady
/// state, so the cache stays at its capacity without any append holding the lock
/// for long.
const EVICT_PER_INSERT: usize = 8;

/// What one [`LogCache::evict`] call dropped.
#[must_use]
pub(super) struct Eviction {
    pub dropped: Vec<RecordBatch>,
    /// Still above capacity with evictable batches left: call again.
    pub more: bool,
}

impl StreamCache {
    /// The stream's oldest batch not yet in an object. It also holds the stream's
    /// oldest such WAL record: a stream's LSNs are taken in offset order (under its
    /// offset lock), whatever order the batches became durable in.
    fn first_unuploaded(&self) -> Option<&Cached> {
        self.batches
            .range(self.uploaded_end..)
            .next()
            .map(|(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::synthetic_batch;

    /// A one-record batch at `base`.
    fn batch(base: u64) -> RecordBatch {
        synthetic_batch(1, 100, 0).with_base_offset(base)
    }

    /// The base offsets of `batches`.
    fn offsets(batches: &[RecordBatch]) -> Vec<u64> {
        batches.iter().map(RecordBatch::base_offset).collect()
    }

    /// Appends the batches at `bases`, in that order, as the WAL would acknowledge them.
    fn insert_acked(cache: &mut LogCache, stream: StreamId, bases: impl IntoIterator<Item = u64>) {
        for base in bases {
            let lsn = cache.reserve_lsn();
            cache.insert(stream, batch(base), lsn);
        }
    }

    #[test]
    fn eviction_takes_the_oldest_batches_of_every_stream_alike() {
        let batch_len = synthetic_batch(1, 100, 0).len();
        let mut cache = LogCache::new(batch_len * 8, Lsn(0));
        let streams: Vec<StreamId> = (0..4).map(StreamId).collect();
        for round in 0..10u64 {
            for &stream in &streams {
                cache.insert_committed(stream, synthetic_batch(1, 100, 0).with_base_offset(round));
            }
        }
        for &stream in &streams {
            assert!(
                cache.read(stream, 9, usize::MAX).is_some(),
                "{stream:?} lost its newest batch"
            );
            assert!(
                cache.read(stream, 7, usize::MAX).is_none(),
                "{stream:?} kept more than its share"
            );
        }
    }

    #[test]
    fn bytes_charged_to_the_cache_leave_less_room_for_batches() {
        let len = batch(0).len();
        let mut cache = LogCache::new(len * 4, Lsn(0));
        let queued = Arc::new(AtomicUsize::new(0));
        cache.charge(queued.clone());
        let stream = StreamId(1);
        for base in 0..4 {
            cache.insert_committed(stream, batch(base));
        }
        assert_eq!(cache.cached_bytes, len * 4);

        queued.store(len * 2, Ordering::Relaxed);
        cache.insert_committed(stream, batch(4));
        assert_eq!(
            cache.cached_bytes,
            len * 2,
            "two batches' worth is queued elsewhere: two stay cached"
        );
        assert!(cache.read(stream, 3, usize::MAX).is_some());
        assert!(cache.read(stream, 2, usize::MAX).is_none());
    }

    #[test]
    fn a_taken_over_stream_no_longer_holds_the_wal_or_waits_for_upload() {
        let mut cache = LogCache::new(1 << 20, Lsn(0));
        let (kept, taken) = (StreamId(1), StreamId(2));
        cache.open_stream(kept, 0);
        cache.open_stream(taken, 0);
        insert_acked(&mut cache, taken, [0, 1]);
        insert_acked(&mut cache, kept, [0]);
        assert_eq!(cache.wal_trim_point(), Lsn(0));

        cache.forget_unuploaded(taken);
        assert!(cache.is_taken_over(taken));
        assert_eq!(
            cache.wal_trim_point(),
            Lsn(2),
            "only the kept stream's record holds the WAL"
        );
        assert_eq!(cache.unuploaded_bytes(), batch(0).len());
        assert_eq!(cache.upload_order(), vec![kept]);
        assert_eq!(cache.acked_end(taken), Some(0));

        cache.open_stream(taken, 0);
        assert!(!cache.is_taken_over(taken), "reopened by this store");
    }

    #[test]
    fn batches_uploaded_stream_by_stream_are_evicted_in_the_order_they_were_appended() {
        let len = batch(0).len();
        let mut cache = LogCache::new(len * 4, Lsn(0));
        let (a, b) = (StreamId(1), StreamId(2));
        cache.open_stream(a, 0);
        cache.open_stream(b, 0);
        for base in 0..4 {
            insert_acked(&mut cache, a, [base]);
            insert_acked(&mut cache, b, [base]);
        }
        // The uploader takes one stream at a time.
        cache.mark_uploaded(a, 4);
        cache.mark_uploaded(b, 4);
        while cache.evict(usize::MAX).more {}
        for stream in [a, b] {
            let kept = offsets(
                &cache
                    .read(stream, 2, usize::MAX)
                    .expect("the newest batches stay"),
            );
            assert_eq!(
                kept,
                vec![2, 3],
                "{stream:?}: the batches appended last stay"
            );
            assert!(cache.read(stream, 1, usize::MAX).is_none());
        }
    }

    #[test]
    fn batches_inserted_out_of_order_are_evicted_oldest_offset_first() {
        let stream = StreamId(1);
        let mut cache = LogCache::new(batch(0).len() * 2, Lsn(0));
        cache.open_stream(stream, 0);
        // LSNs are taken as the batches are placed, in offset order; durable
        // together, the batches are inserted by different tasks: 2 enters before 1.
        let lsns: Vec<Lsn> = (0..4).map(|_| cache.reserve_lsn()).collect();
        for base in [0, 2, 1, 3] {
            cache.insert(stream, batch(base), lsns[base as usize]);
        }
        assert_eq!(cache.acked_end(stream), Some(4));
        cache.mark_uploaded(stream, 4);
        assert!(!cache.evict(usize::MAX).more);
        assert!(cache.read(stream, 1, usize::MAX).is_none(), "1 was evicted");
        let kept = cache
            .read(stream, 2, usize::MAX)
            .expect("the newest two stay");
        assert_eq!(offsets(&kept), vec![2, 3]);
    }

    #[test]
    fn appends_evict_uploaded_batches_without_waiting_for_an_upload() {
        let stream = StreamId(1);
        let len = batch(0).len();
        let mut cache = LogCache::new(len * 4, Lsn(0));
        cache.open_stream(stream, 0);
        insert_acked(&mut cache, stream, 0..4);
        cache.mark_uploaded(stream, 4);
        // No upload ends meanwhile: the appends themselves push uploaded batches out.
        insert_acked(&mut cache, stream, 4..8);
        assert_eq!(
            cache.cached_bytes,
            len * 4,
            "the cache grew past its capacity"
        );
        assert!(cache.read(stream, 3, usize::MAX).is_none());
        // Un-uploaded batches stay past capacity: back-pressure bounds them.
        insert_acked(&mut cache, stream, 8..12);
        assert_eq!(cache.cached_bytes, len * 8);
        assert_eq!(cache.unuploaded_bytes(), len * 8);
        let read = cache.read(stream, 4, usize::MAX).expect("cached");
        assert_eq!(read.len(), 8);
    }

    #[test]
    fn a_read_stops_at_a_hole_in_the_cached_run() {
        let stream = StreamId(1);
        let mut cache = LogCache::new(usize::MAX, Lsn(0));
        cache.open_stream(stream, 0);
        for base in 0..4 {
            cache.insert_committed(stream, batch(base));
        }
        cache
            .streams
            .get_mut(&stream)
            .expect("stream")
            .batches
            .remove(&2);
        let read = cache.read(stream, 0, usize::MAX).expect("cached");
        assert_eq!(
            offsets(&read),
            vec![0, 1],
            "the read went past the hole at 2"
        );
    }

    #[test]
    fn committed_batches_are_read_from_the_cache_and_evicted_oldest_first() {
        let stream = StreamId(1);
        let batch_len = synthetic_batch(4, 1000, 0).len();
        let mut cache = LogCache::new(batch_len * 10, Lsn(0));
        cache.open_stream(stream, 0);
        for i in 0..20 {
            cache.insert_committed(stream, synthetic_batch(4, 1000, 0).with_base_offset(i * 4));
        }
        assert_eq!(cache.acked_end(stream), Some(80));
        let tail = cache
            .read(stream, 70, usize::MAX)
            .expect("the tail is cached");
        assert_eq!(tail.first().map(RecordBatch::base_offset), Some(68));
        assert_eq!(tail.len(), 3);
        assert!(
            cache.read(stream, 0, usize::MAX).is_none(),
            "the oldest batches were evicted"
        );
        assert_eq!(cache.unuploaded_bytes(), 0);
    }

    #[test]
    fn eviction_is_bounded_per_call_and_finishes_over_several() {
        let stream = StreamId(1);
        let mut cache = LogCache::new(batch(0).len() * 2, Lsn(0));
        cache.open_stream(stream, 0);
        insert_acked(&mut cache, stream, 0..10);
        cache.mark_uploaded(stream, 10);
        let first = cache.evict(3);
        assert_eq!((first.dropped.len(), first.more), (3, true));
        assert_eq!(offsets(&first.dropped), vec![0, 1, 2], "oldest first");
        let second = cache.evict(3);
        assert_eq!((second.dropped.len(), second.more), (3, true));
        let last = cache.evict(3);
        assert_eq!(
            (last.dropped.len(), last.more),
            (2, false),
            "8 over capacity: 3 + 3 + 2"
        );
        let kept = cache.read(stream, 8, usize::MAX).expect("the newest stay");
        assert_eq!(offsets(&kept), vec![8, 9]);
    }

    #[test]
    fn uploads_take_the_stream_with_the_oldest_record_first_and_only_acked_batches() {
        let (old, new) = (StreamId(7), StreamId(3));
        let mut cache = LogCache::new(usize::MAX, Lsn(0));
        cache.open_stream(old, 0);
        cache.open_stream(new, 0);
        let lsns: Vec<Lsn> = (0..4).map(|_| cache.reserve_lsn()).collect();
        cache.insert(old, batch(0), lsns[0]);
        cache.insert(new, batch(0), lsns[1]);
        cache.insert(old, batch(1), lsns[2]);
        // Offset 3 of `old` is durable but 2 is not: only 0 and 1 are acknowledged.
        cache.insert(old, batch(3), lsns[3]);
        assert_eq!(cache.upload_order(), vec![old, new]);
        let pending = cache
            .pending(old, usize::MAX)
            .expect("old has pending batches");
        assert_eq!(offsets(&pending.batches), vec![0, 1]);
        let one = cache.pending(old, 1).expect("at least one batch");
        assert_eq!(one.batches.len(), 1);
        cache.mark_uploaded(old, 2);
        assert_eq!(cache.upload_order(), vec![new]);
        assert_eq!(cache.wal_trim_point(), lsns[1]);
    }

    #[test]
    fn marking_an_already_uploaded_end_changes_nothing() {
        let stream = StreamId(1);
        let mut cache = LogCache::new(usize::MAX, Lsn(0));
        cache.open_stream(stream, 0);
        insert_acked(&mut cache, stream, 0..4);
        cache.mark_uploaded(stream, 3);
        let unuploaded = cache.unuploaded_bytes();
        cache.mark_uploaded(stream, 2);
        cache.mark_uploaded(stream, 3);
        assert_eq!(cache.unuploaded_bytes(), unuploaded);
        assert_eq!(cache.upload_order(), vec![stream]);
        let pending = cache
            .pending(stream, usize::MAX)
            .expect("offset 3 is pending");
        assert_eq!(pending.batches[0].base_offset(), 3);
    }

    #[test]
    fn a_closed_stream_leaves_nothing_behind() {
        let mut cache = LogCache::new(1 << 20, Lsn(0));
        let (closed, kept) = (StreamId(1), StreamId(2));
        insert_acked(&mut cache, closed, 0..4);
        insert_acked(&mut cache, kept, 0..2);
        cache.mark_uploaded(closed, 2);
        let size = batch(0).len();

        assert_eq!(cache.close_stream(closed).len(), 4);
        assert_eq!(cache.cached_bytes, 2 * size);
        assert_eq!(cache.unuploaded_bytes(), 2 * size);
        assert!(cache.evictable.values().all(|(stream, _)| *stream == kept));
        assert_eq!(cache.acked_end(closed), None);
        // Its WAL records no longer hold the trim point: the kept stream's first does.
        assert_eq!(cache.wal_trim_point(), Lsn(4));

        cache.open_stream(closed, 4);
        assert_eq!(cache.acked_end(closed), Some(4));
        assert!(cache.read(closed, 0, usize::MAX).is_none());
    }
}
