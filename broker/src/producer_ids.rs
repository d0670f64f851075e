//! Producer ids for idempotent producers, unique across restarts: blocks of ids are
//! reserved in the metadata store with compare-and-set, then handed out from memory.

use std::sync::Mutex;

use bytes::Bytes;
use strata_core::meta::{Compare, MetaError, MetaStore, Op, Txn};

const KEY: &str = "k/producer-ids/next";
const BLOCK: i64 = 1000;

pub struct ProducerIds {
    /// `next..end` of the reserved block.
    block: Mutex<(i64, i64)>,
}

impl Default for ProducerIds {
    fn default() -> Self {
        ProducerIds {
            block: Mutex::new((0, 0)),
        }
    }
}

impl ProducerIds {
    /// A producer id never handed out before.
    pub async fn next(&self, meta: &dyn MetaStore) -> Result<i64, MetaError> {
        loop {
            {
                let mut block = self.block.lock().unwrap_or_else(|p| p.into_inner());
                if block.0 < block.1 {
                    let id = block.0;
                    block.0 += 1;
                    return Ok(id);
                }
            }
            let key = Bytes::from_static(KEY.as_bytes());
            let current = meta.get(&key).await?;
            let (start, guard) = match &current {
                Some(kv) => {
                    let start = std::str::from_utf8(&kv.value)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .unwrap_or(0);
                    (start, Compare::ModRevision(key.clone(), kv.mod_revision))
                }
                None => (0, Compare::Absent(key.clone())),
            };
            let end = start + BLOCK;
            let txn = Txn::new()
                .when(guard)
                .and_then(Op::put(key, Bytes::from(end.to_string())));
            if meta.txn(txn).await?.succeeded {
                *self.block.lock().unwrap_or_else(|p| p.into_inner()) = (start, end);
            }
        }
    }
}
