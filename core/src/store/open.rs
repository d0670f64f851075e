//! How streams come to a store: opening one takes ownership of it (its epoch is
//! bumped, so the previous owner's commits fail from then on) and loads its ranges.
//!
//! A stream's ranges live in the records of the objects holding them, so loading
//! them reads every object record. A broker taking over its partitions opens them
//! together ([`StreamStore::open_streams`]): one read of the records for all of
//! them instead of one per stream, and the epochs taken concurrently, sharing the
//! metadata store's syncs.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use super::metadata::{self, ObjectRange};
use super::{
    Inner, OpenStream, RetentionPolicy, StoreError, StreamId, StreamState, StreamStore,
    object_ranges,
};
use crate::meta::{Compare, MetaStore, Op, Txn};

/// Epochs taken at once by [`StreamStore::open_streams`].
const CONCURRENT_TAKES: usize = 32;

impl StreamStore {
    /// Takes ownership of `stream` (bumping its epoch) and loads its ranges.
    pub async fn open_stream(&self, stream: StreamId) -> Result<(), StoreError> {
        self.open_streams(&[stream]).await
    }

    /// Opens each of `streams` not open here yet, as [`StreamStore::open_stream`]
    /// does, reading the object records once for all of them. Every stream whose
    /// epoch could be taken is opened; the first error is returned.
    pub async fn open_streams(&self, streams: &[StreamId]) -> Result<(), StoreError> {
        let outcomes = self.open_each(streams).await?;
        match outcomes.into_iter().find_map(|(_, outcome)| outcome.err()) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// [`StreamStore::open_streams`], with the outcome of each stream it had to take
    /// (those already open are left out); `Err` when the ranges could not be read.
    pub(super) async fn open_each(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<(StreamId, Result<(), StoreError>)>, StoreError> {
        let mut wanted: Vec<StreamId> = streams
            .iter()
            .copied()
            .filter(|&stream| self.inner.open_stream_state(stream).is_none())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let meta = self.inner.meta.as_ref();
        let mut taken = Vec::with_capacity(wanted.len());
        for some in wanted.chunks(CONCURRENT_TAKES) {
            let takes = some.iter().map(|&stream| take(meta, stream));
            taken.extend(futures::future::join_all(takes).await);
        }
        let mut outcomes = Vec::with_capacity(taken.len());
        let mut owned = Vec::with_capacity(taken.len());
        for (&stream, result) in wanted.iter().zip(taken) {
            match result {
                Ok(taken) => owned.push(taken),
                Err(err) => outcomes.push((stream, Err(err))),
            }
        }
        if !owned.is_empty() {
            let ids: HashSet<StreamId> = owned.iter().map(|taken| taken.stream).collect();
            let mut ranges = object_ranges::ranges_of(meta, &ids).await?;
            for taken in owned {
                let stream = taken.stream;
                let stream_ranges = ranges.remove(&stream).unwrap_or_default();
                install(&self.inner, taken, stream_ranges);
                outcomes.push((stream, Ok(())));
            }
        }
        Ok(outcomes)
    }
}

/// A stream whose epoch this store took.
struct Taken {
    stream: StreamId,
    epoch: u64,
    start_offset: u64,
}

/// Bumps `stream`'s epoch, conditional on nobody else bumping it meanwhile.
async fn take(meta: &dyn MetaStore, stream: StreamId) -> Result<Taken, StoreError> {
    let epoch_key = metadata::epoch_key(stream);
    let current = meta
        .get(&epoch_key)
        .await?
        .ok_or(StoreError::UnknownStream(stream))?;
    let epoch = metadata::parse_u64(&current)? + 1;
    let take = Txn::new()
        .when(Compare::ModRevision(
            epoch_key.clone(),
            current.mod_revision,
        ))
        .and_then(Op::put(epoch_key, metadata::u64_value(epoch)));
    if !meta.txn(take).await?.succeeded {
        return Err(StoreError::Fenced { stream, epoch });
    }
    let start_offset = match meta.get(&metadata::start_key(stream)).await? {
        Some(kv) => metadata::parse_u64(&kv)?,
        None => 0,
    };
    Ok(Taken {
        stream,
        epoch,
        start_offset,
    })
}

/// Makes `taken` an open stream of the store, appending after its last range.
fn install(inner: &Inner, taken: Taken, ranges: BTreeMap<u64, ObjectRange>) {
    let Taken {
        stream,
        epoch,
        start_offset,
    } = taken;
    let end = ranges
        .values()
        .map(|r| r.end_offset)
        .max()
        .unwrap_or(start_offset)
        .max(start_offset);
    inner.lock_cache().open_stream(stream, end);
    let open = Arc::new(OpenStream {
        id: stream,
        epoch,
        maintenance: tokio::sync::Mutex::new(()),
        next_offset: tokio::sync::Mutex::new(end),
        state: Mutex::new(StreamState {
            start_offset,
            retention: RetentionPolicy::default(),
            ranges,
        }),
        prefetched_end: std::sync::atomic::AtomicU64::new(0),
        fenced: std::sync::atomic::AtomicBool::new(false),
        closing: std::sync::atomic::AtomicBool::new(false),
        unsettled: Arc::default(),
    });
    inner.lock_streams().insert(stream, open);
}
