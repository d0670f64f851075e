//! Object ids allocated ahead of the writes that use them.
//!
//! An object's id is allocated with its prepared record in a metadata commit before
//! its PUT (see [`metadata::allocate_objects`]). Made per object, that commit sat on
//! the object WAL's acknowledgement path beside the window's own commit: two
//! metadata syncs per window. The pool allocates ids a batch at a time, refilled in
//! the background before it runs dry, so a write takes one without waiting.
//!
//! An id in the pool is only a prepared record with no object: the next open removes
//! it like the record of an upload a crash interrupted, and `close` deletes the
//! pool's records itself.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::StoreError;
use super::lifecycle::Tasks;
use super::metadata::{self, ObjectRecord, ObjectState};
use crate::meta::{MetaStore, Op, Txn};
use crate::object::{ObjectId, ObjectKind};

/// Ids allocated by one metadata commit.
const BATCH: u64 = 8;
/// A refill starts when fewer ids than this are left: the object WAL writes up to
/// four windows at once, and an upload, merge or compaction may take one meanwhile.
/// Hedges (rare) may find the pool empty; they then allocate ids of their own.
const LOW_WATER: usize = 6;

#[derive(Default)]
pub(super) struct ObjectIds {
    /// In allocation order, taken oldest first, so object ids still follow the
    /// order objects are written in.
    ready: Mutex<VecDeque<ObjectId>>,
    refilling: AtomicBool,
}

impl ObjectIds {
    /// An id for a new object of `kind` and `size`, with the record its commit
    /// stores (prepared here; the commit changes the state).
    pub(super) async fn take(
        self: &Arc<Self>,
        meta: &Arc<dyn MetaStore>,
        tasks: &Tasks,
        kind: ObjectKind,
        size: u64,
    ) -> Result<(ObjectId, ObjectRecord), StoreError> {
        let popped = self.lock().pop_front();
        let id = match popped {
            Some(id) => id,
            None => {
                metrics::counter!("strata_object_id_pool_empty_total").increment(1);
                let mut ids = metadata::allocate_objects(meta.as_ref(), BATCH).await?;
                let id = ids.remove(0);
                self.lock().extend(ids);
                id
            }
        };
        self.refill_if_low(meta, tasks);
        let record = ObjectRecord {
            state: ObjectState::Prepared,
            kind,
            size,
            created_ms: metadata::now_ms(),
        };
        Ok((id, record))
    }

    fn refill_if_low(self: &Arc<Self>, meta: &Arc<dyn MetaStore>, tasks: &Tasks) {
        if self.lock().len() >= LOW_WATER
            || tasks.is_stopping()
            || self.refilling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let pool = self.clone();
        let meta = meta.clone();
        tasks.spawn(async move {
            match metadata::allocate_objects(meta.as_ref(), BATCH).await {
                Ok(ids) => pool.lock().extend(ids),
                // The next take allocates for itself and reports the error.
                Err(err) => tracing::warn!(error = %err, "cannot allocate object ids ahead"),
            }
            pool.refilling.store(false, Ordering::Release);
        });
    }

    /// Deletes the records of the ids nobody took. Called once no write can take
    /// one (the store's tasks have stopped).
    pub(super) async fn release(&self, meta: &dyn MetaStore) -> Result<(), StoreError> {
        let ids = std::mem::take(&mut *self.lock());
        if ids.is_empty() {
            return Ok(());
        }
        let txn = ids.iter().fold(Txn::new(), |txn, id| {
            txn.and_then(Op::Delete {
                key: metadata::object_key(*id),
            })
        });
        meta.txn(txn).await?;
        Ok(())
    }

    /// Ids allocated and not yet taken.
    pub(super) fn unused(&self) -> HashSet<ObjectId> {
        self.lock().iter().copied().collect()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<ObjectId>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }
}
