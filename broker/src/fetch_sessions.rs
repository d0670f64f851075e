//! Incremental fetch sessions (KIP-227): the broker remembers a consumer's
//! partitions so that each fetch names only what changed and each response carries
//! only partitions with news.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use kafka_protocol::ResponseError;

/// What the session knows of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPartition {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// High watermark and log start last sent, to tell whether there is news.
    pub sent_high_watermark: i64,
    pub sent_log_start: i64,
}

/// `(topic, partition)`.
pub type Key = (String, i32);

#[derive(Debug)]
pub struct Session {
    pub id: i32,
    /// The epoch the next request must carry.
    pub next_epoch: i32,
    pub partitions: BTreeMap<Key, SessionPartition>,
    last_used: Instant,
}

pub struct FetchSessions {
    sessions: Mutex<HashMap<i32, Session>>,
    capacity: usize,
}

/// What a fetch request asks of the session cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRequest {
    /// `session_id = 0, epoch = -1`: a full fetch without a session.
    Sessionless,
    /// `session_id = 0, epoch = 0`: a full fetch that opens a session.
    Open,
    /// `epoch > 0`: an incremental fetch of an open session.
    Incremental { id: i32, epoch: i32 },
    /// `session_id > 0, epoch = -1`: close the session, fetch in full.
    Close { id: i32 },
}

impl SessionRequest {
    pub fn parse(id: i32, epoch: i32) -> SessionRequest {
        match (id, epoch) {
            (0, -1) => SessionRequest::Sessionless,
            (0, _) => SessionRequest::Open,
            (id, -1) => SessionRequest::Close { id },
            (id, epoch) => SessionRequest::Incremental { id, epoch },
        }
    }
}

impl FetchSessions {
    pub fn new(capacity: usize) -> FetchSessions {
        FetchSessions {
            sessions: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session holding `partitions`; evicts the least recently used one
    /// when full. Returns the new id.
    pub fn open(&self, partitions: BTreeMap<Key, SessionPartition>) -> i32 {
        let mut sessions = self.lock();
        if sessions.len() >= self.capacity
            && let Some(oldest) = sessions.values().min_by_key(|s| s.last_used).map(|s| s.id)
        {
            sessions.remove(&oldest);
        }
        let mut id = rand_id();
        while id == 0 || sessions.contains_key(&id) {
            id = rand_id();
        }
        sessions.insert(
            id,
            Session {
                id,
                next_epoch: 1,
                partitions,
                last_used: Instant::now(),
            },
        );
        id
    }

    pub fn close(&self, id: i32) {
        self.lock().remove(&id);
    }

    /// Applies an incremental request: `update` adds or changes partitions,
    /// `forget` removes them. Returns the session's partitions after the change.
    pub fn update(
        &self,
        id: i32,
        epoch: i32,
        update: Vec<(Key, i64, i32)>,
        forget: Vec<Key>,
    ) -> Result<BTreeMap<Key, SessionPartition>, ResponseError> {
        let mut sessions = self.lock();
        let session = sessions
            .get_mut(&id)
            .ok_or(ResponseError::FetchSessionIdNotFound)?;
        if session.next_epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        session.last_used = Instant::now();
        for key in forget {
            session.partitions.remove(&key);
        }
        for (key, fetch_offset, max_bytes) in update {
            let entry = session.partitions.entry(key).or_insert(SessionPartition {
                fetch_offset,
                max_bytes,
                sent_high_watermark: -1,
                sent_log_start: -1,
            });
            entry.fetch_offset = fetch_offset;
            entry.max_bytes = max_bytes;
        }
        Ok(session.partitions.clone())
    }

    /// Records what a response told the client about a partition. Fetch offsets
    /// change only by request: the client names a partition whose position moved.
    pub fn sent(&self, id: i32, key: &Key, high: i64, log_start: i64) {
        if let Some(partition) = self
            .lock()
            .get_mut(&id)
            .and_then(|s| s.partitions.get_mut(key))
        {
            partition.sent_high_watermark = high;
            partition.sent_log_start = log_start;
        }
    }
}

fn rand_id() -> i32 {
    (uuid::Uuid::new_v4().as_u128() as i32) & i32::MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(offset: i64) -> SessionPartition {
        SessionPartition {
            fetch_offset: offset,
            max_bytes: 1024,
            sent_high_watermark: -1,
            sent_log_start: -1,
        }
    }

    #[test]
    fn incremental_updates_need_the_right_epoch() {
        let sessions = FetchSessions::new(2);
        let id = sessions.open(BTreeMap::from([(("t".to_string(), 0), part(0))]));
        assert_eq!(
            sessions.update(id, 2, vec![], vec![]),
            Err(ResponseError::InvalidFetchSessionEpoch)
        );
        let now = sessions
            .update(id, 1, vec![(("t".to_string(), 1), 5, 10)], vec![])
            .expect("epoch 1");
        assert_eq!(now.len(), 2);
        let now = sessions
            .update(id, 2, vec![], vec![("t".to_string(), 0)])
            .expect("epoch 2");
        assert_eq!(
            now.keys().cloned().collect::<Vec<_>>(),
            vec![("t".to_string(), 1)]
        );
        assert_eq!(
            sessions.update(id + 1, 1, vec![], vec![]),
            Err(ResponseError::FetchSessionIdNotFound)
        );
        sessions.open(BTreeMap::new());
        sessions.open(BTreeMap::new());
        assert_eq!(
            sessions.update(id, 3, vec![], vec![]),
            Err(ResponseError::FetchSessionIdNotFound),
            "the least recently used session was evicted"
        );
    }
}
