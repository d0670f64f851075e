//! Real Kafka clients, as installed by `deploy/testbed/kafka-clients.sh`, running
//! the scenario scripts of `integration/clients/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::testbed::Testbed;

pub struct Clients {
    python: String,
    node_path: String,
    kcat: String,
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

fn outcome(what: &str, output: std::io::Result<Output>) -> Result<String, String> {
    let output = output.map_err(|e| format!("cannot run {what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{what} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl Clients {
    pub fn from_testbed(testbed: &Testbed) -> Clients {
        Clients {
            python: testbed.setting("PYTHON"),
            node_path: testbed.setting("NODE_PATH"),
            kcat: testbed.setting("KCAT"),
        }
    }

    fn librdkafka_command(&self, bootstrap: &str, args: &[&str]) -> Command {
        let mut command = Command::new(&self.python);
        command
            .arg(scripts().join("librdkafka_scenarios.py"))
            .arg(bootstrap)
            .args(args);
        command
    }

    /// A librdkafka scenario to its end.
    pub fn librdkafka(&self, bootstrap: &str, args: &[&str]) -> Result<String, String> {
        outcome(
            &format!("librdkafka scenario {args:?}"),
            self.librdkafka_command(bootstrap, args).output(),
        )
    }

    /// A librdkafka scenario in the background (for load during faults).
    pub fn spawn_librdkafka(&self, bootstrap: &str, args: &[&str]) -> Result<Child, String> {
        self.librdkafka_command(bootstrap, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run librdkafka scenario {args:?}: {e}"))
    }

    pub fn kafka_python(&self, bootstrap: &str) -> Result<String, String> {
        outcome(
            "kafka-python scenarios",
            Command::new(&self.python)
                .arg(scripts().join("kafka_python_scenarios.py"))
                .arg(bootstrap)
                .output(),
        )
    }

    pub fn kafkajs(&self, bootstrap: &str) -> Result<String, String> {
        outcome(
            "kafkajs scenarios",
            Command::new("node")
                .arg(scripts().join("kafkajs_scenarios.js"))
                .arg(bootstrap)
                .env("NODE_PATH", &self.node_path)
                .output(),
        )
    }

    /// kcat with `args`, `input` on its stdin.
    pub fn kcat(&self, args: &[&str], input: &str) -> Result<String, String> {
        let mut child = Command::new(&self.kcat)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run kcat: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|e| format!("kcat stdin: {e}"))?;
        }
        outcome(&format!("kcat {args:?}"), child.wait_with_output())
    }
}

/// Waits for a background scenario and returns its output, or why it failed.
pub fn finish(child: Child, what: &str) -> Result<String, String> {
    outcome(what, child.wait_with_output())
}
