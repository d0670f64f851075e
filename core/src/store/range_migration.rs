//! Moves range records of the earlier layout into their objects' records.
//!
//! Builds before the ranges moved kept one record per stream range,
//! `s/<stream>/r/<start offset>` (end offset, object id, bytes, largest timestamp;
//! 8 bytes each, little-endian). A store opened over such metadata moves them in
//! one transaction before anything else reads ranges.

use std::collections::BTreeMap;

use super::metadata::{self, ObjectRange, StoreMetaError, StreamId};
use super::object_ranges::{self, ObjectEntry};
use crate::meta::{Compare, KeyValue, MetaStore, Op, Txn};
use crate::object::ObjectId;

const STREAMS_PREFIX: &[u8] = b"s/";
const RANGES_INFIX: &[u8] = b"/r/";

/// Moves every legacy range record into its object's record; returns how many.
pub(super) async fn migrate_range_keys(meta: &dyn MetaStore) -> Result<usize, StoreMetaError> {
    let mut legacy: Vec<(KeyValue, StreamId, ObjectRange)> = Vec::new();
    for kv in meta.scan_prefix(STREAMS_PREFIX, 0).await? {
        if let Some((stream, range)) = parse_legacy(&kv)? {
            legacy.push((kv, stream, range));
        }
    }
    if legacy.is_empty() {
        return Ok(0);
    }
    let mut by_object: BTreeMap<ObjectId, Vec<(StreamId, ObjectRange)>> = BTreeMap::new();
    for (_, stream, range) in &legacy {
        by_object
            .entry(range.object)
            .or_default()
            .push((*stream, *range));
    }
    let mut txn = Txn::new();
    for (object, ranges) in by_object {
        let key = metadata::object_key(object);
        let Some(kv) = meta.get(&key).await? else {
            // Objects are deleted only once no range names them.
            return Err(StoreMetaError::Malformed(key));
        };
        let mut entry = ObjectEntry::parse(&kv)?;
        entry.ranges.extend(ranges);
        txn = txn
            .when(Compare::ModRevision(key.clone(), kv.mod_revision))
            .and_then(Op::put(
                key,
                object_ranges::record_value(&entry.record, &entry.ranges),
            ));
    }
    for (kv, _, _) in &legacy {
        txn = txn
            .when(Compare::ModRevision(kv.key.clone(), kv.mod_revision))
            .and_then(Op::Delete {
                key: kv.key.clone(),
            });
    }
    if !meta.txn(txn).await?.succeeded {
        return Err(StoreMetaError::Contended("legacy range records"));
    }
    tracing::info!(
        ranges = legacy.len(),
        "moved stream range records into their objects' records"
    );
    Ok(legacy.len())
}

/// The stream and range of an `s/<stream>/r/<start>` record; `None` for the
/// stream's other keys.
fn parse_legacy(kv: &KeyValue) -> Result<Option<(StreamId, ObjectRange)>, StoreMetaError> {
    let Some(at) = kv
        .key
        .windows(RANGES_INFIX.len())
        .position(|w| w == RANGES_INFIX)
    else {
        return Ok(None);
    };
    let malformed = || StoreMetaError::Malformed(kv.key.clone());
    let hex = |raw: &[u8]| {
        std::str::from_utf8(raw)
            .ok()
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
    };
    let stream = hex(&kv.key[STREAMS_PREFIX.len()..at]).ok_or_else(malformed)?;
    let start = hex(&kv.key[at + RANGES_INFIX.len()..]).ok_or_else(malformed)?;
    let field = |i: usize| -> Result<u64, StoreMetaError> {
        let raw: [u8; 8] = kv
            .value
            .get(i * 8..i * 8 + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(malformed)?;
        Ok(u64::from_le_bytes(raw))
    };
    let range = ObjectRange {
        start_offset: start,
        end_offset: field(0)?,
        object: ObjectId(field(1)?),
        bytes: field(2)?,
        max_timestamp: field(3)? as i64,
    };
    Ok(Some((StreamId(stream), range)))
}

/// A legacy range record, as the earlier builds wrote it (for tests).
#[cfg(test)]
pub(super) fn legacy_record(stream: StreamId, range: &ObjectRange) -> (bytes::Bytes, bytes::Bytes) {
    let key = format!("s/{:016x}/r/{:016x}", stream.0, range.start_offset);
    let mut value = Vec::with_capacity(32);
    value.extend_from_slice(&range.end_offset.to_le_bytes());
    value.extend_from_slice(&range.object.0.to_le_bytes());
    value.extend_from_slice(&range.bytes.to_le_bytes());
    value.extend_from_slice(&range.max_timestamp.to_le_bytes());
    (key.into(), value.into())
}
