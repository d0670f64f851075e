//! Errors of this crate: a config that cannot be used, or a backend that cannot be built.

use std::path::PathBuf;

use crate::config::StorageKind;

/// A `[storage]` section that was refused. Every variant names the key, and where a
/// value was given, the value and what was expected instead.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config is not valid TOML: {source}")]
    Syntax { source: Box<toml::de::Error> },

    #[error("{key} is missing: expected {expected}")]
    Missing { key: String, expected: &'static str },

    #[error("{key} is required for kind = \"{kind}\": expected {expected}")]
    MissingForKind {
        key: &'static str,
        kind: StorageKind,
        expected: &'static str,
    },

    #[error("{key} = {value:?} is invalid: expected {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },

    #[error("{key} (kind = \"{kind}\"): {message}")]
    Rejected {
        key: String,
        kind: StorageKind,
        message: String,
    },

    #[error("{key} reads environment variable {var}, which is not set")]
    SecretEnvMissing { key: String, var: String },

    #[error("{key} reads file {path:?}, which cannot be read: {source}")]
    SecretFileUnreadable {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, value: &str, expected: &str) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}

/// Why an operator could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error(
        "storage.kind = \"{kind}\" is not compiled into this build: rebuild with cargo feature \"{feature}\" of strata-backends (for example `cargo build --features {feature}`)"
    )]
    NotCompiledIn {
        kind: StorageKind,
        feature: &'static str,
    },

    #[error("storage.root {path:?} cannot be used as a directory: {source}")]
    LocalRoot {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("storage.ca_bundle {path:?}: {reason}")]
    CaBundle { path: PathBuf, reason: String },

    #[error("the HTTP client for the object store cannot be built: {source}")]
    #[cfg(feature = "s3")]
    HttpClient { source: reqwest::Error },

    #[error(
        "storage.user = {user:?} needs HADOOP_USER_NAME={user} in the environment (the hdfs-native client reads the user only from there); it is {actual}"
    )]
    HdfsUser { user: String, actual: String },

    #[error("building the {kind} operator failed: {source}")]
    Operator {
        kind: StorageKind,
        source: opendal::Error,
    },
}
