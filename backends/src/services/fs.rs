use opendal::Operator;
use opendal::services::Fs;

use crate::config::{FsConfig, StorageKind};
use crate::error::BuildError;
use crate::profile::StoreProfile;

pub(super) fn build(config: &FsConfig) -> Result<(Operator, StoreProfile), BuildError> {
    let local_root = |source| BuildError::LocalRoot {
        path: config.root.clone(),
        source,
    };
    std::fs::create_dir_all(&config.root).map_err(local_root)?;
    // OpenDAL wants an absolute root; a relative one is taken from the working directory.
    let root = std::fs::canonicalize(&config.root).map_err(local_root)?;
    let builder = Fs::default().root(&root.to_string_lossy());
    let operator = Operator::new(builder).map_err(|source| BuildError::Operator {
        kind: StorageKind::Fs,
        source,
    })?;
    Ok((operator, StoreProfile::LOCAL))
}
