//! The metadata store: a small transactional key-value store with revisions,
//! compare-and-set, prefix watches and leases.
//!
//! The shape follows etcd's (revisions per commit, transactions of compares then
//! operations, leases that delete their keys when they lapse) so that an etcd
//! implementation fits the same trait for clusters. [`EmbeddedMetaStore`] is the
//! single-node implementation: a crash-safe log file in the data directory.
//!
//! Fencing: a stream's owner epoch is a key; every commit of a stream owner carries a
//! compare on that key, so a stale owner's commit fails as a whole.

mod embedded;
mod metered;
mod types;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use embedded::{EmbeddedMetaStore, EmbeddedOptions};
pub use metered::MeteredMetaStore;
pub use types::{
    Compare, KeyValue, LeaseId, Op, Txn, TxnOutcome, WatchEvent, WatchEventKind, WatchStream,
};

/// Why a metadata operation failed. A failed compare is not an error: it is a
/// [`TxnOutcome`] with `succeeded == false`.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata log {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("metadata log {path} is corrupt at byte {position}: {reason}")]
    Corrupt {
        path: String,
        position: usize,
        reason: String,
    },
    #[error("lease {0:?} does not exist or has expired")]
    LeaseNotFound(LeaseId),
    #[error("the metadata store is closed")]
    Closed,
    #[error(transparent)]
    Locked(#[from] crate::dir_lock::DirLockError),
    #[error(
        "metadata log sync failed ({0}); the store refuses every operation until it is \
         reopened from what the log holds"
    )]
    SyncFailed(String),
}

/// A transactional key-value store with revisions, watches and leases.
///
/// Every successful write is durable when its future completes, and gets a revision
/// larger than every earlier one.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// The current value of `key`.
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, MetaError>;

    /// Keys starting with `prefix`, in key order, at most `limit` (0 = all).
    async fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<KeyValue>, MetaError>;

    /// Applies `txn.success` if every compare holds, else `txn.failure`, atomically.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetaError>;

    /// Changes to keys under `prefix` from now on.
    async fn watch(&self, prefix: &[u8]) -> Result<WatchStream, MetaError>;

    /// A lease that lapses `ttl` after its last keep-alive, deleting its keys.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetaError>;

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetaError>;

    /// Ends the lease now, deleting its keys.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetaError>;

    /// Unconditional put; returns the commit's revision.
    async fn put(&self, key: Bytes, value: Bytes) -> Result<u64, MetaError> {
        let outcome = self.txn(Txn::new().and_then(Op::put(key, value))).await?;
        Ok(outcome.revision)
    }

    /// Unconditional delete; returns the commit's revision.
    async fn delete(&self, key: Bytes) -> Result<u64, MetaError> {
        let outcome = self.txn(Txn::new().and_then(Op::Delete { key })).await?;
        Ok(outcome.revision)
    }
}

#[cfg(test)]
mod tests;
