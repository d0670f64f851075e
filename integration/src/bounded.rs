//! A child process (a client scenario, a tool) that must end within a deadline.
//!
//! A client that hangs, waiting on a broker that never answers or on a library that
//! never returns, would otherwise hold its test, and the whole CI run, until the
//! run's own limit. Past its deadline the child gets SIGABRT first, so that a Python
//! scenario with `faulthandler` enabled prints every thread's stack, then its whole
//! process group gets SIGKILL (a scenario may have started children of its own),
//! and the test fails with what it printed.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use wait_timeout::ChildExt;

/// How long an aborted child gets to print its stacks before SIGKILL.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// A running child whose output is being collected.
pub struct Bounded {
    what: String,
    child: Child,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

/// Reads a pipe to its end on a thread of its own: a child that fills one pipe
/// while nobody reads it would block, and look hung.
fn collect(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error ends the collection; what was read so far is still shown.
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

impl Bounded {
    /// Starts `command` in a process group of its own, its stdout and stderr
    /// collected (and its stdin piped, see [`Bounded::feed`]).
    pub fn spawn(what: impl Into<String>, command: &mut Command) -> Result<Bounded, String> {
        let what = what.into();
        let mut child = command
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {what}: {e}"))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(format!("{what}: its output pipes were not created"));
        };
        Ok(Bounded {
            what,
            stdout: collect(stdout),
            stderr: collect(stderr),
            child,
        })
    }

    /// Writes `input` to the child's stdin and closes it.
    pub fn feed(&mut self, input: &[u8]) -> Result<(), String> {
        if let Some(mut stdin) = self.child.stdin.take() {
            stdin
                .write_all(input)
                .map_err(|e| format!("{} stdin: {e}", self.what))?;
        }
        Ok(())
    }

    /// Waits for the child's exit, at most `deadline`: how it ended and what it
    /// printed, or why it did not end.
    pub fn wait(mut self, deadline: Duration) -> Result<Finished, String> {
        // A child reading stdin must see its end rather than wait for input.
        drop(self.child.stdin.take());
        let waited = self
            .child
            .wait_timeout(deadline)
            .map_err(|e| format!("waiting for {}: {e}", self.what))?;
        if waited.is_none() {
            self.stop();
        }
        let stdout = String::from_utf8_lossy(&self.stdout.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&self.stderr.join().unwrap_or_default()).into_owned();
        match waited {
            Some(status) => Ok(Finished {
                what: self.what,
                status,
                stdout,
                stderr,
            }),
            None => Err(format!(
                "{} did not end within {}s and was killed; it printed:\n{stdout}\n{stderr}",
                self.what,
                deadline.as_secs()
            )),
        }
    }

    /// [`Bounded::wait`], then `Ok(stdout)` if the child succeeded, else why not,
    /// with everything it printed.
    pub fn finish(self, deadline: Duration) -> Result<String, String> {
        let finished = self.wait(deadline)?;
        if finished.status.success() {
            Ok(finished.stdout)
        } else {
            Err(finished.failure())
        }
    }

    /// SIGABRT to the child (stacks), then SIGKILL to its whole group, so that no
    /// grandchild keeps the output pipes open.
    fn stop(&mut self) {
        let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) else {
            return;
        };
        if kill_process(pid, Signal::ABORT).is_ok() {
            let _ = self.child.wait_timeout(ABORT_GRACE);
        }
        let _ = kill_process_group(pid, Signal::KILL);
        let _ = self.child.wait();
    }
}

/// A child that ended within its deadline.
pub struct Finished {
    what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// What a failed child's test reports: its name, status and output.
    pub fn failure(&self) -> String {
        format!(
            "{} failed ({}):\n{}\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;

    fn finish_in_background(bounded: Bounded, deadline: Duration) -> Result<String, String> {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || sender.send(bounded.finish(deadline)));
        // A grandchild left alive would hold the pipes open and `finish` would never
        // return: that must show as this test's failure, not as a hang.
        receiver
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| Err("finish did not return within 60s".into()))
    }

    #[test]
    fn output_comes_back_and_a_failure_shows_status_and_stderr() {
        let mut ok = Bounded::spawn("cat", &mut Command::new("cat")).expect("cat starts");
        ok.feed(b"hello").expect("cat reads");
        assert_eq!(
            ok.finish(Duration::from_secs(30)).expect("cat succeeds"),
            "hello"
        );

        let mut failing = Bounded::spawn(
            "a failing tool",
            Command::new("sh").args(["-c", "cat; echo trouble >&2; exit 3"]),
        )
        .expect("sh starts");
        failing.feed(b"read this").expect("sh reads");
        let error = failing
            .finish(Duration::from_secs(30))
            .expect_err("exit 3 is a failure");
        for expected in [
            "a failing tool failed",
            "exit status: 3",
            "read this",
            "trouble",
        ] {
            assert!(error.contains(expected), "{expected:?} not in {error}");
        }
    }

    #[test]
    fn a_child_past_its_deadline_is_killed_with_the_children_it_started() {
        let started = Instant::now();
        let hung = Bounded::spawn(
            "a hung tool",
            Command::new("sh").args(["-c", "sleep 600 & echo waiting; wait"]),
        )
        .expect("sh starts");
        // Deadlines of a few seconds: the child must have printed before it is
        // stopped, even on a loaded machine.
        let error = finish_in_background(hung, Duration::from_secs(3))
            .expect_err("a hung child is a failure");
        assert!(
            error.contains("a hung tool did not end within 3s and was killed"),
            "{error}"
        );
        assert!(error.contains("waiting"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_hung_python_scenario_prints_its_stacks() {
        let hung = Bounded::spawn(
            "a hung scenario",
            Command::new("python3").args([
                "-c",
                "import faulthandler, time\n\
                 faulthandler.enable()\n\
                 def waiting_forever():\n    time.sleep(600)\n\
                 waiting_forever()\n",
            ]),
        )
        .expect("python3 starts");
        let error = finish_in_background(hung, Duration::from_secs(5))
            .expect_err("a hung child is a failure");
        assert!(error.contains("did not end within 5s"), "{error}");
        assert!(error.contains("in waiting_forever"), "{error}");
    }
}
