//! A [`MetaStore`] wrapper that records each operation's latency and errors.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{KeyValue, LeaseId, MetaError, MetaStore, Txn, TxnOutcome, WatchStream};

/// Wraps any metadata store with `strata_meta_*` metrics.
pub struct MeteredMetaStore<M> {
    inner: M,
}

impl<M> MeteredMetaStore<M> {
    pub fn new(inner: M) -> Self {
        MeteredMetaStore { inner }
    }
}

fn observe<T>(operation: &'static str, started: Instant, result: &Result<T, MetaError>) {
    metrics::histogram!("strata_meta_operation_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    if result.is_err() {
        metrics::counter!("strata_meta_errors_total", "operation" => operation).increment(1);
    }
}

#[async_trait]
impl<M: MetaStore> MetaStore for MeteredMetaStore<M> {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, MetaError> {
        let started = Instant::now();
        let result = self.inner.get(key).await;
        observe("get", started, &result);
        result
    }

    async fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<KeyValue>, MetaError> {
        let started = Instant::now();
        let result = self.inner.scan_prefix(prefix, limit).await;
        observe("scan", started, &result);
        result
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        let started = Instant::now();
        let result = self.inner.txn(txn).await;
        observe("txn", started, &result);
        if let Ok(outcome) = &result
            && !outcome.succeeded
        {
            metrics::counter!("strata_meta_txn_conflicts_total").increment(1);
        }
        result
    }

    async fn watch(&self, prefix: &[u8]) -> Result<WatchStream, MetaError> {
        let started = Instant::now();
        let result = self.inner.watch(prefix).await;
        observe("watch", started, &result);
        result
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        let started = Instant::now();
        let result = self.inner.grant_lease(ttl).await;
        observe("grant_lease", started, &result);
        result
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), MetaError> {
        let started = Instant::now();
        let result = self.inner.keep_alive(lease).await;
        observe("keep_alive", started, &result);
        result
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), MetaError> {
        let started = Instant::now();
        let result = self.inner.revoke_lease(lease).await;
        observe("revoke_lease", started, &result);
        result
    }
}
