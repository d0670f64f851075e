//! Stream ranges kept in their objects' records.
//!
//! An object's record (`o/<object>`) is its header ([`ObjectRecord`]) followed by
//! the ranges of the streams it holds, 40 bytes each: stream id, start offset, end
//! offset, the stream's bytes in the object, largest timestamp (little-endian). A
//! record whose ranges are all gone is unreferenced: garbage collection marks it,
//! then deletes the object.
//!
//! Several streams share a stream-set object's record, and each stream's retention
//! and compaction run on their own, so a range leaves a record by a read of it and a
//! write conditional on its revision ([`remove_ranges`]); a transaction that lost
//! such a race is refused and its caller reads again.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

use super::metadata::{
    self, ObjectRange, ObjectRecord, RECORD_HEADER_LEN, StoreMetaError, StreamId,
};
use super::{OpenStream, StoreError};
use crate::meta::{Compare, KeyValue, MetaStore, Op, Txn};
use crate::object::ObjectId;

const RANGE_LEN: usize = 40;

/// An object's record as read, with the ranges it holds and its revision.
#[derive(Debug, Clone)]
pub(super) struct ObjectEntry {
    pub id: ObjectId,
    pub record: ObjectRecord,
    pub ranges: Vec<(StreamId, ObjectRange)>,
    pub mod_revision: u64,
}

impl ObjectEntry {
    pub(super) fn parse(kv: &KeyValue) -> Result<ObjectEntry, StoreMetaError> {
        let id = metadata::parse_object_key(&kv.key)?;
        let record = ObjectRecord::parse(kv)?;
        let listed = kv.value.get(RECORD_HEADER_LEN..).unwrap_or_default();
        if listed.len() % RANGE_LEN != 0 {
            return Err(StoreMetaError::Malformed(kv.key.clone()));
        }
        let ranges = listed
            .chunks_exact(RANGE_LEN)
            .map(|raw| {
                let field = |i: usize| {
                    let mut word = [0; 8];
                    word.copy_from_slice(&raw[i * 8..i * 8 + 8]);
                    word
                };
                let range = ObjectRange {
                    start_offset: u64::from_le_bytes(field(1)),
                    end_offset: u64::from_le_bytes(field(2)),
                    object: id,
                    bytes: u64::from_le_bytes(field(3)),
                    max_timestamp: i64::from_le_bytes(field(4)),
                };
                (StreamId(u64::from_le_bytes(field(0))), range)
            })
            .collect();
        Ok(ObjectEntry {
            id,
            record,
            ranges,
            mod_revision: kv.mod_revision,
        })
    }

    /// Whether any stream range still points into the object.
    pub(super) fn is_referenced(&self) -> bool {
        !self.ranges.is_empty()
    }
}

/// An object record's value: `record`, then `ranges` (their `object` is the record's).
pub(super) fn record_value(record: &ObjectRecord, ranges: &[(StreamId, ObjectRange)]) -> Bytes {
    let header = record.value();
    let mut out = Vec::with_capacity(header.len() + ranges.len() * RANGE_LEN);
    out.extend_from_slice(&header);
    for (stream, range) in ranges {
        out.extend_from_slice(&stream.0.to_le_bytes());
        out.extend_from_slice(&range.start_offset.to_le_bytes());
        out.extend_from_slice(&range.end_offset.to_le_bytes());
        out.extend_from_slice(&range.bytes.to_le_bytes());
        out.extend_from_slice(&range.max_timestamp.to_le_bytes());
    }
    Bytes::from(out)
}

/// Every object record.
pub(super) async fn objects(meta: &dyn MetaStore) -> Result<Vec<ObjectEntry>, StoreMetaError> {
    meta.scan_prefix(metadata::OBJECTS_PREFIX, 0)
        .await?
        .iter()
        .map(ObjectEntry::parse)
        .collect()
}

/// The ranges of each of `streams`, by start offset, from one read of every object
/// record. Only the records that list one of them are parsed.
pub(super) async fn ranges_of(
    meta: &dyn MetaStore,
    streams: &HashSet<StreamId>,
) -> Result<HashMap<StreamId, BTreeMap<u64, ObjectRange>>, StoreMetaError> {
    let lists_one = |range: &[u8]| {
        range
            .first_chunk::<8>()
            .is_some_and(|id| streams.contains(&StreamId(u64::from_le_bytes(*id))))
    };
    let mut ranges: HashMap<StreamId, BTreeMap<u64, ObjectRange>> = HashMap::new();
    for kv in meta.scan_prefix(metadata::OBJECTS_PREFIX, 0).await? {
        let listed = kv.value.get(RECORD_HEADER_LEN..).unwrap_or_default();
        if !listed.chunks(RANGE_LEN).any(lists_one) {
            continue;
        }
        for (owner, range) in ObjectEntry::parse(&kv)?.ranges {
            if streams.contains(&owner) {
                ranges
                    .entry(owner)
                    .or_default()
                    .insert(range.start_offset, range);
            }
        }
    }
    Ok(ranges)
}

/// The conditions and writes that take ranges out of their objects' records.
#[derive(Debug, Default)]
pub(super) struct RecordEdits {
    compares: Vec<Compare>,
    puts: Vec<Op>,
}

impl RecordEdits {
    /// `txn` with these edits: each record is written only if unchanged since read.
    pub(super) fn into_txn(self, mut txn: Txn) -> Txn {
        for compare in self.compares {
            txn = txn.when(compare);
        }
        for put in self.puts {
            txn = txn.and_then(put);
        }
        txn
    }
}

/// Reads the records of the objects `removed` point into and returns the edits
/// that take those ranges out. `None` when a range is no longer in its object's
/// record as given (the stream's ranges changed since they were read).
pub(super) async fn remove_ranges(
    meta: &dyn MetaStore,
    removed: Vec<(StreamId, ObjectRange)>,
) -> Result<Option<RecordEdits>, StoreMetaError> {
    let mut by_object: HashMap<ObjectId, Vec<(StreamId, ObjectRange)>> = HashMap::new();
    for (stream, range) in removed {
        by_object
            .entry(range.object)
            .or_default()
            .push((stream, range));
    }
    let mut edits = RecordEdits::default();
    for (object, gone) in by_object {
        let key = metadata::object_key(object);
        let Some(kv) = meta.get(&key).await? else {
            return Ok(None);
        };
        let mut entry = ObjectEntry::parse(&kv)?;
        for held in &gone {
            let Some(at) = entry.ranges.iter().position(|listed| listed == held) else {
                return Ok(None);
            };
            entry.ranges.swap_remove(at);
        }
        edits
            .compares
            .push(Compare::ModRevision(key.clone(), entry.mod_revision));
        edits
            .puts
            .push(Op::put(key, record_value(&entry.record, &entry.ranges)));
    }
    Ok(Some(edits))
}

/// Applies a transaction of `open`'s that takes `removed` out of their objects'
/// records: `stream_txn` builds the stream's own part (its epoch compared, its
/// other keys written). A refusal while the epoch is still ours means another
/// stream rewrote a shared record meanwhile: the records are read again and the
/// transaction retried.
pub(super) async fn commit_removal(
    meta: &dyn MetaStore,
    open: &OpenStream,
    removed: &[ObjectRange],
    stream_txn: impl Fn() -> Txn,
) -> Result<(), StoreError> {
    let fenced = || StoreError::Fenced {
        stream: open.id,
        epoch: open.epoch,
    };
    for _ in 0..MAX_ATTEMPTS {
        let Some(edits) =
            remove_ranges(meta, removed.iter().map(|r| (open.id, *r)).collect()).await?
        else {
            // Under the stream's maintenance lock only a newer owner changes its ranges.
            if metadata::holds_epoch(meta, open.id, open.epoch).await? {
                return Err(StoreError::Task(format!(
                    "stream {} has ranges its objects' records do not list",
                    open.id.0
                )));
            }
            return Err(fenced());
        };
        if meta.txn(edits.into_txn(stream_txn())).await?.succeeded {
            return Ok(());
        }
        if !metadata::holds_epoch(meta, open.id, open.epoch).await? {
            return Err(fenced());
        }
    }
    Err(StoreMetaError::Contended("object records").into())
}

/// Attempts of a transaction that rewrites shared records, against other streams'
/// edits of the same records.
pub(super) const MAX_ATTEMPTS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::ObjectKind;

    fn range(start: u64, end: u64, object: u64) -> ObjectRange {
        ObjectRange {
            start_offset: start,
            end_offset: end,
            object: ObjectId(object),
            bytes: (end - start) * 1024,
            max_timestamp: -1 - start as i64,
        }
    }

    fn kv(key: Bytes, value: Bytes) -> KeyValue {
        KeyValue {
            key,
            value,
            create_revision: 1,
            mod_revision: 7,
            version: 1,
            lease: None,
        }
    }

    #[test]
    fn a_record_round_trips_with_its_ranges_and_a_bare_header_holds_none() {
        let record = ObjectRecord {
            state: metadata::ObjectState::Committed,
            kind: ObjectKind::StreamSet,
            size: 4 << 20,
            created_ms: 1_700_000_000_000,
        };
        let ranges = vec![
            (StreamId(3), range(0, 10, 9)),
            (StreamId(u64::MAX), range(u64::MAX - 5, u64::MAX, 9)),
        ];
        let key = metadata::object_key(ObjectId(9));
        let entry =
            ObjectEntry::parse(&kv(key.clone(), record_value(&record, &ranges))).expect("parses");
        assert_eq!(entry.id, ObjectId(9));
        assert_eq!(entry.record, record);
        assert_eq!(entry.ranges, ranges);
        assert_eq!(entry.mod_revision, 7);

        let bare = ObjectEntry::parse(&kv(key.clone(), record.value())).expect("parses");
        assert!(!bare.is_referenced());

        let mut torn = record_value(&record, &ranges).to_vec();
        torn.pop();
        assert!(matches!(
            ObjectEntry::parse(&kv(key, Bytes::from(torn))),
            Err(StoreMetaError::Malformed(_))
        ));
    }
}
