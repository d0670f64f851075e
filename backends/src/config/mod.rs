//! The `[storage]` section of the Strata config: which backend, where, and how hard to try.
//!
//! Parsing is two-step so that every backend kind can refuse keys it does not know:
//! the keys shared by all kinds (`kind`, `max_concurrent_requests`, `[storage.timeouts]`,
//! `[storage.retry]`) are taken out first, and what remains must match the chosen
//! kind's own struct exactly.

mod kind;
mod s3;
mod secret;
mod tuning;

use std::path::PathBuf;

use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use kind::StorageKind;
pub use s3::{Addressing, S3Config, S3Flavor};
pub use secret::Secret;
pub use tuning::{RetryPolicy, Timeouts, Tuning};

use crate::error::ConfigError;

/// A validated `[storage]` section.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Which service, and its service-specific keys.
    pub backend: BackendConfig,
    /// Retry, timeout and concurrency settings shared by every backend.
    pub tuning: Tuning,
}

/// One variant per service family; the S3 presets share [`S3Config`].
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// A local directory (the embedded default).
    Fs(FsConfig),
    /// Process memory: nothing survives a restart. For tests.
    Memory(MemoryConfig),
    /// AWS S3 or an S3-compatible store (MinIO, Ceph RGW, CubeFS presets).
    S3(S3Config),
    /// HDFS through the native-Rust client.
    Hdfs(HdfsConfig),
}

impl BackendConfig {
    /// The `kind` this section was written with.
    pub fn kind(&self) -> StorageKind {
        match self {
            BackendConfig::Fs(_) => StorageKind::Fs,
            BackendConfig::Memory(_) => StorageKind::Memory,
            BackendConfig::S3(s3) => s3.flavor.kind(),
            BackendConfig::Hdfs(_) => StorageKind::Hdfs,
        }
    }
}

/// `kind = "fs"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    /// Directory that holds the objects; created if missing.
    pub root: PathBuf,
}

/// `kind = "memory"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {}

/// `kind = "hdfs"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HdfsConfig {
    /// Name node address, `hdfs://host:port`.
    pub name_node: String,
    /// Directory under which Strata keeps its objects.
    #[serde(default = "HdfsConfig::default_root")]
    pub root: String,
    /// HDFS user for simple authentication. The hdfs-native client reads it from
    /// `HADOOP_USER_NAME`, so the `strata` binary exports it before it starts.
    pub user: Option<String>,
}

impl HdfsConfig {
    fn default_root() -> String {
        "/strata".to_string()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let rest = self.name_node.strip_prefix("hdfs://").ok_or_else(|| {
            ConfigError::invalid(
                "storage.name_node",
                &self.name_node,
                "an hdfs://host:port URL",
            )
        })?;
        let valid_authority = rest
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid_authority {
            return Err(ConfigError::invalid(
                "storage.name_node",
                &self.name_node,
                "an hdfs://host:port URL",
            ));
        }
        if !self.root.starts_with('/') {
            return Err(ConfigError::invalid(
                "storage.root",
                &self.root,
                "an absolute HDFS path",
            ));
        }
        Ok(())
    }
}

impl StorageConfig {
    /// Parses and validates a `[storage]` table.
    pub fn from_table(mut table: toml::Table) -> Result<Self, ConfigError> {
        let kind_value = table.remove("kind").ok_or(ConfigError::Missing {
            key: "storage.kind".to_string(),
            expected: StorageKind::EXPECTED,
        })?;
        let kind = match &kind_value {
            toml::Value::String(name) => StorageKind::parse(name)
                .ok_or_else(|| ConfigError::invalid("storage.kind", name, StorageKind::EXPECTED))?,
            other => {
                return Err(ConfigError::invalid(
                    "storage.kind",
                    &other.to_string(),
                    StorageKind::EXPECTED,
                ));
            }
        };

        let mut tuning_table = toml::Table::new();
        for key in Tuning::KEYS {
            if let Some(value) = table.remove(*key) {
                tuning_table.insert((*key).to_string(), value);
            }
        }
        let tuning: Tuning = from_section(tuning_table, kind)?;
        tuning.validate()?;

        let backend = match kind {
            StorageKind::Fs => BackendConfig::Fs(from_section(table, kind)?),
            StorageKind::Memory => BackendConfig::Memory(from_section(table, kind)?),
            StorageKind::Hdfs => {
                let hdfs: HdfsConfig = from_section(table, kind)?;
                hdfs.validate()?;
                BackendConfig::Hdfs(hdfs)
            }
            StorageKind::S3 | StorageKind::Minio | StorageKind::Ceph | StorageKind::Cubefs => {
                let mut s3: S3Config = from_section(table, kind)?;
                s3.flavor = S3Flavor::for_kind(kind).ok_or_else(|| {
                    ConfigError::invalid("storage.kind", kind.as_str(), StorageKind::EXPECTED)
                })?;
                s3.validate()?;
                BackendConfig::S3(s3)
            }
        };
        Ok(StorageConfig { backend, tuning })
    }

    /// Parses the `[storage]` section of a whole Strata config document, ignoring the
    /// other sections (the broker validates those).
    pub fn from_document(text: &str) -> Result<Self, ConfigError> {
        let mut document: toml::Table = text.parse().map_err(|source| ConfigError::Syntax {
            source: Box::new(source),
        })?;
        match document.remove("storage") {
            Some(toml::Value::Table(table)) => Self::from_table(table),
            Some(other) => Err(ConfigError::invalid(
                "storage",
                &other.to_string(),
                "a table",
            )),
            None => Err(ConfigError::Missing {
                key: "storage".to_string(),
                expected: "a [storage] section",
            }),
        }
    }
}

impl<'de> Deserialize<'de> for StorageConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(deserializer)?;
        StorageConfig::from_table(table).map_err(serde::de::Error::custom)
    }
}

/// Deserializes one kind's keys, reporting the full key path on failure.
fn from_section<T: DeserializeOwned>(
    table: toml::Table,
    kind: StorageKind,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
        let path = err.path().to_string();
        let key = if path == "." {
            "storage".to_string()
        } else {
            format!("storage.{path}")
        };
        ConfigError::Rejected {
            key,
            kind,
            message: err.into_inner().message().to_string(),
        }
    })
}

#[cfg(test)]
mod tests;
