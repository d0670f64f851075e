//! Committed offsets of consumer groups, durable in the metadata store and cached
//! in memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_core::meta::{MetaError, MetaStore, Op, Txn};

const PREFIX: &str = "k/offset/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

impl Committed {
    /// What OffsetFetch answers for a partition without a committed offset.
    pub fn absent() -> Committed {
        Committed {
            offset: -1,
            leader_epoch: -1,
            metadata: Some(String::new()),
            commit_timestamp_ms: -1,
        }
    }
}

/// `(topic, partition)`.
pub type TopicPartition = (String, i32);

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    group: String,
    topic: String,
    partition: i32,
    committed: Committed,
}

/// Group ids may hold any character, so the key carries them hex-encoded.
fn group_prefix(group: &str) -> String {
    let mut key = String::from(PREFIX);
    for byte in group.bytes() {
        let _ = write!(key, "{byte:02x}");
    }
    key.push('/');
    key
}

fn key(group: &str, topic: &str, partition: i32) -> Bytes {
    Bytes::from(format!("{}{topic}/{partition}", group_prefix(group)))
}

pub struct OffsetStore {
    meta: Arc<dyn MetaStore>,
    cache: Mutex<BTreeMap<String, BTreeMap<TopicPartition, Committed>>>,
}

impl OffsetStore {
    pub async fn load(meta: Arc<dyn MetaStore>) -> Result<OffsetStore, MetaError> {
        let mut cache: BTreeMap<String, BTreeMap<TopicPartition, Committed>> = BTreeMap::new();
        for kv in meta.scan_prefix(PREFIX.as_bytes(), 0).await? {
            match serde_json::from_slice::<Record>(&kv.value) {
                Ok(record) => {
                    cache
                        .entry(record.group)
                        .or_default()
                        .insert((record.topic, record.partition), record.committed);
                }
                Err(err) => {
                    tracing::warn!(key = %String::from_utf8_lossy(&kv.key), %err, "skipping unreadable committed offset");
                }
            }
        }
        Ok(OffsetStore {
            meta,
            cache: Mutex::new(cache),
        })
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<TopicPartition, Committed>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits all of `offsets` in one transaction: all or none become durable.
    pub async fn commit(
        &self,
        group: &str,
        offsets: Vec<(TopicPartition, Committed)>,
    ) -> Result<(), MetaError> {
        let mut txn = Txn::new();
        for ((topic, partition), committed) in &offsets {
            let record = Record {
                group: group.to_string(),
                topic: topic.clone(),
                partition: *partition,
                committed: committed.clone(),
            };
            let value = serde_json::to_vec(&record).unwrap_or_default();
            txn = txn.and_then(Op::put(key(group, topic, *partition), value));
        }
        self.meta.txn(txn).await?;
        let mut cache = self.lock();
        let entry = cache.entry(group.to_string()).or_default();
        for (tp, committed) in offsets {
            entry.insert(tp, committed);
        }
        Ok(())
    }

    pub fn fetch(&self, group: &str, tp: &TopicPartition) -> Option<Committed> {
        self.lock().get(group).and_then(|g| g.get(tp)).cloned()
    }

    pub fn fetch_all(&self, group: &str) -> Vec<(TopicPartition, Committed)> {
        self.lock()
            .get(group)
            .map(|g| g.iter().map(|(tp, c)| (tp.clone(), c.clone())).collect())
            .unwrap_or_default()
    }

    pub fn groups(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, offsets)| !offsets.is_empty())
            .map(|(group, _)| group.clone())
            .collect()
    }

    /// Deletes the given partitions' offsets of `group`, or all of them with `None`.
    pub async fn delete(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<(), MetaError> {
        let doomed: Vec<TopicPartition> = match partitions {
            Some(list) => list.to_vec(),
            None => self
                .fetch_all(group)
                .into_iter()
                .map(|(tp, _)| tp)
                .collect(),
        };
        let mut txn = Txn::new();
        for (topic, partition) in &doomed {
            txn = txn.and_then(Op::Delete {
                key: key(group, topic, *partition),
            });
        }
        self.meta.txn(txn).await?;
        let mut cache = self.lock();
        if let Some(entry) = cache.get_mut(group) {
            for tp in &doomed {
                entry.remove(tp);
            }
            if entry.is_empty() {
                cache.remove(group);
            }
        }
        Ok(())
    }

    /// Forgets offsets of a deleted topic in every group.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), MetaError> {
        let affected: Vec<(String, Vec<TopicPartition>)> = self
            .lock()
            .iter()
            .map(|(group, offsets)| {
                (
                    group.clone(),
                    offsets
                        .keys()
                        .filter(|(t, _)| t == topic)
                        .cloned()
                        .collect(),
                )
            })
            .filter(|(_, tps): &(String, Vec<TopicPartition>)| !tps.is_empty())
            .collect();
        for (group, tps) in affected {
            self.delete(&group, Some(&tps)).await?;
        }
        Ok(())
    }
}
