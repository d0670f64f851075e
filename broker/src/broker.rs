//! The broker's shared state and its life cycle: open the store and metadata, load
//! topics, groups and producer state; on shutdown, persist and upload.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_backends::Storage;
use strata_core::meta::{
    Compare, EmbeddedMetaStore, EmbeddedOptions, MetaStore, MeteredMetaStore, Op, Txn,
};
use strata_core::store::{StreamStore, WalMode};
use tokio::sync::Notify;

use crate::config::{StrataConfig, store_config};
use crate::fetch_sessions::FetchSessions;
use crate::groups::GroupCoordinator;
use crate::groups::offsets::OffsetStore;
use crate::producer_ids::ProducerIds;
use crate::topics::{TopicError, TopicRegistry};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(#[from] strata_backends::BuildError),
    #[error("metadata store in {dir}: {source}")]
    Meta {
        dir: String,
        source: strata_core::meta::MetaError,
    },
    #[error("stream store: {0}")]
    Store(#[from] strata_core::store::StoreError),
    #[error("topics: {0}")]
    Topics(#[from] TopicError),
    #[error("cannot create data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error("config: {0}")]
    Config(String),
    #[error(transparent)]
    WalDir(#[from] crate::wal_dir::WalDirError),
}

/// Identity of this broker as clients see it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub cluster_id: String,
}

pub struct Broker {
    pub node: NodeInfo,
    pub config: StrataConfig,
    pub meta: Arc<dyn MetaStore>,
    pub store: StreamStore,
    pub topics: TopicRegistry,
    pub groups: Arc<GroupCoordinator>,
    pub producer_ids: ProducerIds,
    pub fetch_sessions: FetchSessions,
    /// Woken whenever produced data becomes readable, for long-polling fetches.
    pub data_arrived: Notify,
}

const CLUSTER_ID_KEY: &str = "k/cluster-id";

impl Broker {
    /// Opens everything the broker serves from.
    pub async fn start(config: StrataConfig) -> Result<Arc<Broker>, StartError> {
        let data_dir = config.broker.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
            dir: data_dir.display().to_string(),
            source,
        })?;
        let (host, port) = config.broker.advertised().map_err(StartError::Config)?;
        let storage = Storage::open(&config.storage)?;
        let meta_dir = data_dir.join("meta");
        let meta: Arc<dyn MetaStore> = Arc::new(MeteredMetaStore::new(
            EmbeddedMetaStore::open(&meta_dir, EmbeddedOptions::default())
                .await
                .map_err(|source| StartError::Meta {
                    dir: meta_dir.display().to_string(),
                    source,
                })?,
        ));
        let cluster_id = cluster_id(meta.as_ref())
            .await
            .map_err(|source| StartError::Meta {
                dir: meta_dir.display().to_string(),
                source,
            })?;
        claim_bucket(&storage, &cluster_id).await?;
        let store_config = store_config(&data_dir, &config.wal, &config.cache);
        if store_config.wal_mode == WalMode::Local {
            crate::wal_dir::claim(meta.as_ref(), &data_dir, &store_config.wal_dir).await?;
        }
        let store = StreamStore::open(storage, meta.clone(), store_config).await?;
        let mut defaults = config.broker.clone();
        let dynamic = crate::dynamic_config::load(meta.as_ref())
            .await
            .map_err(|source| StartError::Meta {
                dir: meta_dir.display().to_string(),
                source,
            })?;
        if let Err(err) = crate::dynamic_config::apply(&mut defaults, &dynamic) {
            tracing::warn!(%err, "ignoring a stored dynamic broker config");
        }
        let topics = TopicRegistry::load(meta.clone(), store.clone(), defaults).await?;
        let offsets = OffsetStore::load(meta.clone())
            .await
            .map_err(|source| StartError::Meta {
                dir: meta_dir.display().to_string(),
                source,
            })?;
        let groups = GroupCoordinator::new(offsets, &config.broker);
        tokio::spawn(GroupCoordinator::run_timers(Arc::downgrade(&groups)));
        let broker = Arc::new(Broker {
            node: NodeInfo {
                node_id: config.broker.node_id,
                host,
                port,
                cluster_id,
            },
            fetch_sessions: FetchSessions::new(config.broker.max_fetch_sessions),
            config,
            meta,
            store,
            topics,
            groups,
            producer_ids: ProducerIds::default(),
            data_arrived: Notify::new(),
        });
        tokio::spawn(snapshot_producers(Arc::downgrade(&broker)));
        tracing::info!(
            topics = broker.topics.list().len(),
            cluster_id = %broker.node.cluster_id,
            "broker state loaded"
        );
        Ok(broker)
    }

    /// Persists producer state, uploads everything acknowledged and stops the
    /// store's background work.
    pub async fn shutdown(&self) -> Result<(), strata_core::store::StoreError> {
        self.topics.snapshot_producers().await;
        self.store.close().await
    }
}

/// Marks the bucket root as this cluster's, or refuses to start when another
/// cluster's metadata owns it: two clusters allocating object ids in one place would
/// overwrite and garbage-collect each other's objects.
async fn claim_bucket(storage: &Storage, cluster_id: &str) -> Result<(), StartError> {
    const MARKER: &str = "strata-cluster-id";
    let operator = storage.operator();
    match operator.read(MARKER).await {
        Ok(found) => {
            let found = String::from_utf8_lossy(&found.to_vec()).trim().to_string();
            if found == cluster_id {
                Ok(())
            } else {
                Err(StartError::Config(format!(
                    "the storage root holds the objects of cluster {found} (its {MARKER}), but \
                     the metadata in broker.data_dir is cluster {cluster_id}: give each cluster \
                     its own bucket or storage root, or point broker.data_dir at that \
                     cluster's metadata"
                )))
            }
        }
        Err(err) if err.kind() == opendal::ErrorKind::NotFound => operator
            .write(MARKER, cluster_id.to_string())
            .await
            .map(drop)
            .map_err(|err| {
                StartError::Config(format!("cannot write {MARKER} to the storage root: {err}"))
            }),
        Err(err) => Err(StartError::Config(format!(
            "cannot read {MARKER} from the storage root: {err}"
        ))),
    }
}

/// The cluster id: made once, then read back on every start.
async fn cluster_id(meta: &dyn MetaStore) -> Result<String, strata_core::meta::MetaError> {
    let key = Bytes::from_static(CLUSTER_ID_KEY.as_bytes());
    let fresh = uuid::Uuid::new_v4().simple().to_string();
    let txn = Txn::new()
        .when(Compare::Absent(key.clone()))
        .and_then(Op::put(key.clone(), Bytes::from(fresh)));
    meta.txn(txn).await?;
    let kv = meta.get(&key).await?;
    Ok(kv
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .unwrap_or_default())
}

/// Producer state is snapshotted every few seconds, bounding what a restart replays.
async fn snapshot_producers(broker: std::sync::Weak<Broker>) {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let Some(broker) = broker.upgrade() else {
            return;
        };
        broker.topics.snapshot_producers().await;
    }
}
