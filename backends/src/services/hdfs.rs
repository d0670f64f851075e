use std::collections::HashMap;

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
    // hdfs-native's own failover loop retries an unreachable NameNode for minutes;
    // Strata's retry layer already retries with backoff and within its timeouts.
    let client_options = HashMap::from([
        (
            "dfs.client.failover.max.attempts".to_string(),
            "1".to_string(),
        ),
        (
            "dfs.client.failover.sleep.base.millis".to_string(),
            "100".to_string(),
        ),
        (
            "dfs.client.failover.sleep.max.millis".to_string(),
            "1000".to_string(),
        ),
    ]);
    let builder = HdfsNative::default()
        .name_node(&config.name_node)
        .root(&config.root)
        .options(client_options);
    let operator = Operator::new(builder).map_err(|source| BuildError::Operator {
        kind: StorageKind::Hdfs,
        source,
    })?;
    Ok((operator, StoreProfile::HDFS))
}
