use opendal::Operator;
use opendal::services::HdfsNative;

use crate::config::{HdfsConfig, StorageKind};
use crate::error::BuildError;
use crate::profile::StoreProfile;

pub(super) fn build(config: &HdfsConfig) -> Result<(Operator, StoreProfile), BuildError> {
    if let Some(user) = &config.user {
        let actual = std::env::var("HADOOP_USER_NAME").ok();
        if actual.as_deref() != Some(user.as_str()) {
            return Err(BuildError::HdfsUser {
                user: user.clone(),
                actual: actual.map_or_else(|| "unset".to_string(), |v| format!("{v:?}")),
            });
        }
    }
    let builder = HdfsNative::default()
        .name_node(&config.name_node)
        .root(&config.root);
    let operator = Operator::new(builder).map_err(|source| BuildError::Operator {
        kind: StorageKind::Hdfs,
        source,
    })?;
    Ok((operator, StoreProfile::HDFS))
}
