//! The whole Strata config file: sections, the embedded default, and
//! `STRATA_<SECTION>_<KEY>` environment overrides.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use strata_backends::StorageConfig;

mod admin;
mod broker;
mod store;

pub use self::admin::{AdminSection, MetricsSection};
pub use self::broker::BrokerSection;
pub use self::store::{CacheSection, WalKind, WalSection, describe_wal, store_config};

/// The embedded default: `conf/strata.toml`, used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../conf/strata.toml");

/// Sections a config file may hold; environment overrides apply only to these, so
/// unrelated `STRATA_*` variables are left alone.
const SECTIONS: &[&str] = &["storage", "broker", "wal", "cache", "admin", "metrics"];

/// A validated config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrataConfig {
    pub storage: StorageConfig,
    #[serde(default)]
    pub broker: BrokerSection,
    #[serde(default)]
    pub wal: WalSection,
    #[serde(default)]
    pub cache: CacheSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub metrics: MetricsSection,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config file {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl StrataConfig {
    /// Loads `path`, or the embedded default when `None`, then applies overrides
    /// from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, LoadError> {
        let (origin, text) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                (path.display().to_string(), text)
            }
            None => (
                "(embedded default)".to_string(),
                EMBEDDED_DEFAULT.to_string(),
            ),
        };
        let invalid = |message: String| LoadError::Invalid {
            origin: origin.clone(),
            message,
        };
        let mut document: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        apply_env_overrides(&mut document, env).map_err(invalid)?;
        let config: StrataConfig = serde_path_to_error::deserialize(document)
            .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
        config.broker.advertised().map_err(invalid)?;
        Ok(config)
    }
}

/// `STRATA_STORAGE_BUCKET=x` sets `storage.bucket = "x"`. A value that parses as a
/// TOML value (number, boolean, inline table) is taken as that; anything else is a
/// string.
fn apply_env_overrides(
    document: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), String> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("STRATA_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        let section = section.to_ascii_lowercase();
        if !SECTIONS.contains(&section.as_str()) || key.is_empty() {
            continue;
        }
        let key = key.to_ascii_lowercase();
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let table = document
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match table {
            toml::Value::Table(table) => {
                table.insert(key, value);
            }
            _ => {
                return Err(format!(
                    "{name} overrides a key of [{section}], but {section} is not a table"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_backends::config::BackendConfig;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_default_is_a_local_directory() {
        let config = StrataConfig::load(None, vars(&[])).expect("embedded default loads");
        assert!(matches!(config.storage.backend, BackendConfig::Fs(_)));
    }

    #[test]
    fn environment_overrides_keys_and_keeps_types() {
        let config = StrataConfig::load(
            None,
            vars(&[
                ("STRATA_STORAGE_ROOT", "/var/lib/strata"),
                ("STRATA_STORAGE_MAX_CONCURRENT_REQUESTS", "7"),
                ("STRATA_TESTBED_HOME", "/ignored"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("loads");
        let BackendConfig::Fs(fs) = &config.storage.backend else {
            panic!("not fs")
        };
        assert_eq!(fs.root, PathBuf::from("/var/lib/strata"));
        assert_eq!(config.storage.tuning.max_concurrent_requests.get(), 7);
    }

    #[test]
    fn a_misspelt_override_is_refused_by_name() {
        let err = StrataConfig::load(None, vars(&[("STRATA_STORAGE_ROOOT", "/x")]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("rooot"), "{err}");
    }

    #[test]
    fn broker_keys_are_checked_by_name_and_type() {
        let config = StrataConfig::load(
            None,
            vars(&[
                ("STRATA_BROKER_LISTEN", "127.0.0.1:19092"),
                ("STRATA_WAL_KIND", "object"),
                ("STRATA_WAL_DIR", "/mnt/wal/strata"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.broker.listen.port(), 19092);
        assert_eq!(config.wal.kind, WalKind::Object);
        assert_eq!(
            config.wal.dir.as_deref(),
            Some(std::path::Path::new("/mnt/wal/strata"))
        );
        let err = StrataConfig::load(None, vars(&[("STRATA_BROKER_LISTEN", "nowhere")]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("broker.listen"), "{err}");
        let err = StrataConfig::load(None, vars(&[("STRATA_WAL_KIND", "tape")]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("wal.kind") && err.contains("tape"), "{err}");
        let err = StrataConfig::load(
            None,
            vars(&[("STRATA_BROKER_ADVERTISED_LISTENER", "host-without-port")]),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("advertised_listener"), "{err}");
    }

    #[test]
    fn unknown_sections_and_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[storage]\nkind = \"memory\"\n[brokr]\nid = 1\n").expect("write");
        let err = StrataConfig::load(Some(&path), vars(&[]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("brokr") && err.contains("bad.toml"), "{err}");
        let err = StrataConfig::load(Some(&dir.path().join("none.toml")), vars(&[]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("none.toml"), "{err}");
    }
}
