//! `strata storage check`: exercises a store the way the stream store will use it,
//! one capability at a time, and names the cause of the first failure.
//!
//! The probe writes only under `_strata_probe/<unique>/` and removes what it wrote,
//! also when a step fails.

mod diagnose;

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opendal::{ErrorKind, Operator};

pub use diagnose::{Cause, Diagnosis, diagnose};

use crate::Storage;
use crate::profile::ConditionalCreate;

/// Size of the object written by the multipart step: three parts of 5 MiB (the S3
/// minimum part size), the last one short.
const LARGE_OBJECT_BYTES: usize = 12 * 1024 * 1024;
const PART_BYTES: usize = 5 * 1024 * 1024;
const SMALL_OBJECT_BYTES: usize = 4096;

/// One thing the stream store needs from a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Write,
    Read,
    RangeRead,
    Stat,
    List,
    MultipartWrite,
    ConditionalCreate,
    Delete,
}

impl Capability {
    pub const ALL: [Capability; 8] = [
        Capability::Write,
        Capability::Read,
        Capability::RangeRead,
        Capability::Stat,
        Capability::List,
        Capability::MultipartWrite,
        Capability::ConditionalCreate,
        Capability::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Capability::Write => "write",
            Capability::Read => "read",
            Capability::RangeRead => "range-read",
            Capability::Stat => "stat",
            Capability::List => "list",
            Capability::MultipartWrite => "multipart-write",
            Capability::ConditionalCreate => "conditional-create",
            Capability::Delete => "delete",
        }
    }
}

/// How one capability fared.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Works; the text says how.
    Ok(String),
    /// Not offered or not honoured by this store; Strata works without it.
    Unsupported(String),
    /// Broken: the store cannot be used as configured.
    Failed(Diagnosis),
    /// Not tried because an earlier capability failed.
    Skipped,
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub capability: Capability,
    pub outcome: Outcome,
    pub latency: Duration,
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (status, text) = match &self.outcome {
            Outcome::Ok(text) => ("ok", text.clone()),
            Outcome::Unsupported(text) => ("unsupported", text.clone()),
            Outcome::Failed(diagnosis) => ("FAILED", diagnosis.to_string()),
            Outcome::Skipped => ("skipped", "an earlier capability failed".to_string()),
        };
        let latency_ms = self.latency.as_secs_f64() * 1000.0;
        write!(
            f,
            "{status:<11} {:<18} {latency_ms:>9.1} ms  {text}",
            self.capability.name()
        )
    }
}

/// The outcome of every capability, in the order they were tried.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub steps: Vec<StepReport>,
}

impl ProbeReport {
    /// The first failure, which decides the exit status of `strata storage check`.
    pub fn failure(&self) -> Option<&Diagnosis> {
        self.steps.iter().find_map(|step| match &step.outcome {
            Outcome::Failed(diagnosis) => Some(diagnosis),
            _ => None,
        })
    }
}

/// Runs every capability against `storage` in order; stops at the first failure.
pub async fn probe(storage: &Storage) -> ProbeReport {
    let run = ProbeRun::new(storage);
    let mut steps = Vec::with_capacity(Capability::ALL.len());
    let mut failed = false;
    for capability in Capability::ALL {
        if failed {
            steps.push(StepReport {
                capability,
                outcome: Outcome::Skipped,
                latency: Duration::ZERO,
            });
            continue;
        }
        let started = Instant::now();
        let outcome = match run.check(capability).await {
            Ok(outcome) => outcome,
            Err(err) => Outcome::Failed(diagnose(storage.kind(), &err)),
        };
        failed = matches!(outcome, Outcome::Failed(_));
        steps.push(StepReport {
            capability,
            outcome,
            latency: started.elapsed(),
        });
    }
    let wrote_something = matches!(steps.first().map(|s| &s.outcome), Some(Outcome::Ok(_)));
    if failed && wrote_something {
        // Best effort: a store that just failed may refuse this too.
        let _ = run.operator.delete_with(&run.prefix).recursive(true).await;
    }
    ProbeReport { steps }
}

struct ProbeRun<'a> {
    storage: &'a Storage,
    operator: &'a Operator,
    prefix: String,
    small: Bytes,
}

impl<'a> ProbeRun<'a> {
    fn new(storage: &'a Storage) -> Self {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let small: Vec<u8> = (0..SMALL_OBJECT_BYTES)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        ProbeRun {
            storage,
            operator: storage.operator(),
            prefix: format!("_strata_probe/{}-{unique}/", std::process::id()),
            small: Bytes::from(small),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn check(&self, capability: Capability) -> opendal::Result<Outcome> {
        let op = self.operator;
        let small_key = self.key("small");
        match capability {
            Capability::Write => {
                op.write(&small_key, self.small.clone()).await?;
                Ok(Outcome::Ok(format!(
                    "{SMALL_OBJECT_BYTES} bytes in one request"
                )))
            }
            Capability::Read => {
                let read = op.read(&small_key).await?.to_bytes();
                Ok(verify(
                    read == self.small,
                    "read back what was written",
                    "read returned other bytes",
                ))
            }
            Capability::RangeRead => {
                let read = op.read_with(&small_key).range(1000..1100).await?.to_bytes();
                Ok(verify(
                    read == self.small.slice(1000..1100),
                    "bytes 1000..1100 as written",
                    "range read returned other bytes",
                ))
            }
            Capability::Stat => {
                let meta = op.stat(&small_key).await?;
                let length = meta.content_length();
                Ok(verify(
                    length == SMALL_OBJECT_BYTES as u64,
                    &format!("length {length}"),
                    &format!("length {length}, expected {SMALL_OBJECT_BYTES}"),
                ))
            }
            Capability::List => {
                let entries = op.list(&self.prefix).await?;
                let found = entries.iter().any(|e| e.path().ends_with("small"));
                Ok(verify(
                    found,
                    &format!("{} entries under the probe prefix", entries.len()),
                    "the written object is not listed",
                ))
            }
            Capability::MultipartWrite => self.multipart_write().await,
            Capability::ConditionalCreate => self.conditional_create().await,
            Capability::Delete => {
                op.delete_with(&self.prefix).recursive(true).await?;
                match op.stat(&small_key).await {
                    Err(err) if err.kind() == ErrorKind::NotFound => {
                        Ok(Outcome::Ok("removed every probe object".to_string()))
                    }
                    Err(err) => Err(err),
                    Ok(_) => Ok(Outcome::Failed(Diagnosis {
                        cause: Cause::Other,
                        detail: "a deleted object is still there".to_string(),
                    })),
                }
            }
        }
    }

    async fn multipart_write(&self) -> opendal::Result<Outcome> {
        let op = self.operator;
        let key = self.key("large");
        let mut writer = op.writer_with(&key).chunk(PART_BYTES).concurrent(2).await?;
        let block = Bytes::from(vec![0x5a_u8; 1024 * 1024]);
        for _ in 0..LARGE_OBJECT_BYTES / block.len() {
            writer.write(block.clone()).await?;
        }
        writer.close().await?;
        let length = op.stat(&key).await?.content_length();
        let parts = LARGE_OBJECT_BYTES.div_ceil(PART_BYTES);
        let how = if op.info().capability().write_can_multi {
            format!("{} MiB in {parts} parts", LARGE_OBJECT_BYTES >> 20)
        } else {
            format!(
                "{} MiB streamed in {parts} chunks",
                LARGE_OBJECT_BYTES >> 20
            )
        };
        Ok(verify(
            length == LARGE_OBJECT_BYTES as u64,
            &how,
            &format!("large object has length {length}"),
        ))
    }

    async fn conditional_create(&self) -> opendal::Result<Outcome> {
        let op = self.operator;
        if !op.info().capability().write_with_if_not_exists {
            return Ok(Outcome::Unsupported(
                "the backend offers no create-only write".to_string(),
            ));
        }
        let key = self.key("create-only");
        op.write_with(&key, self.small.clone())
            .if_not_exists(true)
            .await?;
        let relied_on = self.storage.profile().conditional_create != ConditionalCreate::Unsupported;
        match op
            .write_with(&key, self.small.clone())
            .if_not_exists(true)
            .await
        {
            Err(err) if err.kind() == ErrorKind::ConditionNotMatch => {
                Ok(Outcome::Ok(if relied_on {
                    "a second create-only write was refused".to_string()
                } else {
                    "honoured by this server, but the preset does not rely on it".to_string()
                }))
            }
            Err(err) => Err(err),
            Ok(_) => Ok(Outcome::Unsupported(
                "the server ignored If-None-Match: a second create-only write succeeded"
                    .to_string(),
            )),
        }
    }
}

fn verify(ok: bool, good: &str, bad: &str) -> Outcome {
    if ok {
        Outcome::Ok(good.to_string())
    } else {
        Outcome::Failed(Diagnosis {
            cause: Cause::Other,
            detail: bad.to_string(),
        })
    }
}
