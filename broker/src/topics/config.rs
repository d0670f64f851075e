//! Topic configs: which keys Strata honours, their defaults and their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_core::store::RetentionPolicy;

use crate::config::BrokerSection;

/// How a record's timestamp is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// A rejected config entry, as the client will read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}={value}: {reason}")]
pub struct InvalidConfig {
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// Keys accepted and stored but without effect on an object-store log: segments,
/// replicas and flushing are the object store's business.
const ACCEPTED_WITHOUT_EFFECT: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "segment.index.bytes",
    "segment.jitter.ms",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "file.delete.delay.ms",
    "preallocate",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
    "message.downconversion.enable",
    "local.retention.ms",
    "local.retention.bytes",
];

/// Every topic key Strata knows, for DescribeConfigs.
pub const KNOWN_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "max.message.bytes",
    "message.timestamp.type",
    "retention.bytes",
    "retention.ms",
];

/// A topic's explicit overrides (what was set), validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicOverrides(pub BTreeMap<String, String>);

/// The values in force for a topic: its overrides over the broker's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveConfig {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: i32,
    pub timestamp_type: TimestampType,
}

impl EffectiveConfig {
    pub fn retention(&self) -> RetentionPolicy {
        RetentionPolicy {
            max_age: u64::try_from(self.retention_ms)
                .ok()
                .map(std::time::Duration::from_millis),
            max_bytes: u64::try_from(self.retention_bytes).ok(),
        }
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> InvalidConfig {
    InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse_i64(key: &str, value: &str, min: i64) -> Result<i64, InvalidConfig> {
    let parsed: i64 = value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "expected an integer"))?;
    if parsed < min {
        return Err(invalid(key, value, format!("must be at least {min}")));
    }
    Ok(parsed)
}

/// Checks one entry; `Ok` means it may be stored.
pub fn validate(key: &str, value: &str) -> Result<(), InvalidConfig> {
    match key {
        "retention.ms" | "retention.bytes" => parse_i64(key, value, -1).map(drop),
        "max.message.bytes" => {
            let parsed = parse_i64(key, value, 0)?;
            i32::try_from(parsed)
                .map(drop)
                .map_err(|_| invalid(key, value, "must fit in a 32-bit integer"))
        }
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(invalid(key, value, "expected CreateTime or LogAppendTime")),
        },
        "cleanup.policy" => {
            if value.split(',').map(str::trim).all(|p| p == "delete") {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    value,
                    "only \"delete\" is supported; log compaction is not implemented yet",
                ))
            }
        }
        "compression.type" => match value {
            "producer" => Ok(()),
            _ => Err(invalid(
                key,
                value,
                "only \"producer\" is supported: batches are stored as the producer compressed them",
            )),
        },
        _ if ACCEPTED_WITHOUT_EFFECT.contains(&key) => Ok(()),
        _ => Err(invalid(key, value, "unknown topic config")),
    }
}

impl TopicOverrides {
    /// Validates every entry and builds the overrides.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, InvalidConfig> {
        let mut map = BTreeMap::new();
        for (key, value) in entries {
            validate(key, value)?;
            map.insert(key.to_string(), value.to_string());
        }
        Ok(TopicOverrides(map))
    }

    /// The config in force given the broker's defaults.
    pub fn effective(&self, defaults: &BrokerSection) -> EffectiveConfig {
        let number = |key: &str, default: i64| {
            self.0
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(default)
        };
        EffectiveConfig {
            retention_ms: number("retention.ms", defaults.log_retention_ms),
            retention_bytes: number("retention.bytes", defaults.log_retention_bytes),
            max_message_bytes: i32::try_from(number(
                "max.message.bytes",
                i64::from(defaults.message_max_bytes),
            ))
            .unwrap_or(defaults.message_max_bytes),
            timestamp_type: match self.0.get("message.timestamp.type").map(String::as_str) {
                Some("LogAppendTime") => TimestampType::LogAppendTime,
                _ => TimestampType::CreateTime,
            },
        }
    }

    /// `(key, value, is_default)` for every known key and every override.
    pub fn describe(&self, defaults: &BrokerSection) -> Vec<(String, String, bool)> {
        let effective = self.effective(defaults);
        let mut out: BTreeMap<String, (String, bool)> = BTreeMap::new();
        let default_values = [
            ("cleanup.policy", "delete".to_string()),
            ("compression.type", "producer".to_string()),
            ("max.message.bytes", effective.max_message_bytes.to_string()),
            (
                "message.timestamp.type",
                match effective.timestamp_type {
                    TimestampType::CreateTime => "CreateTime",
                    TimestampType::LogAppendTime => "LogAppendTime",
                }
                .to_string(),
            ),
            ("retention.bytes", effective.retention_bytes.to_string()),
            ("retention.ms", effective.retention_ms.to_string()),
        ];
        for (key, value) in default_values {
            out.insert(key.to_string(), (value, true));
        }
        for (key, value) in &self.0 {
            out.insert(key.clone(), (value.clone(), false));
        }
        out.into_iter()
            .map(|(key, (value, is_default))| (key, value, is_default))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_broker_defaults() {
        let defaults = BrokerSection::default();
        let overrides = TopicOverrides::from_entries([
            ("retention.ms", "1000"),
            ("message.timestamp.type", "LogAppendTime"),
            ("segment.bytes", "1048576"),
        ])
        .expect("valid");
        let effective = overrides.effective(&defaults);
        assert_eq!(effective.retention_ms, 1000);
        assert_eq!(effective.retention_bytes, -1);
        assert_eq!(effective.max_message_bytes, defaults.message_max_bytes);
        assert_eq!(effective.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(
            effective.retention().max_age,
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(effective.retention().max_bytes, None);
    }

    #[test]
    fn bad_entries_name_key_value_and_expectation() {
        let err = validate("cleanup.policy", "compact").expect_err("compact refused");
        assert!(err.to_string().contains("compaction is not implemented"));
        let err = validate("retention.ms", "soon").expect_err("not a number");
        assert_eq!(err.to_string(), "retention.ms=soon: expected an integer");
        assert!(validate("retention.bytes", "-2").is_err());
        assert!(validate("no.such.key", "1").is_err());
        assert!(validate("message.timestamp.type", "Now").is_err());
        assert!(validate("cleanup.policy", "delete").is_ok());
    }
}
