//! Values that cross the [`MetaStore`](super::MetaStore) trait.

use bytes::Bytes;
use tokio::sync::broadcast;

/// A lease handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub u64);

/// A key with its value and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Bytes,
    /// Revision of the commit that created the key (since its last deletion).
    pub create_revision: u64,
    /// Revision of the commit that last wrote it.
    pub mod_revision: u64,
    /// Writes since creation, starting at 1.
    pub version: u64,
    pub lease: Option<LeaseId>,
}

/// A condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Absent(Bytes),
    /// The key exists and was last written at this revision.
    ModRevision(Bytes, u64),
    /// The key exists and holds exactly this value.
    Value(Bytes, Bytes),
}

/// A write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Bytes,
        value: Bytes,
        lease: Option<LeaseId>,
    },
    Delete {
        key: Bytes,
    },
}

impl Op {
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }

    pub fn key(&self) -> &Bytes {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// Compares, then the writes to apply if they all hold, else the other writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Txn::default()
    }

    pub fn when(mut self, compare: Compare) -> Self {
        self.compares.push(compare);
        self
    }

    pub fn and_then(mut self, op: Op) -> Self {
        self.success.push(op);
        self
    }

    pub fn or_else(mut self, op: Op) -> Self {
        self.failure.push(op);
        self
    }
}

/// What a transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Whether every compare held (and `success` was applied).
    pub succeeded: bool,
    /// The store's revision after the transaction.
    pub revision: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventKind {
    Put,
    Delete,
}

/// One change seen by a watch. For a delete, `kv` holds the key and the deleting
/// revision, with an empty value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: WatchEventKind,
    pub kv: KeyValue,
}

/// Changes under a prefix, in commit order.
pub struct WatchStream {
    pub(super) prefix: Bytes,
    pub(super) events: broadcast::Receiver<WatchEvent>,
}

/// A watcher fell so far behind that events were dropped; it must re-read the
/// prefix and watch again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("watch fell behind by {0} events; re-read and watch again")]
pub struct WatchLagged(pub u64);

impl WatchStream {
    /// The next change under the prefix; `Ok(None)` once the store is gone.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, WatchLagged> {
        loop {
            match self.events.recv().await {
                Ok(event) if event.kv.key.starts_with(&self.prefix) => return Ok(Some(event)),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
                Err(broadcast::error::RecvError::Lagged(n)) => return Err(WatchLagged(n)),
            }
        }
    }
}
