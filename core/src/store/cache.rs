//! The log cache: every acknowledged batch not yet in an object, plus recently
//! uploaded ones, so that tail readers never touch storage.
//!
//! It also sequences WAL appends: an LSN is taken under the cache lock at the moment
//! the record is queued, so the cache knows every LSN still in flight and never lets
//! the WAL be trimmed past data that is not in an object yet.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

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
    /// Cached batches in the order they arrived: eviction drops the oldest first,
    /// whichever stream it belongs to.
    arrival: VecDeque<(StreamId, u64)>,
}

#[derive(Debug, Default)]
struct StreamCache {
    batches: BTreeMap<u64, Cached>,
    /// Offsets below this are in committed objects.
    uploaded_end: u64,
    /// Offsets below this are acknowledged and readable: the contiguous prefix of
    /// what the WAL confirmed.
    acked_end: u64,
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
            arrival: VecDeque::new(),
        }
    }

    /// Registers a stream whose offsets below `end` are all in objects.
    pub(super) fn open_stream(&mut self, stream: StreamId, end: u64) {
        let entry = self.streams.entry(stream).or_default();
        entry.uploaded_end = entry.uploaded_end.max(end);
        entry.acked_end = entry.acked_end.max(end);
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
        self.arrival.push_back((stream, batch.base_offset()));
        entry
            .batches
            .insert(batch.base_offset(), Cached { batch, lsn });
        while let Some(next) = entry.batches.get(&entry.acked_end) {
            entry.acked_end = next.batch.end_offset();
        }
        let acked_end = entry.acked_end;
        self.publish_sizes();
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
        self.arrival.push_back((stream, batch.base_offset()));
        entry
            .batches
            .insert(batch.base_offset(), Cached { batch, lsn: Lsn(0) });
        entry.uploaded_end = end;
        entry.acked_end = entry.acked_end.max(end);
        self.evict();
        self.publish_sizes();
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

    /// Acknowledged, not yet uploaded batches, per stream in offset order, about
    /// `max_bytes` of them: streams holding the oldest WAL records first (so the WAL
    /// can be trimmed), each contributing a prefix of its pending batches.
    pub(super) fn pending(&self, max_bytes: usize) -> Vec<PendingStream> {
        let mut candidates: Vec<(Lsn, StreamId, Vec<&Cached>)> = self
            .streams
            .iter()
            .filter_map(|(stream, entry)| {
                let cached: Vec<&Cached> = entry
                    .batches
                    .range(entry.uploaded_end..)
                    .map(|(_, c)| c)
                    .take_while(|c| c.batch.base_offset() < entry.acked_end)
                    .collect();
                let oldest = cached.iter().map(|c| c.lsn).min()?;
                Some((oldest, *stream, cached))
            })
            .collect();
        candidates.sort_by_key(|(oldest, stream, _)| (*oldest, *stream));
        let mut budget = max_bytes.max(1);
        let mut pending = Vec::new();
        for (_, stream, cached) in candidates {
            if budget == 0 {
                break;
            }
            let mut batches = Vec::new();
            for c in cached {
                if budget == 0 {
                    break;
                }
                budget = budget.saturating_sub(c.batch.len());
                batches.push(c.batch.clone());
            }
            pending.push(PendingStream { stream, batches });
        }
        pending.sort_by_key(|p| p.stream);
        pending
    }

    /// Offsets below `end` of `stream` are now in a committed object.
    pub(super) fn mark_uploaded(&mut self, stream: StreamId, end: u64) {
        let Some(entry) = self.streams.get_mut(&stream) else {
            return;
        };
        let newly: usize = entry
            .batches
            .range(entry.uploaded_end..end)
            .map(|(_, c)| c.batch.len())
            .sum();
        self.unuploaded_bytes -= newly;
        entry.uploaded_end = entry.uploaded_end.max(end);
        self.evict();
        self.publish_sizes();
    }

    /// The WAL may drop records below this LSN: everything before it is in objects.
    pub(super) fn wal_trim_point(&self) -> Lsn {
        let unuploaded = self
            .streams
            .values()
            .flat_map(|s| s.batches.range(s.uploaded_end..).map(|(_, c)| c.lsn))
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

    /// Drops uploaded batches until within capacity, taking streams in the order
    /// their batches entered the cache and, within a stream, always its oldest
    /// batch. Batches of one stream can enter out of offset order (their appends
    /// become durable together and are inserted by different tasks); dropping by
    /// arrival alone could then leave a hole in the middle of a stream's cached run.
    /// Un-uploaded batches are never dropped (back-pressure bounds them); they are
    /// skipped, not waited for.
    fn evict(&mut self) {
        let mut at = 0;
        while self.cached_bytes > self.capacity_bytes && at < self.arrival.len() {
            let (stream, base) = self.arrival[at];
            let Some(entry) = self.streams.get_mut(&stream) else {
                self.arrival.remove(at);
                continue;
            };
            if !entry.batches.contains_key(&base) {
                // Already dropped as the oldest of its stream.
                self.arrival.remove(at);
                continue;
            }
            let oldest = entry
                .batches
                .first_key_value()
                .map(|(offset, cached)| (*offset, cached.batch.end_offset(), cached.batch.len()));
            match oldest {
                Some((offset, end, len)) if end <= entry.uploaded_end => {
                    self.cached_bytes -= len;
                    entry.batches.remove(&offset);
                    if offset == base {
                        self.arrival.remove(at);
                    }
                }
                _ => at += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::synthetic_batch;

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
    fn batches_inserted_out_of_order_are_evicted_oldest_offset_first() {
        let stream = StreamId(1);
        let batch = |base: u64| synthetic_batch(1, 100, 0).with_base_offset(base);
        let mut cache = LogCache::new(batch(0).len() * 2, Lsn(0));
        cache.open_stream(stream, 0);
        // Durable together, inserted by different tasks: 2 enters before 1.
        for base in [0, 2, 1, 3] {
            let lsn = cache.reserve_lsn();
            cache.insert(stream, batch(base), lsn);
        }
        assert_eq!(cache.acked_end(stream), Some(4));
        cache.mark_uploaded(stream, 4);
        assert!(cache.read(stream, 1, usize::MAX).is_none(), "1 was evicted");
        let kept = cache
            .read(stream, 2, usize::MAX)
            .expect("the newest two stay");
        let offsets: Vec<u64> = kept.iter().map(RecordBatch::base_offset).collect();
        assert_eq!(offsets, vec![2, 3]);
    }

    #[test]
    fn a_read_stops_at_a_hole_in_the_cached_run() {
        let stream = StreamId(1);
        let batch = |base: u64| synthetic_batch(1, 100, 0).with_base_offset(base);
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
        let offsets: Vec<u64> = read.iter().map(RecordBatch::base_offset).collect();
        assert_eq!(offsets, vec![0, 1], "the read went past the hole at 2");
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
}
