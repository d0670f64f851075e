//! Credentials that may live inline, in an environment variable, or in a file.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::error::ConfigError;

/// Where a secret value comes from.
///
/// In TOML: `"inline-value"`, `{ env = "VAR" }` or `{ file = "/path/to/secret" }`.
/// The value is read when the backend is built, never logged: `Debug` shows only
/// the source.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The value itself, written in the config file.
    Inline(String),
    /// The name of an environment variable that holds the value.
    Env(String),
    /// A file whose contents (less one trailing newline) are the value.
    File(PathBuf),
}

impl Secret {
    /// Reads the value; `key` names the config key in the error.
    pub fn resolve(&self, key: &str) -> Result<String, ConfigError> {
        match self {
            Secret::Inline(value) => Ok(value.clone()),
            Secret::Env(var) => std::env::var(var).map_err(|_| ConfigError::SecretEnvMissing {
                key: key.to_string(),
                var: var.clone(),
            }),
            Secret::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| {
                    ConfigError::SecretFileUnreadable {
                        key: key.to_string(),
                        path: path.clone(),
                        source,
                    }
                })?;
                Ok(text
                    .strip_suffix('\n')
                    .unwrap_or(&text)
                    .trim_end_matches('\r')
                    .to_string())
            }
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Secret::Inline(<redacted>)"),
            Secret::Env(var) => write!(f, "Secret::Env({var:?})"),
            Secret::File(path) => write!(f, "Secret::File({path:?})"),
        }
    }
}

const EXPECTED: &str = r#"a string, { env = "VAR" } or { file = "/path" }"#;

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(deserializer)? {
            toml::Value::String(value) => Ok(Secret::Inline(value)),
            toml::Value::Table(table) => {
                let mut entries = table.into_iter();
                match (entries.next(), entries.next()) {
                    (Some((key, toml::Value::String(value))), None) if key == "env" => {
                        Ok(Secret::Env(value))
                    }
                    (Some((key, toml::Value::String(value))), None) if key == "file" => {
                        Ok(Secret::File(PathBuf::from(value)))
                    }
                    _ => Err(de::Error::custom(format!(
                        "invalid secret table, expected {EXPECTED}"
                    ))),
                }
            }
            other => Err(de::Error::custom(format!(
                "invalid secret of type {}, expected {EXPECTED}",
                other.type_str()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        secret: Secret,
    }

    fn parse(text: &str) -> Result<Secret, toml::de::Error> {
        toml::from_str::<Holder>(text).map(|h| h.secret)
    }

    #[test]
    fn parses_every_source() {
        assert_eq!(
            parse(r#"secret = "abc""#).ok(),
            Some(Secret::Inline("abc".into()))
        );
        assert_eq!(
            parse(r#"secret = { env = "X" }"#).ok(),
            Some(Secret::Env("X".into()))
        );
        assert_eq!(
            parse(r#"secret = { file = "/run/s" }"#).ok(),
            Some(Secret::File("/run/s".into()))
        );
    }

    #[test]
    fn rejects_other_shapes_with_the_expected_forms() {
        for text in [
            r#"secret = 3"#,
            r#"secret = { envv = "X" }"#,
            r#"secret = { env = "X", file = "Y" }"#,
        ] {
            let err = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(r#"{ env = "VAR" }"#), "{text}: {err}");
        }
    }

    #[test]
    fn resolves_files_without_the_trailing_newline_and_names_missing_sources() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cr3t\n").expect("write");
        assert_eq!(
            Secret::File(path).resolve("k").ok().as_deref(),
            Some("s3cr3t")
        );

        let err = Secret::Env("STRATA_TEST_SURELY_UNSET_VAR".into())
            .resolve("storage.secret_access_key")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("storage.secret_access_key")
                && err.contains("STRATA_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );
        assert!(!format!("{:?}", Secret::Inline("hidden".into())).contains("hidden"));
    }
}
