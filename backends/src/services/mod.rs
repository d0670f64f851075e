//! One module per service family: config in, bare (unlayered) operator out.

#[cfg(feature = "fs")]
mod fs;
#[cfg(feature = "hdfs")]
mod hdfs;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "s3")]
mod s3;

use opendal::Operator;

use crate::config::{BackendConfig, Timeouts};
use crate::error::BuildError;
use crate::profile::StoreProfile;

/// Builds the service's operator and says what the store guarantees.
pub(crate) fn build(
    backend: &BackendConfig,
    #[allow(unused_variables)] timeouts: &Timeouts,
) -> Result<(Operator, StoreProfile), BuildError> {
    let kind = backend.kind();
    if !kind.is_compiled_in() {
        return Err(BuildError::NotCompiledIn {
            kind,
            feature: kind.feature(),
        });
    }
    match backend {
        #[cfg(feature = "fs")]
        BackendConfig::Fs(config) => fs::build(config),
        #[cfg(feature = "memory")]
        BackendConfig::Memory(config) => memory::build(config),
        #[cfg(feature = "s3")]
        BackendConfig::S3(config) => s3::build(config, timeouts),
        #[cfg(feature = "hdfs")]
        BackendConfig::Hdfs(config) => hdfs::build(config),
        #[allow(unreachable_patterns)]
        _ => Err(BuildError::NotCompiledIn {
            kind,
            feature: kind.feature(),
        }),
    }
}
