//! Write-ahead logs: where an append becomes durable before it is acknowledged.
//!
//! The local WAL ([`LocalWal`]): segmented files with group-commit fsync. The object
//! WAL (appends gathered into one stream-set object per window) is the store's
//! (`store::object_wal`): it writes objects, not files.

mod local;
mod segment;

pub use local::{LocalWal, LocalWalOptions, Lsn, RecoveredRecord, WalError};
