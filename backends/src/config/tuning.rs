//! Retry, timeout and concurrency settings shared by every backend.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;

use crate::error::ConfigError;

/// Keys of `[storage]` that belong to [`Tuning`] whatever the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuning {
    /// Upper bound on storage operations in flight at once, across the process.
    #[serde(default = "Tuning::default_concurrency")]
    pub max_concurrent_requests: NonZeroUsize,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub retry: RetryPolicy,
}

impl Tuning {
    pub(crate) const KEYS: &'static [&'static str] =
        &["max_concurrent_requests", "timeouts", "retry"];

    fn default_concurrency() -> NonZeroUsize {
        NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("storage.timeouts.operation", self.timeouts.operation),
            ("storage.timeouts.io", self.timeouts.io),
            ("storage.timeouts.connect", self.timeouts.connect),
            ("storage.retry.min_delay", self.retry.min_delay),
            ("storage.retry.max_delay", self.retry.max_delay),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::invalid(
                    key,
                    "0s",
                    "a duration above zero, like \"100ms\"",
                ));
            }
        }
        if self.retry.min_delay > self.retry.max_delay {
            return Err(ConfigError::invalid(
                "storage.retry.min_delay",
                &humantime::format_duration(self.retry.min_delay).to_string(),
                "at most storage.retry.max_delay",
            ));
        }
        if !(self.retry.factor >= 1.0 && self.retry.factor.is_finite()) {
            return Err(ConfigError::invalid(
                "storage.retry.factor",
                &self.retry.factor.to_string(),
                "a finite number >= 1.0",
            ));
        }
        Ok(())
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            max_concurrent_requests: Self::default_concurrency(),
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
        }
    }
}

/// `[storage.timeouts]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Deadline for one whole non-streaming operation (stat, delete, one list page).
    #[serde(with = "humantime_serde")]
    pub operation: Duration,
    /// Deadline for each read or write step of a streaming operation; a stalled
    /// transfer fails after this long without data moving.
    #[serde(with = "humantime_serde")]
    pub io: Duration,
    /// TCP and TLS connect deadline for HTTP backends.
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            operation: Duration::from_secs(60),
            io: Duration::from_secs(30),
            connect: Duration::from_secs(5),
        }
    }
}

/// `[storage.retry]`: exponential backoff with jitter for transient failures only.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 turns retrying off.
    pub max_retries: usize,
    #[serde(with = "humantime_serde")]
    pub min_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Growth of the delay between attempts.
    pub factor: f32,
    /// Randomise each delay so that many clients do not retry in step.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            factor: 2.0,
            jitter: true,
        }
    }
}
