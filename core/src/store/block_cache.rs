//! Verified blocks read from objects, bounded by bytes, least recently used out first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;

use crate::object::ObjectId;

/// A block: its object and byte position.
pub(super) type BlockKey = (ObjectId, u64);

pub(super) struct BlockCache {
    capacity_bytes: usize,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    entries: HashMap<BlockKey, (Bytes, u64)>,
    by_age: BTreeMap<u64, BlockKey>,
    bytes: usize,
    tick: u64,
}

impl BlockCache {
    pub(super) fn new(capacity_bytes: usize) -> Self {
        BlockCache {
            capacity_bytes,
            inner: Mutex::new(Lru::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn get(&self, key: BlockKey) -> Option<Bytes> {
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        let (bytes, age) = lru.entries.get_mut(&key)?;
        let (bytes, old) = (bytes.clone(), std::mem::replace(age, tick));
        lru.by_age.remove(&old);
        lru.by_age.insert(tick, key);
        Some(bytes)
    }

    pub(super) fn insert(&self, key: BlockKey, block: Bytes) {
        if block.len() > self.capacity_bytes {
            return;
        }
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        lru.bytes += block.len();
        if let Some((old, age)) = lru.entries.insert(key, (block, tick)) {
            lru.bytes -= old.len();
            lru.by_age.remove(&age);
        }
        lru.by_age.insert(tick, key);
        while lru.bytes > self.capacity_bytes {
            let Some((_, oldest)) = lru.by_age.pop_first() else {
                break;
            };
            if let Some((evicted, _)) = lru.entries.remove(&oldest) {
                lru.bytes -= evicted.len();
            }
        }
    }

    pub(super) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let cache = BlockCache::new(300);
        let block = |n: u8| Bytes::from(vec![n; 100]);
        cache.insert((ObjectId(1), 0), block(1));
        cache.insert((ObjectId(1), 100), block(2));
        cache.insert((ObjectId(1), 200), block(3));
        assert!(cache.get((ObjectId(1), 0)).is_some()); // now most recent
        cache.insert((ObjectId(2), 0), block(4));
        assert!(
            cache.get((ObjectId(1), 100)).is_none(),
            "the least recently used block stays"
        );
        assert!(cache.get((ObjectId(1), 0)).is_some());
        assert_eq!(cache.bytes(), 300);
        cache.insert((ObjectId(3), 0), Bytes::from(vec![0; 301]));
        assert!(
            cache.get((ObjectId(3), 0)).is_none(),
            "a block larger than the cache is not kept"
        );
    }
}
