//! A thread of low scheduling priority for the store's CPU-heavy background work.
//!
//! Building an upload copies and checksums tens of MiB in one burst. On a small
//! machine that burst takes a core from the WAL writer and the network tasks right
//! when they acknowledge appends, and the appends' latency tail is that burst. Run
//! at the lowest priority, the build only takes what the latency-sensitive threads
//! leave; uploads have seconds of slack before back-pressure, appends do not.

use std::sync::mpsc;
use std::thread::JoinHandle;

use thread_priority::{
    NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
    set_thread_priority_and_policy, thread_native_id,
};
use tokio::sync::oneshot;

use super::StoreError;

type Job = Box<dyn FnOnce() + Send>;

/// One background thread; jobs run one at a time, in the order given. Dropping it
/// lets queued jobs finish, then joins the thread.
pub(super) struct Background {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    pub(super) fn start() -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("strata-build".to_string())
            .spawn(move || {
                lower_priority();
                for job in queue {
                    job();
                }
            })
            .map_err(|err| StoreError::Task(format!("cannot start the build thread: {err}")))?;
        Ok(Background {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `work` on the background thread and waits for its result.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let closed = || StoreError::Task("the build thread stopped".to_string());
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs
            .as_ref()
            .ok_or_else(closed)?
            .send(job)
            .map_err(|_| closed())?;
        result.await.map_err(|_| closed())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `SCHED_BATCH` at the highest nice value. Lowering a thread's own priority needs no
/// privilege; if the system refuses anyway, the work still runs, at normal priority.
fn lower_priority() {
    let lowered = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
    );
    if let Err(err) = lowered {
        tracing::warn!(error = ?err, "cannot lower the build thread's priority; uploads may delay appends");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_at_the_lowest_priority() {
        let background = Background::start().expect("start");
        let nice = background
            .run(|| {
                // Field 19 of /proc/thread-self/stat is the nice value; the command
                // name before it is in parentheses and may hold spaces.
                let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
                let after_name = stat.rsplit_once(") ").map(|(_, rest)| rest.to_string());
                after_name.and_then(|rest| rest.split(' ').nth(16)?.parse::<i32>().ok())
            })
            .await
            .expect("runs");
        assert_eq!(nice, Some(19));
        let order: Vec<u32> = futures::future::join_all((0..5).map(|i| background.run(move || i)))
            .await
            .into_iter()
            .map(|r| r.expect("runs"))
            .collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
    }
}
