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
