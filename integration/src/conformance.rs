//! The storage conformance suite: what the stream store needs from any backend,
//! checked through the layered operator that `strata-backends` builds.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use libtest_mimic::{Failed, Trial};
use opendal::{ErrorKind, Operator};
use strata_backends::probe::Capability;
use strata_backends::{ConditionalCreate, Storage, StorageConfig};

use crate::cli;

/// One backend under test.
pub struct Backend {
    /// Prefix of every trial name, such as `ceph` or `cubefs-on-seaweedfs`.
    pub label: String,
    /// A Strata config document whose `[storage]` section reaches the server.
    pub config: String,
    /// Credentials that may not write to the bucket, where the server has users.
    pub restricted_config: Option<String>,
    /// `strata storage check` runs against this backend.
    pub checks: Vec<StorageCheck>,
}

/// One `strata storage check` run and what it must report.
pub struct StorageCheck {
    pub name: &'static str,
    pub config: String,
    pub expect: CheckExpectation,
    /// Run `strata` with its wall clock shifted by this much (libfaketime syntax,
    /// such as `-2h`), to meet a server's clock-skew check for real.
    pub clock_offset: Option<&'static str>,
}

impl StorageCheck {
    pub fn passes(config: String) -> Self {
        StorageCheck {
            name: "passes",
            config,
            expect: CheckExpectation::Passes,
            clock_offset: None,
        }
    }

    pub fn fails(name: &'static str, config: String, cause: &'static str) -> Self {
        StorageCheck {
            name,
            config,
            expect: CheckExpectation::FailsWith(cause),
            clock_offset: None,
        }
    }

    pub fn with_clock_offset(mut self, offset: &'static str) -> Self {
        self.clock_offset = Some(offset);
        self
    }
}

pub enum CheckExpectation {
    /// Exit 0, every capability `ok` or `unsupported`.
    Passes,
    /// Exit non-zero naming this cause label, such as `bucket-missing`.
    FailsWith(&'static str),
}

type TrialResult = Result<(), String>;
type TrialFuture = std::pin::Pin<Box<dyn Future<Output = TrialResult> + Send>>;

struct Context {
    runtime: tokio::runtime::Runtime,
    storage: Storage,
    prefix: String,
}

impl Context {
    fn op(&self) -> &Operator {
        self.storage.operator()
    }

    fn key(&self, trial: &str, name: &str) -> String {
        format!("{}{trial}/{name}", self.prefix)
    }

    fn dir(&self, trial: &str) -> String {
        format!("{}{trial}/", self.prefix)
    }
}

/// Every trial for `backend`. Opening the backend is itself checked: a config the
/// suite cannot open fails the first trial instead of skipping the rest.
pub fn trials(backend: Backend) -> Vec<Trial> {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return vec![failing(
                &backend.label,
                "runtime",
                format!("cannot start tokio: {err}"),
            )];
        }
    };
    let storage = match StorageConfig::from_document(&backend.config)
        .map_err(|e| e.to_string())
        .and_then(|config| Storage::open(&config).map_err(|e| e.to_string()))
    {
        Ok(storage) => storage,
        Err(err) => return vec![failing(&backend.label, "open", err)],
    };
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let ctx = Arc::new(Context {
        runtime,
        storage,
        prefix: format!("conformance/{}-{unique}/", backend.label),
    });
    let label = backend.label.clone();
    let capability = ctx.op().info().capability();

    let mut trials = Vec::new();
    let mut add = |name: &str, test: fn(Arc<Context>) -> TrialFuture| {
        let ctx = ctx.clone();
        trials.push(Trial::test(format!("{label}::{name}"), move || {
            ctx.runtime
                .block_on(test(ctx.clone()))
                .map_err(Failed::from)
        }));
    };
    add("small_round_trip", |c| Box::pin(small_round_trip(c)));
    add("large_round_trip_64mib", |c| Box::pin(large_round_trip(c)));
    add("ranged_reads", |c| Box::pin(ranged_reads(c)));
    add("listing_with_prefixes", |c| {
        Box::pin(listing_with_prefixes(c))
    });
    add("listing_more_than_1000_keys", |c| {
        Box::pin(listing_many_keys(c))
    });
    add("overwrite", |c| Box::pin(overwrite(c)));
    add("batch_delete", |c| Box::pin(batch_delete(c)));
    add("concurrent_writers", |c| Box::pin(concurrent_writers(c)));
    add("error_not_found", |c| Box::pin(error_not_found(c)));
    if capability.write_with_if_not_exists {
        add("conditional_create", |c| Box::pin(conditional_create(c)));
        add("conditional_create_race", |c| {
            Box::pin(conditional_create_race(c))
        });
        add("error_already_exists", |c| {
            Box::pin(error_already_exists(c))
        });
        if capability.write_can_multi
            && ctx.storage.profile().conditional_create != ConditionalCreate::Unsupported
        {
            add("conditional_create_multipart_matches_profile", |c| {
                Box::pin(multipart_create_matches_profile(c))
            });
        }
    } else {
        add("conditional_create_reported_unsupported", |c| {
            Box::pin(conditional_create_unsupported(c))
        });
    }

    if let Some(restricted) = backend.restricted_config {
        let ctx = ctx.clone();
        trials.push(Trial::test(
            format!("{label}::error_permission_denied"),
            move || {
                ctx.runtime
                    .block_on(error_permission_denied(ctx.clone(), restricted.clone()))
                    .map_err(Failed::from)
            },
        ));
    }
    for check in backend.checks {
        trials.push(Trial::test(
            format!("{label}::storage_check_{}", check.name),
            move || storage_check(&check).map_err(Failed::from),
        ));
    }
    trials
}

fn failing(label: &str, name: &str, message: String) -> Trial {
    Trial::test(format!("{label}::{name}"), move || {
        Err(Failed::from(message.clone()))
    })
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> TrialResult {
    if condition { Ok(()) } else { Err(message()) }
}

fn ctx_err(what: &str) -> impl FnOnce(opendal::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// Deterministic bytes that differ per `seed`, so misplaced data is caught.
fn pattern(seed: u64, len: usize) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

async fn small_round_trip(ctx: Arc<Context>) -> TrialResult {
    let key = ctx.key("small", "object");
    let data = pattern(1, 1024);
    ctx.op()
        .write(&key, data.clone())
        .await
        .map_err(ctx_err("write"))?;
    let read = ctx
        .op()
        .read(&key)
        .await
        .map_err(ctx_err("read"))?
        .to_bytes();
    ensure(read == data, || {
        format!(
            "read {} bytes that differ from the {} written",
            read.len(),
            data.len()
        )
    })?;
    let meta = ctx.op().stat(&key).await.map_err(ctx_err("stat"))?;
    ensure(meta.content_length() == 1024, || {
        format!("stat length {}", meta.content_length())
    })
}

async fn large_round_trip(ctx: Arc<Context>) -> TrialResult {
    const SIZE: usize = 64 << 20;
    const PIECE: usize = 1 << 20;
    let key = ctx.key("large", "object");
    let data = pattern(2, SIZE);
    let mut writer = ctx
        .op()
        .writer_with(&key)
        .chunk(8 << 20)
        .concurrent(4)
        .await
        .map_err(ctx_err("open writer"))?;
    for offset in (0..SIZE).step_by(PIECE) {
        writer
            .write(data.slice(offset..offset + PIECE))
            .await
            .map_err(ctx_err("write piece"))?;
    }
    writer.close().await.map_err(ctx_err("close writer"))?;
    let meta = ctx.op().stat(&key).await.map_err(ctx_err("stat"))?;
    ensure(meta.content_length() == SIZE as u64, || {
        format!("stat length {}", meta.content_length())
    })?;
    let read = ctx
        .op()
        .read_with(&key)
        .chunk(8 << 20)
        .concurrent(4)
        .await
        .map_err(ctx_err("read"))?
        .to_bytes();
    ensure(read.len() == SIZE, || {
        format!("read {} bytes of {SIZE}", read.len())
    })?;
    let first_difference = read.iter().zip(data.iter()).position(|(a, b)| a != b);
    ensure(first_difference.is_none(), || {
        format!("content differs from byte {first_difference:?}")
    })
}

async fn ranged_reads(ctx: Arc<Context>) -> TrialResult {
    const SIZE: usize = 100 * 1024;
    let key = ctx.key("ranged", "object");
    let data = pattern(3, SIZE);
    ctx.op()
        .write(&key, data.clone())
        .await
        .map_err(ctx_err("write"))?;
    for (start, end) in [
        (0, 1),
        (1000, 2000),
        (4095, 4097),
        (SIZE - 10, SIZE),
        (0, SIZE),
    ] {
        let read = ctx
            .op()
            .read_with(&key)
            .range(start as u64..end as u64)
            .await
            .map_err(ctx_err("ranged read"))?
            .to_bytes();
        ensure(read == data.slice(start..end), || {
            format!("range {start}..{end} returned {} other bytes", read.len())
        })?;
    }
    let tail = ctx
        .op()
        .read_with(&key)
        .range(50_000u64..)
        .await
        .map_err(ctx_err("open-ended read"))?
        .to_bytes();
    ensure(tail == data.slice(50_000..), || {
        format!("range 50000.. returned {} bytes", tail.len())
    })
}

/// Object paths (relative to `dir`) found by a listing, directories left out.
async fn listed_files(ctx: &Context, dir: &str, recursive: bool) -> Result<Vec<String>, String> {
    let entries = ctx
        .op()
        .list_with(dir)
        .recursive(recursive)
        .await
        .map_err(ctx_err("list"))?;
    let mut files: Vec<String> = entries
        .iter()
        .map(|e| e.path().trim_start_matches('/').to_string())
        .filter(|p| !p.ends_with('/'))
        .map(|p| {
            p.strip_prefix(dir.trim_start_matches('/'))
                .unwrap_or(&p)
                .to_string()
        })
        .collect();
    files.sort();
    Ok(files)
}

async fn listing_with_prefixes(ctx: Arc<Context>) -> TrialResult {
    let dir = ctx.dir("prefixes");
    for name in ["a/1", "a/2", "a/b/3", "c/4", "ab"] {
        ctx.op()
            .write(&format!("{dir}{name}"), pattern(4, 10))
            .await
            .map_err(ctx_err("write"))?;
    }
    let shallow = listed_files(&ctx, &format!("{dir}a/"), false).await?;
    ensure(shallow == ["1", "2"], || {
        format!("non-recursive listing of a/ gave {shallow:?}")
    })?;
    let entries = ctx
        .op()
        .list(&format!("{dir}a/"))
        .await
        .map_err(ctx_err("list"))?;
    let has_subdir = entries.iter().any(|e| e.path().ends_with("a/b/"));
    ensure(has_subdir, || {
        "non-recursive listing of a/ does not show the sub-prefix a/b/".to_string()
    })?;
    let deep = listed_files(&ctx, &dir, true).await?;
    ensure(deep == ["a/1", "a/2", "a/b/3", "ab", "c/4"], || {
        format!("recursive listing gave {deep:?}")
    })
}

async fn listing_many_keys(ctx: Arc<Context>) -> TrialResult {
    const KEYS: usize = 1100;
    let dir = ctx.dir("many");
    // Empty objects: HDFS closes an empty file at once, a non-empty one in ~0.5 s.
    futures::stream::iter(0..KEYS)
        .map(|i| {
            let ctx = ctx.clone();
            let key = format!("{dir}k{i:05}");
            async move {
                ctx.op()
                    .write(&key, Bytes::new())
                    .await
                    .map_err(ctx_err("write"))
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let files = listed_files(&ctx, &dir, true).await?;
    ensure(files.len() == KEYS, || {
        format!("listed {} keys, wrote {KEYS}", files.len())
    })?;
    let expected: Vec<String> = (0..KEYS).map(|i| format!("k{i:05}")).collect();
    ensure(files == expected, || {
        "listing returned other keys than written".to_string()
    })
}

async fn overwrite(ctx: Arc<Context>) -> TrialResult {
    let key = ctx.key("overwrite", "object");
    ctx.op()
        .write(&key, pattern(5, 5000))
        .await
        .map_err(ctx_err("first write"))?;
    let second = pattern(6, 3000);
    ctx.op()
        .write(&key, second.clone())
        .await
        .map_err(ctx_err("overwrite"))?;
    let read = ctx
        .op()
        .read(&key)
        .await
        .map_err(ctx_err("read"))?
        .to_bytes();
    ensure(read == second, || {
        format!(
            "read {} bytes, not the 3000 of the second write",
            read.len()
        )
    })
}

async fn batch_delete(ctx: Arc<Context>) -> TrialResult {
    let keys: Vec<String> = (0..50)
        .map(|i| ctx.key("batch-delete", &format!("o{i}")))
        .collect();
    for key in &keys {
        ctx.op()
            .write(key, pattern(7, 100))
            .await
            .map_err(ctx_err("write"))?;
    }
    let mut doomed = keys.clone();
    doomed.push(ctx.key("batch-delete", "never-written"));
    ctx.op()
        .delete_iter(doomed)
        .await
        .map_err(ctx_err("batch delete"))?;
    for key in &keys {
        match ctx.op().stat(key).await {
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            other => return Err(format!("{key} after batch delete: {other:?}")),
        }
    }
    ctx.op()
        .delete(&ctx.key("batch-delete", "o0"))
        .await
        .map_err(ctx_err("deleting a deleted key"))
}

async fn concurrent_writers(ctx: Arc<Context>) -> TrialResult {
    const WRITERS: u64 = 16;
    const PER_WRITER: u64 = 8;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let key = ctx.key("concurrent", &format!("w{w}-{i}"));
                    ctx.op()
                        .write(&key, pattern(w * 100 + i, 64 * 1024))
                        .await
                        .map_err(ctx_err("write"))?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| format!("writer task: {e}"))??;
    }
    for w in 0..WRITERS {
        for i in 0..PER_WRITER {
            let key = ctx.key("concurrent", &format!("w{w}-{i}"));
            let read = ctx
                .op()
                .read(&key)
                .await
                .map_err(ctx_err("read"))?
                .to_bytes();
            ensure(read == pattern(w * 100 + i, 64 * 1024), || {
                format!("{key} holds another writer's data")
            })?;
        }
    }
    Ok(())
}

async fn error_not_found(ctx: Arc<Context>) -> TrialResult {
    let key = ctx.key("missing", "never-written");
    let read = ctx.op().read(&key).await;
    ensure(
        matches!(&read, Err(e) if e.kind() == ErrorKind::NotFound),
        || format!("read of a missing key: {read:?}"),
    )?;
    let stat = ctx.op().stat(&key).await;
    ensure(
        matches!(&stat, Err(e) if e.kind() == ErrorKind::NotFound),
        || format!("stat of a missing key: {stat:?}"),
    )
}

/// A create-only write that lost: S3 answers 412 (ConditionNotMatch), a local
/// directory `EEXIST` (AlreadyExists). Both mean the same to the stream store.
fn lost_create(err: &opendal::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ConditionNotMatch | ErrorKind::AlreadyExists
    )
}

async fn conditional_create(ctx: Arc<Context>) -> TrialResult {
    let key = ctx.key("create-only", "object");
    let first = pattern(8, 2000);
    ctx.op()
        .write_with(&key, first.clone())
        .if_not_exists(true)
        .await
        .map_err(ctx_err("first create-only write"))?;
    let second = ctx
        .op()
        .write_with(&key, pattern(9, 2000))
        .if_not_exists(true)
        .await;
    ensure(matches!(&second, Err(e) if lost_create(e)), || {
        format!("second create-only write: {second:?}")
    })?;
    let read = ctx
        .op()
        .read(&key)
        .await
        .map_err(ctx_err("read"))?
        .to_bytes();
    ensure(read == first, || {
        "the refused write changed the object".to_string()
    })
}

async fn conditional_create_race(ctx: Arc<Context>) -> TrialResult {
    const RACERS: u64 = 8;
    let key = ctx.key("create-race", "object");
    let racers: Vec<_> = (0..RACERS)
        .map(|r| {
            let ctx = ctx.clone();
            let key = key.clone();
            tokio::spawn(async move {
                (
                    r,
                    ctx.op()
                        .write_with(&key, pattern(100 + r, 4096))
                        .if_not_exists(true)
                        .await,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let (r, result) = racer.await.map_err(|e| format!("racer task: {e}"))?;
        match result {
            Ok(_) => winners.push(r),
            Err(err) if lost_create(&err) => {}
            Err(err) => return Err(format!("racer {r}: {err}")),
        }
    }
    ensure(winners.len() == 1, || {
        format!(
            "{} of {RACERS} create-only writers won: {winners:?}",
            winners.len()
        )
    })?;
    let read = ctx
        .op()
        .read(&key)
        .await
        .map_err(ctx_err("read"))?
        .to_bytes();
    ensure(read == pattern(100 + winners[0], 4096), || {
        "the object is not the winner's".to_string()
    })
}

async fn error_already_exists(ctx: Arc<Context>) -> TrialResult {
    let key = ctx.key("exists", "object");
    ctx.op()
        .write(&key, pattern(10, 10))
        .await
        .map_err(ctx_err("write"))?;
    let again = ctx
        .op()
        .write_with(&key, pattern(11, 10))
        .if_not_exists(true)
        .await;
    ensure(matches!(&again, Err(e) if lost_create(e)), || {
        format!("create-only write over an existing key: {again:?}")
    })
}

/// The store profile says whether a multipart create-only write is atomic; check the
/// server still behaves as the profile says (Ceph RGW 16.2 overwrites).
async fn multipart_create_matches_profile(ctx: Arc<Context>) -> TrialResult {
    let key = ctx.key("multipart-create", "object");
    ctx.op()
        .write(&key, pattern(12, 100))
        .await
        .map_err(ctx_err("write"))?;
    let mut writer = ctx
        .op()
        .writer_with(&key)
        .chunk(5 << 20)
        .if_not_exists(true)
        .await
        .map_err(ctx_err("open multipart writer"))?;
    let data = pattern(13, 11 << 20);
    let result = async {
        writer.write(data.clone()).await?;
        writer.close().await
    }
    .await;
    match (ctx.storage.profile().conditional_create, result) {
        (ConditionalCreate::Any, Err(err)) if lost_create(&err) => Ok(()),
        (ConditionalCreate::Any, other) => Err(format!(
            "profile says multipart create-only is atomic, but it gave {other:?}"
        )),
        (ConditionalCreate::SinglePutOnly, Ok(_)) => Ok(()),
        (ConditionalCreate::SinglePutOnly, other) => Err(format!(
            "profile says this store ignores create-only on multipart uploads, but it gave {other:?}: update the preset"
        )),
        (ConditionalCreate::Unsupported, _) => Ok(()),
    }
}

async fn conditional_create_unsupported(ctx: Arc<Context>) -> TrialResult {
    let key = ctx.key("create-only", "object");
    let result = ctx
        .op()
        .write_with(&key, pattern(14, 10))
        .if_not_exists(true)
        .await;
    ensure(
        matches!(&result, Err(e) if e.kind() == ErrorKind::Unsupported),
        || {
            format!(
                "a backend without create-only writes must refuse them as Unsupported, it gave {result:?}"
            )
        },
    )?;
    ensure(
        ctx.storage.profile().conditional_create == ConditionalCreate::Unsupported,
        || "the store profile claims create-only writes the backend does not offer".to_string(),
    )
}

async fn error_permission_denied(ctx: Arc<Context>, restricted: String) -> TrialResult {
    let config = StorageConfig::from_document(&restricted).map_err(|e| e.to_string())?;
    let storage = Storage::open(&config).map_err(|e| e.to_string())?;
    let key = ctx.key("denied", "object");
    let write = storage.operator().write(&key, pattern(15, 10)).await;
    ensure(
        matches!(&write, Err(e) if e.kind() == ErrorKind::PermissionDenied),
        || format!("a write with restricted credentials: {write:?}"),
    )
}

/// Runs `strata storage check` and compares its report with what `check` expects.
pub fn storage_check(check: &StorageCheck) -> TrialResult {
    let run = cli::storage_check(&check.config, check.clock_offset)?;
    let transcript = || format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    match check.expect {
        CheckExpectation::Passes => {
            ensure(run.success, || {
                format!("strata storage check failed\n{}", transcript())
            })?;
            for capability in Capability::ALL {
                let reported = run.stdout.lines().any(|line| {
                    let mut words = line.split_whitespace();
                    matches!(words.next(), Some("ok" | "unsupported"))
                        && words.next() == Some(capability.name())
                });
                ensure(reported, || {
                    format!(
                        "capability {} not reported ok\n{}",
                        capability.name(),
                        transcript()
                    )
                })?;
            }
            Ok(())
        }
        CheckExpectation::FailsWith(cause) => {
            ensure(!run.success, || {
                format!(
                    "strata storage check passed, expected [{cause}]\n{}",
                    transcript()
                )
            })?;
            ensure(run.stdout.contains(&format!("FAILED [{cause}]")), || {
                format!("expected cause [{cause}]\n{}", transcript())
            })
        }
    }
}
