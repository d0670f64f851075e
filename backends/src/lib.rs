//! Strata's storage backends.
//!
//! A `[storage]` config section ([`StorageConfig`]) becomes a [`Storage`]: an
//! `opendal::Operator` wrapped in Strata's layers (retry with backoff and jitter,
//! timeouts, a concurrency limit, tracing, metrics), plus the [`StoreProfile`] of
//! what the store really honours. [`probe`] checks a running store end to end.
//!
//! One cargo feature per family: `fs`, `memory`, `s3` (AWS S3 and the MinIO, Ceph
//! RGW and CubeFS presets), `hdfs`.

pub mod config;
mod error;
mod layers;
pub mod probe;
mod profile;
mod services;
mod whole;

use opendal::Operator;

pub use config::{StorageConfig, StorageKind};
pub use error::{BuildError, ConfigError};
pub use layers::metric_names;
pub use profile::{ConditionalCreate, StoreProfile};
pub use whole::{Flush, LOCAL_SYNC_PIECE};

/// An opened storage backend. Cheap to clone; every clone shares the layers'
/// concurrency limit.
#[derive(Debug, Clone)]
pub struct Storage {
    operator: Operator,
    kind: StorageKind,
    profile: StoreProfile,
}

impl Storage {
    /// Builds the layered operator for `config`. Performs no I/O against the store
    /// except creating a local `fs` root; use [`probe`] to check reachability.
    pub fn open(config: &StorageConfig) -> Result<Self, BuildError> {
        let kind = config.backend.kind();
        let (operator, profile) = services::build(&config.backend, &config.tuning.timeouts)?;
        let operator = layers::apply(operator, kind, &config.tuning);
        Ok(Storage {
            operator,
            kind,
            profile,
        })
    }

    /// The layered operator: the only way Strata touches storage.
    pub fn operator(&self) -> &Operator {
        &self.operator
    }

    pub fn kind(&self) -> StorageKind {
        self.kind
    }

    /// The same storage with `layer` outermost: how tests inject latency or faults
    /// into a real backend without changing what the store above it does.
    pub fn with_layer(self, layer: impl opendal::raw::Layer) -> Self {
        Storage {
            operator: self.operator.layer(layer),
            ..self
        }
    }

    /// Writes `data` as the whole object at `path`. On a local directory, with
    /// [`Flush::Paced`], a large object is written and synced piece by piece so that
    /// a WAL on the same disk never waits behind its whole flush; remote stores take
    /// one request either way.
    pub async fn write_whole(
        &self,
        path: &str,
        data: impl Into<opendal::Buffer>,
        flush: Flush,
    ) -> opendal::Result<()> {
        if self.kind == StorageKind::Fs {
            whole::write_local(&self.operator, flush, path, data.into()).await
        } else {
            self.operator.write(path, data).await.map(drop)
        }
    }

    /// What the store guarantees for conditional writes.
    pub fn profile(&self) -> StoreProfile {
        self.profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in builds without some backends (`deploy/run-tests.sh` tests the `fs`-only
    /// build): a config naming a missing backend is refused with the feature to enable.
    #[test]
    fn kinds_not_compiled_in_name_their_feature() {
        let documents = [
            (StorageKind::Memory, "[storage]\nkind = \"memory\"\n"),
            (
                StorageKind::Ceph,
                "[storage]\nkind = \"ceph\"\nbucket = \"b-1\"\nendpoint = \"http://h:1\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n",
            ),
            (
                StorageKind::Hdfs,
                "[storage]\nkind = \"hdfs\"\nname_node = \"hdfs://h:1\"\n",
            ),
        ];
        for (kind, document) in documents {
            let config = StorageConfig::from_document(document).expect("valid config");
            let opened = Storage::open(&config);
            if kind.is_compiled_in() {
                continue;
            }
            let message = opened.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.contains(&format!("feature \"{}\"", kind.feature())),
                "{kind}: {message}"
            );
        }
    }
}
