//! Counts and logs each retry before its backoff sleep.

use opendal::layers::{RetryEvent, RetryInterceptor};

use super::metrics::names;
use crate::config::StorageKind;

pub(crate) struct RetryNotifier {
    backend: &'static str,
}

impl RetryNotifier {
    pub(crate) fn new(kind: StorageKind) -> Self {
        RetryNotifier {
            backend: kind.as_str(),
        }
    }
}

impl RetryInterceptor for RetryNotifier {
    fn intercept(&self, event: RetryEvent<'_>) {
        let operation = event.op.into_static();
        metrics::counter!(names::RETRIES, "backend" => self.backend, "operation" => operation)
            .increment(1);
        tracing::warn!(
            backend = self.backend,
            operation,
            attempt = event.attempt,
            retry_after_ms = event.retry_after.as_millis() as u64,
            error = %event.err,
            "object store operation failed transiently; retrying"
        );
    }
}
