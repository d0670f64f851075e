//! The stream store's records in the [`MetaStore`], behind typed helpers.
//!
//! ```text
//! c/stream                     next stream id (u64)
//! c/object                     next object id (u64)
//! s/<stream>/epoch             owner epoch (u64): every commit compares it
//! s/<stream>/start             log start offset (u64)
//! o/<object>                   object state (prepared | committed | marked), kind, size,
//!                              creation time, then the stream ranges it holds
//! ```
//! Ids in keys are fixed-width hex so that key order is numeric order.
//!
//! A stream's ranges live in the records of the objects that hold them, not under
//! the stream: an object-WAL window holds a range of every stream it carries, and one
//! record per window instead of one per stream and window keeps the metadata store
//! (all of it in memory, for the embedded one) and each commit 64 times smaller with
//! 64 streams. Removing a stream's range from a shared record is a read, modify and
//! compare-and-set of that record ([`super::object_ranges::remove_ranges`]).
//!
//! Earlier builds kept one `s/<stream>/r/<start offset>` record per range;
//! [`super::range_migration`] moves those into their objects' records.

use bytes::Bytes;

use crate::meta::{Compare, KeyValue, MetaError, MetaStore, Op, Txn};
use crate::object::ObjectId;

/// A stream's id; a Kafka partition maps to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64);

pub(super) fn epoch_key(stream: StreamId) -> Bytes {
    Bytes::from(format!("s/{:016x}/epoch", stream.0))
}

pub(super) fn start_key(stream: StreamId) -> Bytes {
    Bytes::from(format!("s/{:016x}/start", stream.0))
}

pub(super) fn object_key(object: ObjectId) -> Bytes {
    Bytes::from(format!("o/{:016x}", object.0))
}

pub(super) const OBJECTS_PREFIX: &[u8] = b"o/";

/// The object id in an `o/<id>` key.
pub(super) fn parse_object_key(key: &Bytes) -> Result<ObjectId, StoreMetaError> {
    std::str::from_utf8(&key[OBJECTS_PREFIX.len()..])
        .ok()
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .map(ObjectId)
        .ok_or_else(|| StoreMetaError::Malformed(key.clone()))
}

/// Whether `stream`'s epoch in the metadata is still `epoch` (not taken over, not
/// deleted).
pub(super) async fn holds_epoch(
    meta: &dyn MetaStore,
    stream: StreamId,
    epoch: u64,
) -> Result<bool, StoreMetaError> {
    let current = meta.get(&epoch_key(stream)).await?;
    Ok(current.is_some_and(|kv| kv.value == u64_value(epoch)))
}

pub(super) fn u64_value(value: u64) -> Bytes {
    Bytes::copy_from_slice(&value.to_le_bytes())
}

pub(super) fn parse_u64(kv: &KeyValue) -> Result<u64, StoreMetaError> {
    let raw: [u8; 8] = kv.value[..]
        .try_into()
        .map_err(|_| StoreMetaError::Malformed(kv.key.clone()))?;
    Ok(u64::from_le_bytes(raw))
}

/// A stream's range in one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRange {
    pub start_offset: u64,
    pub end_offset: u64,
    pub object: ObjectId,
    /// The stream's bytes in the object (for size-based retention).
    pub bytes: u64,
    /// Largest record timestamp in the range (for time-based retention).
    pub max_timestamp: i64,
}

/// Bytes of an object record before its ranges.
pub(super) const RECORD_HEADER_LEN: usize = 26;

/// Where an object is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectState {
    /// Id allocated, PUT may or may not have happened; not referenced by any stream.
    Prepared,
    /// Referenced by stream ranges.
    Committed,
    /// No range references it any more (its record lists none); deleted from the bucket after a grace
    /// period, so that reads that found it just before still complete.
    MarkedForDeletion { at_ms: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRecord {
    pub state: ObjectState,
    pub kind: crate::object::ObjectKind,
    pub size: u64,
    pub created_ms: u64,
}

impl ObjectRecord {
    /// The record without ranges (see [`super::object_ranges`] for the rest).
    pub(super) fn value(&self) -> Bytes {
        let (tag, marked_at) = match self.state {
            ObjectState::Prepared => (1, 0),
            ObjectState::Committed => (2, 0),
            ObjectState::MarkedForDeletion { at_ms } => (3, at_ms),
        };
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN);
        out.push(tag);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&marked_at.to_le_bytes());
        out.push(match self.kind {
            crate::object::ObjectKind::StreamSet => 1,
            crate::object::ObjectKind::Stream => 2,
        });
        Bytes::from(out)
    }

    pub(super) fn parse(kv: &KeyValue) -> Result<ObjectRecord, StoreMetaError> {
        let field = |at: usize| -> Result<u64, StoreMetaError> {
            let raw: [u8; 8] = kv
                .value
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| StoreMetaError::Malformed(kv.key.clone()))?;
            Ok(u64::from_le_bytes(raw))
        };
        let state = match kv.value.first() {
            Some(1) => ObjectState::Prepared,
            Some(2) => ObjectState::Committed,
            Some(3) => ObjectState::MarkedForDeletion { at_ms: field(17)? },
            _ => return Err(StoreMetaError::Malformed(kv.key.clone())),
        };
        // The kind byte came later: records without it were written by uploads, as
        // stream-set objects.
        let kind = match kv.value.get(25) {
            Some(2) => crate::object::ObjectKind::Stream,
            _ => crate::object::ObjectKind::StreamSet,
        };
        Ok(ObjectRecord {
            state,
            kind,
            size: field(1)?,
            created_ms: field(9)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreMetaError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("metadata record {0:?} is malformed")]
    Malformed(Bytes),
    #[error("counter {0} could not be advanced after many attempts")]
    Contended(&'static str),
}

/// Takes the next value of `counter` with compare-and-set, writing `records(id)` in
/// the same transaction, so an id never exists without what it names.
pub(super) async fn next_id(
    meta: &dyn MetaStore,
    counter: &'static str,
    records: impl Fn(u64) -> Vec<Op>,
) -> Result<u64, StoreMetaError> {
    next_ids(meta, counter, 1, records).await
}

/// Takes `count` consecutive values of `counter` (returns the first) with
/// compare-and-set, writing `records(id)` for each in the same transaction.
async fn next_ids(
    meta: &dyn MetaStore,
    counter: &'static str,
    count: u64,
    records: impl Fn(u64) -> Vec<Op>,
) -> Result<u64, StoreMetaError> {
    let key = Bytes::from_static(counter.as_bytes());
    for _ in 0..64 {
        let current = meta.get(&key).await?;
        let (first, compare) = match &current {
            Some(kv) => (
                parse_u64(kv)?,
                Compare::ModRevision(key.clone(), kv.mod_revision),
            ),
            None => (0, Compare::Absent(key.clone())),
        };
        let mut txn = Txn::new()
            .when(compare)
            .and_then(Op::put(key.clone(), u64_value(first + count)));
        for op in (first..first + count).flat_map(&records) {
            txn = txn.and_then(op);
        }
        if meta.txn(txn).await?.succeeded {
            return Ok(first);
        }
    }
    Err(StoreMetaError::Contended(counter))
}

/// Allocates `count` object ids and records each as prepared, in one transaction:
/// every id below the counter has its record (or had one, deleted with its object),
/// which is what lets garbage collection tell a leaked object from an upload in
/// flight. The records say nothing of the objects yet (kind stream-set, size 0):
/// the commit that references an object writes its whole record.
pub(super) async fn allocate_objects(
    meta: &dyn MetaStore,
    count: u64,
) -> Result<Vec<ObjectId>, StoreMetaError> {
    let record = ObjectRecord {
        state: ObjectState::Prepared,
        kind: crate::object::ObjectKind::StreamSet,
        size: 0,
        created_ms: now_ms(),
    };
    let first = next_ids(meta, OBJECT_COUNTER, count, |id| {
        vec![Op::put(object_key(ObjectId(id)), record.value())]
    })
    .await?;
    Ok((first..first + count).map(ObjectId).collect())
}

/// Object ids below this value were allocated (with their records) before the call.
pub(super) async fn object_id_watermark(meta: &dyn MetaStore) -> Result<ObjectId, StoreMetaError> {
    match meta.get(OBJECT_COUNTER.as_bytes()).await? {
        Some(kv) => Ok(ObjectId(parse_u64(&kv)?)),
        None => Ok(ObjectId(0)),
    }
}

pub(super) const OBJECT_COUNTER: &str = "c/object";

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
