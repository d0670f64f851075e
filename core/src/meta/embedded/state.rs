//! The in-memory state the log replays into.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::meta::{Compare, KeyValue, Op, WatchEvent, WatchEventKind};

#[derive(Debug, Default)]
pub(super) struct State {
    pub revision: u64,
    pub entries: BTreeMap<Bytes, KeyValue>,
}

impl State {
    pub(super) fn holds(&self, compare: &Compare) -> bool {
        match compare {
            Compare::Absent(key) => !self.entries.contains_key(key),
            Compare::ModRevision(key, revision) => self
                .entries
                .get(key)
                .is_some_and(|kv| kv.mod_revision == *revision),
            Compare::Value(key, value) => {
                self.entries.get(key).is_some_and(|kv| kv.value == *value)
            }
        }
    }

    /// Applies `ops` at `revision`, returning the changes for watchers.
    pub(super) fn apply(&mut self, revision: u64, ops: &[Op]) -> Vec<WatchEvent> {
        self.revision = revision;
        let mut events = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let kv = match self.entries.get(key) {
                        Some(old) => KeyValue {
                            value: value.clone(),
                            mod_revision: revision,
                            version: old.version + 1,
                            lease: *lease,
                            ..old.clone()
                        },
                        None => KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: revision,
                            mod_revision: revision,
                            version: 1,
                            lease: *lease,
                        },
                    };
                    self.entries.insert(key.clone(), kv.clone());
                    events.push(WatchEvent {
                        kind: WatchEventKind::Put,
                        kv,
                    });
                }
                Op::Delete { key } => {
                    if let Some(old) = self.entries.remove(key) {
                        let kv = KeyValue {
                            value: Bytes::new(),
                            mod_revision: revision,
                            ..old
                        };
                        events.push(WatchEvent {
                            kind: WatchEventKind::Delete,
                            kv,
                        });
                    }
                }
            }
        }
        events
    }

    pub(super) fn restore(&mut self, revision: u64, entries: Vec<KeyValue>) {
        self.revision = revision;
        self.entries = entries.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    }
}
