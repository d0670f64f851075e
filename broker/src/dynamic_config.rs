//! Broker settings changed at run time through AlterConfigs: topic defaults that
//! take effect at once and survive restarts (kept in the metadata store).

use std::collections::BTreeMap;

use bytes::Bytes;
use strata_core::meta::{MetaError, MetaStore};

use crate::config::BrokerSection;
use crate::topics::config::InvalidConfig;

const KEY: &str = "k/broker-config";

/// Keys AlterConfigs may change on the broker.
pub const DYNAMIC_KEYS: &[&str] = &[
    "log.retention.ms",
    "log.retention.bytes",
    "message.max.bytes",
    "num.partitions",
];

fn invalid(key: &str, value: &str, reason: &str) -> InvalidConfig {
    InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Applies `entries` to `section`, refusing unknown keys and bad values.
pub fn apply(
    section: &mut BrokerSection,
    entries: &BTreeMap<String, String>,
) -> Result<(), InvalidConfig> {
    for (key, value) in entries {
        let number = || {
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid(key, value, "expected an integer"))
        };
        match key.as_str() {
            "log.retention.ms" => section.log_retention_ms = number()?.max(-1),
            "log.retention.bytes" => section.log_retention_bytes = number()?.max(-1),
            "message.max.bytes" => {
                section.message_max_bytes = i32::try_from(number()?)
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| invalid(key, value, "expected 1 to 2147483647"))?;
            }
            "num.partitions" => {
                section.num_partitions = i32::try_from(number()?)
                    .ok()
                    .filter(|v| (1..=10_000).contains(v))
                    .ok_or_else(|| invalid(key, value, "expected 1 to 10000"))?;
            }
            _ => {
                return Err(invalid(
                    key,
                    value,
                    "not a dynamic broker config (supported: log.retention.ms, log.retention.bytes, message.max.bytes, num.partitions)",
                ));
            }
        }
    }
    Ok(())
}

pub async fn load(meta: &dyn MetaStore) -> Result<BTreeMap<String, String>, MetaError> {
    Ok(meta
        .get(KEY.as_bytes())
        .await?
        .and_then(|kv| serde_json::from_slice(&kv.value).ok())
        .unwrap_or_default())
}

pub async fn store(
    meta: &dyn MetaStore,
    entries: &BTreeMap<String, String>,
) -> Result<(), MetaError> {
    let value = serde_json::to_vec(entries).unwrap_or_default();
    meta.put(Bytes::from_static(KEY.as_bytes()), Bytes::from(value))
        .await
        .map(drop)
}

/// `(key, value)` of every broker setting DescribeConfigs shows.
pub fn describe(section: &BrokerSection) -> Vec<(&'static str, String, bool)> {
    vec![
        ("broker.id", section.node_id.to_string(), true),
        (
            "auto.create.topics.enable",
            section.auto_create_topics.to_string(),
            true,
        ),
        ("num.partitions", section.num_partitions.to_string(), false),
        (
            "message.max.bytes",
            section.message_max_bytes.to_string(),
            false,
        ),
        (
            "log.retention.ms",
            section.log_retention_ms.to_string(),
            false,
        ),
        (
            "log.retention.bytes",
            section.log_retention_bytes.to_string(),
            false,
        ),
        (
            "socket.request.max.bytes",
            section.socket_request_max_bytes.to_string(),
            true,
        ),
        (
            "group.initial.rebalance.delay.ms",
            section
                .group_initial_rebalance_delay
                .as_millis()
                .to_string(),
            true,
        ),
        ("log.cleanup.policy", "delete".to_string(), true),
        ("default.replication.factor", "1".to_string(), true),
    ]
}
