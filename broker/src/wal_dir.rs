//! The local WAL's directory, kept from one start to the next.
//!
//! Acknowledged records not yet uploaded exist only in the WAL's segments, and a
//! store replays the segments of the directory it is given. A broker restarted with
//! `wal.dir` pointing somewhere else would start with an empty WAL and never upload
//! what the old one held. So the directory in use is recorded in the metadata store,
//! and a start with another one is refused while the recorded one still holds
//! segments: moving its `*.wal` files into the new directory is the way to move it
//! (they are replayed from there).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use strata_core::meta::{MetaError, MetaStore};

const WAL_DIR_KEY: &str = "k/wal-dir";

#[derive(Debug, thiserror::Error)]
pub enum WalDirError {
    #[error(
        "wal.dir is {configured} but the WAL last used {recorded}, which still holds segments \
         (acknowledged records may not be uploaded yet): move its *.wal files into \
         {configured}, or set wal.dir back to {recorded}"
    )]
    Moved {
        configured: String,
        recorded: String,
    },
    #[error("cannot read the WAL directory {dir}: {source}")]
    Read { dir: String, source: std::io::Error },
    #[error("recording the WAL directory: {0}")]
    Meta(#[from] MetaError),
}

/// Records `wal_dir` as the local WAL's directory, unless the one recorded before
/// (`<data_dir>/wal` when none is) differs and still holds segments.
pub async fn claim(
    meta: &dyn MetaStore,
    data_dir: &Path,
    wal_dir: &Path,
) -> Result<(), WalDirError> {
    let configured = absolute(wal_dir);
    let stored = meta.get(WAL_DIR_KEY.as_bytes()).await?;
    let recorded = match &stored {
        Some(kv) => absolute(Path::new(&*String::from_utf8_lossy(&kv.value))),
        None => absolute(&data_dir.join("wal")),
    };
    if recorded == configured {
        if stored.is_none() {
            record(meta, &configured).await?;
        }
        return Ok(());
    }
    if holds_segments(&recorded)? {
        return Err(WalDirError::Moved {
            configured: configured.display().to_string(),
            recorded: recorded.display().to_string(),
        });
    }
    tracing::info!(from = %recorded.display(), to = %configured.display(), "the local WAL moved");
    record(meta, &configured).await
}

async fn record(meta: &dyn MetaStore, dir: &Path) -> Result<(), WalDirError> {
    let value = Bytes::from(dir.to_string_lossy().into_owned());
    meta.put(Bytes::from_static(WAL_DIR_KEY.as_bytes()), value)
        .await?;
    Ok(())
}

/// `path` made absolute against the working directory (as the store will open it),
/// symbolic links resolved where it exists.
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Whether `dir` has a WAL segment (a missing directory has none).
fn holds_segments(dir: &Path) -> Result<bool, WalDirError> {
    let read_error = |source| WalDirError::Read {
        dir: dir.display().to_string(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(read_error(err)),
    };
    for entry in entries {
        let path = entry.map_err(read_error)?.path();
        if path.extension().is_some_and(|ext| ext == "wal") {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strata_core::meta::{EmbeddedMetaStore, EmbeddedOptions};

    use super::*;

    async fn meta(dir: &Path) -> Arc<dyn MetaStore> {
        Arc::new(
            EmbeddedMetaStore::open(&dir.join("meta"), EmbeddedOptions::default())
                .await
                .expect("meta"),
        )
    }

    #[tokio::test]
    async fn a_wal_with_segments_is_not_left_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let meta = meta(dir.path()).await;
        let default_wal = data_dir.join("wal");
        claim(meta.as_ref(), &data_dir, &default_wal)
            .await
            .expect("the default, first start");
        std::fs::create_dir_all(&default_wal).expect("mkdir");
        std::fs::write(default_wal.join("00000000000000000000.wal"), b"records").expect("segment");

        let elsewhere = dir.path().join("nvme/wal");
        let err = claim(meta.as_ref(), &data_dir, &elsewhere)
            .await
            .expect_err("segments left in the old directory");
        let message = err.to_string();
        assert!(
            message.contains(&*default_wal.to_string_lossy())
                && message.contains("move its *.wal files"),
            "{message}"
        );
        claim(meta.as_ref(), &data_dir, &default_wal)
            .await
            .expect("back to the recorded directory");

        // Moved as the message says: the new directory is recorded.
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        std::fs::rename(
            default_wal.join("00000000000000000000.wal"),
            elsewhere.join("00000000000000000000.wal"),
        )
        .expect("move");
        claim(meta.as_ref(), &data_dir, &elsewhere)
            .await
            .expect("the moved WAL");
        let err = claim(meta.as_ref(), &data_dir, &default_wal)
            .await
            .expect_err("the default now leaves the moved WAL behind");
        assert!(
            err.to_string().contains(&*elsewhere.to_string_lossy()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_empty_or_missing_old_directory_lets_the_wal_move() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let meta = meta(dir.path()).await;
        std::fs::create_dir_all(data_dir.join("wal")).expect("mkdir");
        claim(meta.as_ref(), &data_dir, &dir.path().join("new-wal"))
            .await
            .expect("nothing to leave behind");
    }
}
