//! The stream store's settings.

use std::path::PathBuf;
use std::time::Duration;

use super::ObjectWalOptions;
use crate::wal::LocalWalOptions;

/// Where appends become durable before they are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalMode {
    /// A local file with group-commit fsync (`wal_dir`); uploads follow later.
    #[default]
    Local,
    /// No local state: each window of appends is one stream-set object.
    Object(ObjectWalOptions),
}

/// Settings of the stream store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub wal_mode: WalMode,
    /// Directory of the local WAL (local mode only).
    pub wal_dir: PathBuf,
    pub wal: LocalWalOptions,
    /// Upload once this much acknowledged data waits (the target object size).
    pub upload_bytes: usize,
    /// Upload at least this often while data waits.
    pub upload_interval: Duration,
    /// Largest block inside an object: the unit of a ranged read.
    pub block_bytes: usize,
    /// Log cache size (acknowledged batches, uploaded or not).
    pub log_cache_bytes: usize,
    /// Appends wait while this much data is not yet uploaded.
    pub max_unuploaded_bytes: usize,
    /// Block cache size (verified blocks read from objects).
    pub block_cache_bytes: usize,
    /// A cold read fetches up to this many bytes of the stream's following blocks in
    /// the same request.
    pub read_ahead_bytes: usize,
    /// Storage reads for cold fetches in flight at once.
    pub cold_read_concurrency: usize,
    /// A stream with at least this much data in an upload gets a stream object of its
    /// own instead of a share of the stream-set object.
    pub stream_split_bytes: usize,
    /// Size a compacted stream object grows to.
    pub stream_object_bytes: u64,
    /// Stream-set objects holding less data than this are merged (object-WAL
    /// windows, uploads on a timer); those of a size-triggered upload are not.
    pub merge_below_bytes: u64,
    /// Size a merged stream-set object grows to (held in memory while written).
    pub stream_set_merge_bytes: u64,
    /// Consecutive small ranges of a stream needed before compaction merges them.
    pub compaction_min_ranges: usize,
    /// How often retention policies are applied, streams compacted and garbage
    /// collected.
    pub retention_interval: Duration,
    /// How long an unreferenced object stays in the bucket before deletion.
    pub deletion_grace: Duration,
}

impl StoreConfig {
    pub fn new(wal_dir: PathBuf) -> Self {
        StoreConfig {
            wal_mode: WalMode::Local,
            wal_dir,
            wal: LocalWalOptions::default(),
            upload_bytes: 16 << 20,
            upload_interval: Duration::from_secs(5),
            block_bytes: 1 << 20,
            log_cache_bytes: 256 << 20,
            max_unuploaded_bytes: 256 << 20,
            block_cache_bytes: 128 << 20,
            read_ahead_bytes: 4 << 20,
            cold_read_concurrency: 16,
            stream_split_bytes: 8 << 20,
            stream_object_bytes: 64 << 20,
            merge_below_bytes: 8 << 20,
            stream_set_merge_bytes: 32 << 20,
            compaction_min_ranges: 8,
            retention_interval: Duration::from_secs(60),
            deletion_grace: Duration::from_secs(60),
        }
    }
}
