use opendal::Operator;
use opendal::services::Memory;

use crate::config::{MemoryConfig, StorageKind};
use crate::error::BuildError;
use crate::profile::StoreProfile;

pub(super) fn build(_config: &MemoryConfig) -> Result<(Operator, StoreProfile), BuildError> {
    let operator = Operator::new(Memory::default()).map_err(|source| BuildError::Operator {
        kind: StorageKind::Memory,
        source,
    })?;
    Ok((operator, StoreProfile::LOCAL))
}
