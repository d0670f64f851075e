//! `[wal]` and `[cache]`: how the stream store under the broker is set up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use strata_core::store::{ObjectWalOptions, StoreConfig, WalMode};

/// Where produced data becomes durable before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalKind {
    /// Segmented files in `<data_dir>/wal` with group-commit fsync.
    Local,
    /// One stream-set object per window; no local state.
    Object,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalSection {
    pub kind: WalKind,
    /// Local WAL: its directory, `<data_dir>/wal` when unset. On a device of its own
    /// its fsyncs do not queue behind the object and metadata writes of the data
    /// directory's disk.
    pub dir: Option<PathBuf>,
    /// Object WAL: how long appends gather before they are written.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Object WAL: a window is written early once it holds this much.
    pub window_bytes: usize,
    /// Upload once this much acknowledged data waits (local WAL).
    pub upload_bytes: usize,
    /// Upload at least this often while data waits (local WAL).
    #[serde(with = "humantime_serde")]
    pub upload_interval: Duration,
    /// Produce waits while this much acknowledged data is not yet uploaded.
    pub max_unuploaded_bytes: usize,
    /// How often retention (time and size) is applied, small objects compacted and
    /// unreferenced objects collected.
    #[serde(with = "humantime_serde")]
    pub retention_check_interval: Duration,
}

impl Default for WalSection {
    fn default() -> Self {
        WalSection {
            kind: WalKind::Local,
            dir: None,
            window: Duration::from_millis(50),
            window_bytes: 8 << 20,
            upload_bytes: 16 << 20,
            upload_interval: Duration::from_secs(5),
            max_unuploaded_bytes: 128 << 20,
            retention_check_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Recent data served to tail readers without I/O.
    pub log_bytes: usize,
    /// Verified blocks read from objects.
    pub block_bytes: usize,
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection {
            log_bytes: 128 << 20,
            block_bytes: 64 << 20,
        }
    }
}

/// How produced data becomes durable, for the startup line: `local WAL in <dir>`,
/// or the object WAL with its window.
pub fn describe_wal(config: &StoreConfig) -> String {
    match config.wal_mode {
        WalMode::Local => format!("local WAL in {}", config.wal_dir.display()),
        WalMode::Object(options) => format!(
            "object WAL ({:?} windows, written early at {} MiB)",
            options.window,
            options.max_bytes as f64 / f64::from(1 << 20)
        ),
    }
}

/// The stream store's settings from the config sections.
pub fn store_config(data_dir: &Path, wal: &WalSection, cache: &CacheSection) -> StoreConfig {
    let wal_dir = wal.dir.clone().unwrap_or_else(|| data_dir.join("wal"));
    let mut config = StoreConfig::new(wal_dir);
    config.wal_mode = match wal.kind {
        WalKind::Local => WalMode::Local,
        WalKind::Object => WalMode::Object(ObjectWalOptions {
            window: wal.window,
            max_bytes: wal.window_bytes,
        }),
    };
    config.upload_bytes = wal.upload_bytes;
    config.upload_interval = wal.upload_interval;
    config.max_unuploaded_bytes = wal.max_unuploaded_bytes;
    config.retention_interval = wal.retention_check_interval;
    config.log_cache_bytes = cache.log_bytes;
    config.block_cache_bytes = cache.block_bytes;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_line_says_which_wal_makes_data_durable() {
        let cache = CacheSection::default();
        let mut wal = WalSection::default();
        let local = store_config(Path::new("/var/lib/strata"), &wal, &cache);
        assert_eq!(describe_wal(&local), "local WAL in /var/lib/strata/wal");
        wal.kind = WalKind::Object;
        let object = store_config(Path::new("/var/lib/strata"), &wal, &cache);
        assert_eq!(
            describe_wal(&object),
            "object WAL (50ms windows, written early at 8 MiB)"
        );
    }

    #[test]
    fn the_wal_lives_in_the_data_directory_unless_given_its_own() {
        let cache = CacheSection::default();
        let mut wal = WalSection::default();
        let config = store_config(Path::new("/var/lib/strata"), &wal, &cache);
        assert_eq!(config.wal_dir, Path::new("/var/lib/strata/wal"));
        wal.dir = Some(PathBuf::from("/mnt/nvme/strata-wal"));
        let config = store_config(Path::new("/var/lib/strata"), &wal, &cache);
        assert_eq!(config.wal_dir, Path::new("/mnt/nvme/strata-wal"));
    }
}
