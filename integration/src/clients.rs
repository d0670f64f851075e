//! Real Kafka clients, as installed by `deploy/testbed/kafka-clients.sh`, running
//! the scenario scripts of `integration/clients/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::bounded::Bounded;
use crate::testbed::Testbed;

/// The longest a scenario may run. The slowest pass in a few minutes on a loaded
/// 2-core machine; past this one is hung, and fails rather than holding CI.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(420);

pub struct Clients {
    python: String,
    node_path: String,
    kcat: String,
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// A client scenario running in the background (for load during faults).
pub struct Scenario(Bounded);

impl Scenario {
    /// Waits for the scenario's end: its output, or why it failed, named by the
    /// `role` it played in the test.
    pub fn finish(self, role: &str) -> Result<String, String> {
        self.0
            .finish(SCENARIO_DEADLINE)
            .map_err(|e| format!("{role}: {e}"))
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

    /// A librdkafka scenario in the background.
    pub fn spawn_librdkafka(&self, bootstrap: &str, args: &[&str]) -> Result<Scenario, String> {
        Bounded::spawn(
            format!("librdkafka scenario {args:?}"),
            Command::new(&self.python)
                .arg(scripts().join("librdkafka_scenarios.py"))
                .arg(bootstrap)
                .args(args),
        )
        .map(Scenario)
    }

    /// A librdkafka scenario to its end.
    pub fn librdkafka(&self, bootstrap: &str, args: &[&str]) -> Result<String, String> {
        self.spawn_librdkafka(bootstrap, args)?
            .0
            .finish(SCENARIO_DEADLINE)
    }

    pub fn kafka_python(&self, bootstrap: &str) -> Result<String, String> {
        Bounded::spawn(
            "kafka-python scenarios",
            Command::new(&self.python)
                .arg(scripts().join("kafka_python_scenarios.py"))
                .arg(bootstrap),
        )?
        .finish(SCENARIO_DEADLINE)
    }

    pub fn kafkajs(&self, bootstrap: &str) -> Result<String, String> {
        Bounded::spawn(
            "kafkajs scenarios",
            Command::new("node")
                .arg(scripts().join("kafkajs_scenarios.js"))
                .arg(bootstrap)
                .env("NODE_PATH", &self.node_path),
        )?
        .finish(SCENARIO_DEADLINE)
    }

    /// kcat with `args`, `input` on its stdin.
    pub fn kcat(&self, args: &[&str], input: &str) -> Result<String, String> {
        let mut kcat = Bounded::spawn(
            format!("kcat {args:?}"),
            Command::new(&self.kcat).args(args),
        )?;
        kcat.feed(input.as_bytes())?;
        kcat.finish(SCENARIO_DEADLINE)
    }
}
