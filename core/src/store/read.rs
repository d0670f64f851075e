//! Reads of data no longer in the log cache: object index, then a ranged GET of the
//! blocks that hold the offsets, each verified against its checksum.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::metadata::{self, ObjectRecord, StreamId};
use super::{Inner, StoreError};
use crate::batch::RecordBatch;
use crate::object::{FOOTER_LEN, Footer, Index, ObjectId, object_key};

/// Bytes fetched from an object's end on first read: the footer and, for objects
/// of a few hundred blocks, the whole index, in one request.
const TAIL_BYTES: u64 = 64 * 1024;

/// Decoded indexes of recently read objects.
pub(super) struct IndexCache {
    capacity: usize,
    entries: Mutex<HashMap<ObjectId, Arc<Index>>>,
}

impl IndexCache {
    pub(super) fn new(capacity: usize) -> Self {
        IndexCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, id: ObjectId) -> Option<Arc<Index>> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn insert(&self, id: ObjectId, index: Arc<Index>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            // Indexes are small and re-read cheaply; a full reset keeps this simple.
            entries.clear();
        }
        entries.insert(id, index);
    }
}

pub(super) async fn from_objects(
    inner: &Inner,
    stream: StreamId,
    offset: u64,
    max_bytes: usize,
) -> Result<Vec<RecordBatch>, StoreError> {
    let open = inner
        .open_stream_state(stream)
        .ok_or(StoreError::StreamNotOpen(stream))?;
    let range = {
        let state = open.lock_state();
        state
            .ranges
            .range(..=offset)
            .next_back()
            .map(|(_, r)| *r)
            .filter(|r| offset < r.end_offset)
    };
    let Some(range) = range else {
        let (start, end) = (
            open.lock_state().start_offset,
            inner.lock_cache().acked_end(stream).unwrap_or(0),
        );
        return Err(StoreError::OffsetOutOfRange {
            stream,
            offset,
            start,
            end,
        });
    };
    let index = load_index(inner, range.object).await?;
    let key = object_key(range.object);
    let mut out = Vec::new();
    let mut bytes = 0;
    for entry in index
        .blocks_of(stream.0)
        .iter()
        .filter(|e| e.end_offset > offset)
    {
        if !out.is_empty() && bytes >= max_bytes {
            break;
        }
        let data = inner
            .storage
            .operator()
            .read_with(&key)
            .range(entry.position..entry.position + u64::from(entry.len))
            .await
            .map_err(StoreError::storage("read", &key))?
            .to_bytes();
        entry.verify(&data).map_err(|source| StoreError::Format {
            key: key.clone(),
            source,
        })?;
        for batch in RecordBatch::split_stored(data)? {
            if batch.end_offset() <= offset {
                continue;
            }
            if !out.is_empty() && bytes + batch.len() > max_bytes {
                return Ok(out);
            }
            bytes += batch.len();
            out.push(batch);
        }
    }
    Ok(out)
}

async fn load_index(inner: &Inner, id: ObjectId) -> Result<Arc<Index>, StoreError> {
    if let Some(index) = inner.indexes.get(id) {
        return Ok(index);
    }
    let key = object_key(id);
    let record = inner
        .meta
        .get(&metadata::object_key(id))
        .await?
        .ok_or_else(|| metadata::StoreMetaError::Malformed(metadata::object_key(id)))?;
    let size = ObjectRecord::parse(&record)?.size;
    let read = |start: u64, end: u64| {
        let key = key.clone();
        async move {
            inner
                .storage
                .operator()
                .read_with(&key)
                .range(start..end)
                .await
                .map(|buffer| buffer.to_bytes())
                .map_err(StoreError::storage("read", &key))
        }
    };
    let format = |source| StoreError::Format {
        key: key.clone(),
        source,
    };
    let tail_start = size.saturating_sub(TAIL_BYTES.max(FOOTER_LEN as u64));
    let tail = read(tail_start, size).await?;
    let footer = Footer::decode(&tail, size).map_err(format)?;
    let index_end = footer.index_position + u64::from(footer.index_len);
    let index_bytes = if footer.index_position >= tail_start {
        let from = (footer.index_position - tail_start) as usize;
        tail.slice(from..from + footer.index_len as usize)
    } else {
        read(footer.index_position, index_end).await?
    };
    let index = Arc::new(Index::decode(&index_bytes, &footer).map_err(format)?);
    inner.indexes.insert(id, index.clone());
    Ok(index)
}
