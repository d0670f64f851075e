//! `kind = "s3" | "minio" | "ceph" | "cubefs"`: one S3 config, four presets.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Secret, StorageKind};
use crate::error::ConfigError;
use crate::profile::{ConditionalCreate, StoreProfile};

/// How the bucket appears in request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Addressing {
    /// `https://endpoint/bucket/key`: what self-hosted stores expect.
    Path,
    /// `https://bucket.endpoint/key`: what AWS prefers.
    VirtualHost,
}

/// Which S3 implementation sits behind the endpoint; picks defaults and known quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum S3Flavor {
    #[default]
    Aws,
    Minio,
    Ceph,
    Cubefs,
}

/// What a preset fills in when the config is silent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Preset {
    pub addressing: Addressing,
    /// Self-hosted stores ignore the region but SigV4 still signs one.
    pub region: Option<&'static str>,
    pub endpoint_required: bool,
    /// AWS may find credentials in its default chain; self-hosted stores may not.
    pub credentials_required: bool,
    pub profile: StoreProfile,
}

impl S3Flavor {
    pub(crate) fn for_kind(kind: StorageKind) -> Option<Self> {
        match kind {
            StorageKind::S3 => Some(S3Flavor::Aws),
            StorageKind::Minio => Some(S3Flavor::Minio),
            StorageKind::Ceph => Some(S3Flavor::Ceph),
            StorageKind::Cubefs => Some(S3Flavor::Cubefs),
            _ => None,
        }
    }

    pub fn kind(self) -> StorageKind {
        match self {
            S3Flavor::Aws => StorageKind::S3,
            S3Flavor::Minio => StorageKind::Minio,
            S3Flavor::Ceph => StorageKind::Ceph,
            S3Flavor::Cubefs => StorageKind::Cubefs,
        }
    }

    /// What this store is known to honour (see [`StoreProfile`]).
    pub fn profile(self) -> StoreProfile {
        self.preset().profile
    }

    pub(crate) fn preset(self) -> Preset {
        let self_hosted = |profile| Preset {
            addressing: Addressing::Path,
            region: Some("us-east-1"),
            endpoint_required: true,
            credentials_required: true,
            profile,
        };
        match self {
            S3Flavor::Aws => Preset {
                addressing: Addressing::VirtualHost,
                region: None,
                endpoint_required: false,
                credentials_required: false,
                profile: StoreProfile::FULL_S3,
            },
            S3Flavor::Minio => self_hosted(StoreProfile::FULL_S3),
            // RGW 16.2: If-None-Match is honoured on PUT but ignored by
            // CompleteMultipartUpload, If-Match only matches an unquoted etag (OpenDAL
            // sends it quoted, so every such write would fail with 412), conditional
            // deletes are ignored, and CompleteMultipartUpload returns an empty ETag.
            S3Flavor::Ceph => self_hosted(StoreProfile {
                conditional_create: ConditionalCreate::SinglePutOnly,
                conditional_overwrite: false,
                conditional_delete: false,
                multipart_returns_etag: false,
            }),
            // CubeFS ObjectNode documents no conditional-write support: nothing is
            // fenced on it; the probe reports what the server really does.
            S3Flavor::Cubefs => self_hosted(StoreProfile {
                conditional_create: ConditionalCreate::Unsupported,
                conditional_overwrite: false,
                conditional_delete: false,
                multipart_returns_etag: true,
            }),
        }
    }
}

/// Keys of an S3-family `[storage]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Set from `kind`, not from a key.
    #[serde(skip)]
    pub flavor: S3Flavor,
    pub bucket: String,
    /// Key prefix under which Strata keeps its objects.
    #[serde(default = "S3Config::default_root")]
    pub root: String,
    /// `http(s)://host[:port]`; AWS uses its regional endpoint when unset.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub addressing: Option<Addressing>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// PEM file with the CA certificates that sign the endpoint's TLS certificate,
    /// added to the system roots.
    pub ca_bundle: Option<PathBuf>,
}

impl S3Config {
    fn default_root() -> String {
        "/".to_string()
    }

    /// The addressing style in force: the key if given, else the preset's.
    pub fn addressing(&self) -> Addressing {
        self.addressing.unwrap_or(self.flavor.preset().addressing)
    }

    /// The signing region in force, if any.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref().or(self.flavor.preset().region)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let preset = self.flavor.preset();
        let kind = self.flavor.kind();
        validate_bucket(&self.bucket)?;
        match &self.endpoint {
            Some(endpoint) => validate_endpoint(endpoint)?,
            None if preset.endpoint_required => {
                return Err(ConfigError::MissingForKind {
                    key: "storage.endpoint",
                    kind,
                    expected: "the store's URL, like \"http://127.0.0.1:9000\"",
                });
            }
            None if self.region.is_none() => {
                return Err(ConfigError::MissingForKind {
                    key: "storage.region",
                    kind,
                    expected: "the bucket's AWS region, like \"us-east-1\", when storage.endpoint is unset",
                });
            }
            None => {}
        }
        if self.region.as_deref() == Some("") {
            return Err(ConfigError::invalid(
                "storage.region",
                "",
                "a non-empty region name",
            ));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), Some(_)) => {}
            (None, None) if !preset.credentials_required => {}
            (Some(_), None) | (None, None) => {
                return Err(ConfigError::MissingForKind {
                    key: "storage.secret_access_key",
                    kind,
                    expected: r#"a string, { env = "VAR" } or { file = "/path" }"#,
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::MissingForKind {
                    key: "storage.access_key_id",
                    kind,
                    expected: r#"a string, { env = "VAR" } or { file = "/path" }"#,
                });
            }
        }
        Ok(())
    }
}

/// S3 bucket naming rules: 3-63 of `a-z 0-9 . -`, starting and ending alphanumeric.
fn validate_bucket(bucket: &str) -> Result<(), ConfigError> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = (3..=63).contains(&bucket.len())
        && bucket.chars().all(allowed)
        && edge_ok(bucket.chars().next())
        && edge_ok(bucket.chars().last());
    if valid {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "storage.bucket",
            bucket,
            "an S3 bucket name: 3-63 lowercase letters, digits, dots or hyphens, starting and ending with a letter or digit",
        ))
    }
}

fn validate_endpoint(endpoint: &str) -> Result<(), ConfigError> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"));
    let host = rest.map(|rest| rest.split('/').next().unwrap_or_default());
    match host {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err(ConfigError::invalid(
            "storage.endpoint",
            endpoint,
            "an http:// or https:// URL with a host, like \"http://127.0.0.1:9000\"",
        )),
    }
}
