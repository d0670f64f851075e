//! Helpers shared by this crate's tests.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the test `test_name` of this test binary as a child process with `var` set
/// to `dir` (the child test does nothing without it), kills it with SIGKILL after
/// `after`, and returns the lines it printed: what it acknowledged before dying.
pub(crate) fn run_until_sigkill(
    test_name: &str,
    var: &str,
    dir: &Path,
    after: Duration,
) -> Vec<String> {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(var, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    std::thread::sleep(after);
    child.kill().expect("SIGKILL");
    let output = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The "a b" lines of a crash child's output as number pairs (a line cut by the kill
/// is skipped).
pub(crate) fn number_pairs(lines: &[String]) -> Vec<(u64, u64)> {
    lines
        .iter()
        .filter_map(|line| {
            let (a, b) = line.trim().split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// An operator layer that holds the next few writes under a key prefix for a while
/// before they complete: an object store's rare slow PUT, on a real backend.
#[derive(Debug, Clone)]
pub(crate) struct StallLayer {
    state: std::sync::Arc<StallState>,
}

#[derive(Debug)]
struct StallState {
    prefix: String,
    stall: Duration,
    remaining: std::sync::atomic::AtomicUsize,
    /// Signalled as each stalled write begins.
    begun: tokio::sync::Notify,
    /// Every read under the prefix takes at least this long (ns), so that reads
    /// issued together are seen overlapping.
    read_delay_ns: std::sync::atomic::AtomicU64,
    reads_in_flight: std::sync::atomic::AtomicUsize,
    most_reads_in_flight: std::sync::atomic::AtomicUsize,
    /// Reads under the prefix so far (each GET, delayed or not).
    reads: std::sync::atomic::AtomicUsize,
    /// Reads under the prefix that still succeed before every further one fails
    /// (negative: none fails).
    reads_before_failing: std::sync::atomic::AtomicI64,
}

impl StallLayer {
    /// Stalls nothing until [`StallLayer::stall_next`].
    pub(crate) fn new(prefix: &str, stall: Duration) -> Self {
        StallLayer {
            state: std::sync::Arc::new(StallState {
                prefix: prefix.to_string(),
                stall,
                remaining: std::sync::atomic::AtomicUsize::new(0),
                begun: tokio::sync::Notify::new(),
                read_delay_ns: std::sync::atomic::AtomicU64::new(0),
                reads_in_flight: std::sync::atomic::AtomicUsize::new(0),
                most_reads_in_flight: std::sync::atomic::AtomicUsize::new(0),
                reads: std::sync::atomic::AtomicUsize::new(0),
                reads_before_failing: std::sync::atomic::AtomicI64::new(-1),
            }),
        }
    }

    /// The next `count` writes under the prefix stall before they complete.
    pub(crate) fn stall_next(&self, count: usize) {
        self.state
            .remaining
            .store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// Resolves once a stalled write has begun (at once if one began since the
    /// last call).
    pub(crate) async fn stalled(&self) {
        self.state.begun.notified().await;
    }

    /// From now on every read under the prefix takes at least `delay`, and the
    /// most reads in flight at once is counted.
    pub(crate) fn delay_reads(&self, delay: Duration) {
        use std::sync::atomic::Ordering;
        self.state
            .read_delay_ns
            .store(delay.as_nanos() as u64, Ordering::SeqCst);
        self.state.most_reads_in_flight.store(0, Ordering::SeqCst);
    }

    /// The most reads under the prefix in flight at once since [`StallLayer::delay_reads`].
    pub(crate) fn most_reads_in_flight(&self) -> usize {
        self.state
            .most_reads_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// After `count` more reads under the prefix succeed, every further one fails
    /// (an unexpected error, as a broken disk or a store's 500 after its retries);
    /// `None`: reads succeed again.
    pub(crate) fn fail_reads_after(&self, count: Option<u32>) {
        let count = count.map_or(-1, i64::from);
        self.state
            .reads_before_failing
            .store(count, std::sync::atomic::Ordering::SeqCst);
    }

    /// Reads under the prefix so far.
    pub(crate) fn reads(&self) -> usize {
        self.state.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Counts a read of `path` and holds it for the read delay, counted as in flight
    /// meanwhile; fails it once the reads before failing are used up.
    async fn delay_read(&self, path: &str) -> opendal::Result<()> {
        use std::sync::atomic::Ordering;
        if !path.starts_with(&self.state.prefix) {
            return Ok(());
        }
        self.state.reads.fetch_add(1, Ordering::SeqCst);
        let left =
            self.state
                .reads_before_failing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n > 0).then(|| n - 1)
                });
        if left == Err(0) {
            return Err(opendal::Error::new(
                opendal::ErrorKind::Unexpected,
                "read failed by the test's layer",
            ));
        }
        let delay = self.state.read_delay_ns.load(Ordering::SeqCst);
        if delay == 0 {
            return Ok(());
        }
        let now = self.state.reads_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.state
            .most_reads_in_flight
            .fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_nanos(delay)).await;
        self.state.reads_in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    fn take_stall(&self, path: &str) -> Option<Duration> {
        use std::sync::atomic::Ordering;
        if !path.starts_with(&self.state.prefix) {
            return None;
        }
        let stall = self
            .state
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| self.state.stall);
        if stall.is_some() {
            self.state.begun.notify_one();
        }
        stall
    }
}

mod stall {
    use std::time::Duration;

    use opendal::raw::*;
    use opendal::*;

    use super::StallLayer;

    impl Layer for StallLayer {
        fn apply_service(&self, inner: Servicer) -> Servicer {
            std::sync::Arc::new(StallService {
                inner,
                layer: self.clone(),
            })
        }
    }

    #[derive(Debug)]
    pub(crate) struct StallService {
        inner: Servicer,
        layer: StallLayer,
    }

    pub(crate) struct StallWriter {
        inner: oio::Writer,
        stall: Option<Duration>,
    }

    impl oio::Write for StallWriter {
        async fn write(&mut self, bs: Buffer) -> Result<()> {
            self.inner.write(bs).await
        }

        async fn copy_from(&mut self, path: &str, args: OpRead, range: BytesRange) -> Result<()> {
            self.inner.copy_from(path, args, range).await
        }

        async fn close(&mut self) -> Result<Metadata> {
            if let Some(stall) = self.stall.take() {
                tokio::time::sleep(stall).await;
            }
            self.inner.close().await
        }

        async fn abort(&mut self) -> Result<()> {
            self.inner.abort().await
        }
    }

    /// A reader held for the layer's read delay before it reads.
    pub(crate) struct DelayedReader {
        inner: oio::Reader,
        layer: StallLayer,
        path: String,
    }

    impl oio::Read for DelayedReader {
        async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
            self.layer.delay_read(&self.path).await?;
            self.inner.open_dyn(range).await
        }

        async fn read(&self, range: BytesRange) -> Result<(RpRead, Buffer)> {
            self.layer.delay_read(&self.path).await?;
            self.inner.read_dyn(range).await
        }
    }

    impl Service for StallService {
        type Reader = oio::Reader;
        type Writer = StallWriter;
        type Lister = oio::Lister;
        type Deleter = oio::Deleter;
        type Copier = oio::Copier;
        type Composer = oio::Composer;

        fn info(&self) -> ServiceInfo {
            self.inner.info()
        }

        fn capability(&self) -> Capability {
            self.inner.capability()
        }

        async fn create_dir(
            &self,
            ctx: &OperationContext,
            path: &str,
            args: OpCreateDir,
        ) -> Result<RpCreateDir> {
            self.inner.create_dir(ctx, path, args).await
        }

        async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> Result<RpStat> {
            self.inner.stat(ctx, path, args).await
        }

        fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> Result<Self::Reader> {
            let inner = self.inner.read(ctx, path, args)?;
            Ok(Box::new(DelayedReader {
                inner,
                layer: self.layer.clone(),
                path: path.to_string(),
            }))
        }

        fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> Result<Self::Writer> {
            let stall = self.layer.take_stall(path);
            self.inner
                .write(ctx, path, args)
                .map(|inner| StallWriter { inner, stall })
        }

        fn delete(&self, ctx: &OperationContext) -> Result<Self::Deleter> {
            self.inner.delete(ctx)
        }

        fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> Result<Self::Lister> {
            self.inner.list(ctx, path, args)
        }

        fn copy(
            &self,
            ctx: &OperationContext,
            from: &str,
            to: &str,
            args: OpCopy,
        ) -> Result<Self::Copier> {
            self.inner.copy(ctx, from, to, args)
        }

        fn compose(
            &self,
            ctx: &OperationContext,
            to: &str,
            args: OpCompose,
        ) -> Result<Self::Composer> {
            self.inner.compose(ctx, to, args)
        }

        async fn rename(
            &self,
            ctx: &OperationContext,
            from: &str,
            to: &str,
            args: OpRename,
        ) -> Result<RpRename> {
            self.inner.rename(ctx, from, to, args).await
        }

        async fn presign(
            &self,
            ctx: &OperationContext,
            path: &str,
            args: OpPresign,
        ) -> Result<RpPresign> {
            self.inner.presign(ctx, path, args).await
        }
    }
}
