//! Topics: names, ids, partitions (each one stream of the store) and configs,
//! persisted in the metadata store.

pub mod config;
pub mod partition;
pub mod producers;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_core::meta::{Compare, MetaStore, Op, Txn};
use strata_core::store::{StoreError, StreamId, StreamStore};
use uuid::Uuid;

use self::config::{EffectiveConfig, TopicOverrides};
use self::partition::{AppendError, Partition};
use crate::config::BrokerSection;

const TOPIC_PREFIX: &str = "k/topic/";

/// Why a topic operation failed; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic name {0:?} is invalid: {1}")]
    InvalidName(String, &'static str),
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    #[error("topic {0:?} does not exist")]
    Unknown(String),
    #[error("partition count {requested} is invalid: {reason}")]
    InvalidPartitions { requested: i32, reason: String },
    #[error(transparent)]
    InvalidConfig(#[from] config::InvalidConfig),
    #[error("topic {0:?} changed concurrently; retry")]
    Conflict(String),
    #[error("metadata record of topic {0:?} is corrupt: {1}")]
    Corrupt(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AppendError> for TopicError {
    fn from(err: AppendError) -> Self {
        match err {
            AppendError::Store(err) => TopicError::Store(err),
            AppendError::Sequence(err) => TopicError::Store(StoreError::Task(err.to_string())),
        }
    }
}

impl From<strata_core::meta::MetaError> for TopicError {
    fn from(err: strata_core::meta::MetaError) -> Self {
        TopicError::Store(err.into())
    }
}

/// A topic as loaded: immutable; a change replaces it in the registry.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    pub overrides: TopicOverrides,
    pub config: EffectiveConfig,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

/// The persisted form of a topic.
#[derive(Debug, Serialize, Deserialize)]
struct TopicRecord {
    id: Uuid,
    streams: Vec<u64>,
    configs: TopicOverrides,
}

fn encode(name: &str, record: &TopicRecord) -> Result<Bytes, TopicError> {
    serde_json::to_vec(record)
        .map(Bytes::from)
        .map_err(|e| TopicError::Corrupt(name.to_string(), e.to_string()))
}

fn topic_key(name: &str) -> Bytes {
    Bytes::from(format!("{TOPIC_PREFIX}{name}"))
}

/// Kafka's rule: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let bad = |reason| Err(TopicError::InvalidName(name.to_string(), reason));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name == "." || name == ".." {
        return bad("\".\" and \"..\" are reserved");
    }
    if name.len() > 249 {
        return bad("it is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// All topics of the broker.
pub struct TopicRegistry {
    meta: Arc<dyn MetaStore>,
    store: StreamStore,
    defaults: RwLock<BrokerSection>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises creations, deletions and changes.
    changes: tokio::sync::Mutex<()>,
}

/// Partitions loaded at once when a topic is built.
const CONCURRENT_LOADS: usize = 32;

impl TopicRegistry {
    /// Loads every topic, opening its streams and reading their producer-state snapshots.
    pub async fn load(
        meta: Arc<dyn MetaStore>,
        store: StreamStore,
        defaults: BrokerSection,
    ) -> Result<TopicRegistry, TopicError> {
        let registry = TopicRegistry {
            meta,
            store,
            defaults: RwLock::new(defaults),
            topics: RwLock::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
        };
        let mut records = Vec::new();
        for kv in registry
            .meta
            .scan_prefix(TOPIC_PREFIX.as_bytes(), 0)
            .await?
        {
            let name = String::from_utf8_lossy(&kv.key[TOPIC_PREFIX.len()..]).into_owned();
            let record: TopicRecord = serde_json::from_slice(&kv.value)
                .map_err(|e| TopicError::Corrupt(name.clone(), e.to_string()))?;
            records.push((name, record));
        }
        // Every partition's stream at once: loading a stream's ranges reads all
        // object records, so opening them one by one read those once per partition.
        let streams: Vec<StreamId> = records
            .iter()
            .flat_map(|(_, record)| record.streams.iter().map(|&id| StreamId(id)))
            .collect();
        registry.store.open_streams(&streams).await?;
        for (name, record) in records {
            let topic = registry.build(&name, record).await?;
            registry.insert(topic);
        }
        Ok(registry)
    }

    async fn build(&self, name: &str, record: TopicRecord) -> Result<Arc<Topic>, TopicError> {
        let streams: Vec<StreamId> = record.streams.iter().map(|&id| StreamId(id)).collect();
        self.store.open_streams(&streams).await?;
        let mut indexed = Vec::with_capacity(streams.len());
        for (index, stream) in streams.iter().enumerate() {
            let index = i32::try_from(index).map_err(|_| {
                TopicError::Corrupt(name.to_string(), "too many partitions".to_string())
            })?;
            indexed.push((index, *stream));
        }
        // A few partitions at once: each reads its producer-state snapshot, a round
        // trip to the metadata store (a remote one, later) per partition.
        let mut partitions = Vec::with_capacity(indexed.len());
        for some in indexed.chunks(CONCURRENT_LOADS) {
            let loads = some.iter().map(|&(index, stream)| {
                Partition::load(&self.store, self.meta.as_ref(), index, stream)
            });
            for partition in futures::future::try_join_all(loads).await? {
                partitions.push(Arc::new(partition));
            }
        }
        Ok(self.assemble(name, record.id, partitions, record.configs))
    }

    fn assemble(
        &self,
        name: &str,
        id: Uuid,
        partitions: Vec<Arc<Partition>>,
        overrides: TopicOverrides,
    ) -> Arc<Topic> {
        let config = overrides.effective(&self.defaults());
        for partition in &partitions {
            // The stream is open: it was loaded or created just before.
            if let Err(err) = self
                .store
                .set_retention(partition.stream, config.retention())
            {
                tracing::warn!(topic = name, partition = partition.index, %err, "retention not applied");
            }
        }
        Arc::new(Topic {
            name: name.to_string(),
            id,
            partitions,
            overrides,
            config,
        })
    }

    fn insert(&self, topic: Arc<Topic>) {
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.name.clone(), topic);
    }

    pub fn defaults(&self) -> BrokerSection {
        self.defaults
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the broker defaults and re-derives every topic's config.
    pub fn set_defaults(&self, defaults: BrokerSection) {
        *self.defaults.write().unwrap_or_else(|p| p.into_inner()) = defaults;
        for topic in self.list() {
            let rebuilt = self.assemble(
                &topic.name,
                topic.id,
                topic.partitions.clone(),
                topic.overrides.clone(),
            );
            self.insert(rebuilt);
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.list().into_iter().find(|t| t.id == id)
    }

    pub fn list(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Creates a topic (or only checks that it could be, with `validate_only`).
    pub async fn create(
        &self,
        name: &str,
        partitions: i32,
        overrides: TopicOverrides,
        validate_only: bool,
    ) -> Result<Option<Arc<Topic>>, TopicError> {
        validate_name(name)?;
        let count = if partitions == -1 {
            self.defaults().num_partitions
        } else {
            partitions
        };
        if !(1..=10_000).contains(&count) {
            return Err(TopicError::InvalidPartitions {
                requested: partitions,
                reason: "expected 1 to 10000 (or -1 for the broker default)".to_string(),
            });
        }
        let _exclusive = self.changes.lock().await;
        if self.get(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        if validate_only {
            return Ok(None);
        }
        let mut streams = Vec::with_capacity(count as usize);
        for _ in 0..count {
            streams.push(self.store.create_stream().await?.0);
        }
        let record = TopicRecord {
            id: Uuid::new_v4(),
            streams,
            configs: overrides,
        };
        self.persist(name, &record, Compare::Absent(topic_key(name)))
            .await?;
        let topic = self.build(name, record).await?;
        self.insert(topic.clone());
        tracing::info!(topic = name, partitions = count, "created topic");
        Ok(Some(topic))
    }

    async fn persist(
        &self,
        name: &str,
        record: &TopicRecord,
        guard: Compare,
    ) -> Result<(), TopicError> {
        let value = encode(name, record)?;
        let txn = Txn::new()
            .when(guard)
            .and_then(Op::put(topic_key(name), value));
        if !self.meta.txn(txn).await?.succeeded {
            return Err(TopicError::Conflict(name.to_string()));
        }
        Ok(())
    }

    fn record_of(topic: &Topic) -> TopicRecord {
        TopicRecord {
            id: topic.id,
            streams: topic.partitions.iter().map(|p| p.stream.0).collect(),
            configs: topic.overrides.clone(),
        }
    }

    /// Deletes a topic: the record first (so a crash leaves no half topic), then
    /// its streams and producer state.
    pub async fn delete(&self, name: &str) -> Result<(), TopicError> {
        let _exclusive = self.changes.lock().await;
        let topic = self.existing(name)?;
        self.meta.delete(topic_key(name)).await?;
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        for partition in &topic.partitions {
            self.store.delete_stream(partition.stream).await?;
            partition.forget_snapshot(self.meta.as_ref()).await?;
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `total` partitions.
    pub async fn add_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _exclusive = self.changes.lock().await;
        let topic = self.existing(name)?;
        let current = topic.partitions.len() as i32;
        if total <= current {
            return Err(TopicError::InvalidPartitions {
                requested: total,
                reason: format!("topic {name:?} has {current}; the count can only grow"),
            });
        }
        if total > 10_000 {
            return Err(TopicError::InvalidPartitions {
                requested: total,
                reason: "at most 10000".to_string(),
            });
        }
        if validate_only {
            return Ok(());
        }
        let mut partitions = topic.partitions.clone();
        let mut streams = Vec::with_capacity((total - current) as usize);
        for _ in current..total {
            streams.push(self.store.create_stream().await?);
        }
        self.store.open_streams(&streams).await?;
        for (index, stream) in (current..total).zip(streams) {
            let partition = Partition::load(&self.store, self.meta.as_ref(), index, stream).await?;
            partitions.push(Arc::new(partition));
        }
        let rebuilt = self.assemble(name, topic.id, partitions, topic.overrides.clone());
        self.replace(&topic, rebuilt).await
    }

    fn existing(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        self.get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))
    }

    /// Persists `rebuilt` in place of `old`, if `old` is still what is stored, and
    /// serves it from now on.
    async fn replace(&self, old: &Topic, rebuilt: Arc<Topic>) -> Result<(), TopicError> {
        let stored = encode(&old.name, &Self::record_of(old))?;
        self.persist(
            &old.name,
            &Self::record_of(&rebuilt),
            Compare::Value(topic_key(&old.name), stored),
        )
        .await?;
        self.insert(rebuilt);
        Ok(())
    }

    /// Replaces a topic's overrides (AlterConfigs) or only validates them.
    pub async fn set_overrides(
        &self,
        name: &str,
        overrides: TopicOverrides,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _exclusive = self.changes.lock().await;
        let topic = self.existing(name)?;
        if validate_only {
            return Ok(());
        }
        let rebuilt = self.assemble(name, topic.id, topic.partitions.clone(), overrides);
        self.replace(&topic, rebuilt).await
    }

    /// Persists every partition's producer state that changed or whose log grew, a
    /// few hundred partitions per metadata transaction.
    pub async fn snapshot_producers(&self) {
        const PER_TXN: usize = 256;
        // Topic changes wait for the round: a topic deleted between a snapshot's
        // preparation and its write would get its producer state back.
        let _exclusive = self.changes.lock().await;
        let mut prepared = Vec::new();
        for topic in self.list() {
            for partition in &topic.partitions {
                match partition.prepare_snapshot(&self.store).await {
                    Ok(Some(snapshot)) => prepared.push((partition.clone(), snapshot)),
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(topic = %topic.name, partition = partition.index, %err, "producer state snapshot failed");
                    }
                }
            }
        }
        for chunk in prepared.chunks(PER_TXN) {
            let mut txn = Txn::new();
            for (_, snapshot) in chunk {
                txn = txn.and_then(Op::put(snapshot.key.clone(), snapshot.value.clone()));
            }
            match self.meta.txn(txn).await {
                Ok(_) => {
                    for (partition, snapshot) in chunk {
                        partition.snapshot_written(snapshot);
                    }
                }
                Err(err) => {
                    tracing::warn!(partitions = chunk.len(), %err, "producer state snapshots failed; retrying next round");
                    for (partition, _) in chunk {
                        partition.snapshot_failed();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_name("orders.v1_eu-west").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("..").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name(&"x".repeat(250)).is_err());
    }
}
