//! Write-ahead logs: where an append becomes durable before it is acknowledged.
//!
//! Built so far: the local WAL ([`LocalWal`]), segmented files with group-commit
//! fsync. The object WAL (appends gathered into one stream-set object per window)
//! comes with the stream store.

mod local;
mod segment;

pub use local::{LocalWal, LocalWalOptions, Lsn, RecoveredRecord, WalError};
