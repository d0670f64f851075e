//! What can go wrong in the stream store, with the object, stream or record it
//! concerns.

use super::{StoreMetaError, StreamId};
use crate::batch::BatchError;
use crate::object::FormatError;
use crate::wal::{Lsn, WalError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Meta(#[from] StoreMetaError),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("object {key}: {source}")]
    Format { key: String, source: FormatError },
    #[error("object store {operation} {key}: {source}")]
    Storage {
        operation: &'static str,
        key: String,
        source: Box<opendal::Error>,
    },
    #[error("stream {0:?} is not open on this store")]
    StreamNotOpen(StreamId),
    #[error("stream {0:?} is being closed on this store")]
    StreamClosing(StreamId),
    #[error("stream {0:?} does not exist (never created, or deleted)")]
    UnknownStream(StreamId),
    #[error("stream {stream:?} was taken over by a newer owner (our epoch {epoch})")]
    Fenced { stream: StreamId, epoch: u64 },
    #[error("offset {offset} of stream {stream:?} is outside {start}..{end}")]
    OffsetOutOfRange {
        stream: StreamId,
        offset: u64,
        start: u64,
        end: u64,
    },
    #[error("object WAL write failed: {0}")]
    ObjectWal(String),
    #[error("a background task of the store failed: {0}")]
    Task(String),
    #[error("WAL record {lsn:?} is malformed")]
    MalformedWalRecord { lsn: Lsn },
    #[error("the store is closing or closed")]
    Closed,
}

impl StoreError {
    pub(super) fn storage(
        operation: &'static str,
        key: &str,
    ) -> impl FnOnce(opendal::Error) -> StoreError + use<> {
        let key = key.to_string();
        move |source| StoreError::Storage {
            operation,
            key,
            source: Box::new(source),
        }
    }
}

impl From<crate::meta::MetaError> for StoreError {
    fn from(err: crate::meta::MetaError) -> Self {
        StoreError::Meta(StoreMetaError::Meta(err))
    }
}
