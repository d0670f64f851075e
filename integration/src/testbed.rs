//! Starts and stops the real servers of `deploy/testbed/` for a test binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running testbed server; stopped when dropped.
pub struct Testbed {
    name: String,
    settings: HashMap<String, String>,
}

/// `deploy/testbed/` in this checkout.
pub fn testbed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/testbed")
}

impl Testbed {
    /// Runs `deploy/testbed/<name>.sh start` (which installs what is missing) and
    /// reads the settings it prints. A server that cannot start is a test failure,
    /// never a skip: the error says which server and where its logs are.
    pub fn start(name: &str) -> Result<Self, String> {
        Self::start_with(name, &[])
    }

    /// [`Testbed::start`] with settings for the start script in its environment.
    pub fn start_with(name: &str, env: &[(&str, &str)]) -> Result<Self, String> {
        let script = testbed_dir().join(format!("{name}.sh"));
        eprintln!("starting testbed server {name} ({})", script.display());
        let status = Command::new("bash")
            .arg(&script)
            .arg("start")
            .envs(env.iter().copied())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !status.success() {
            return Err(format!(
                "testbed server {name} failed to start ({status}); see the lines above and {}/{name}/",
                std::env::var("STRATA_TESTBED_RUN")
                    .unwrap_or_else(|_| "/tmp/strata-testbed".into())
            ));
        }
        let output = Command::new("bash")
            .arg(&script)
            .arg("env")
            .output()
            .map_err(|e| format!("cannot run {} env: {e}", script.display()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let settings = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Ok(Testbed {
            name: name.to_string(),
            settings,
        })
    }

    /// A setting the start script printed, such as `S3_ENDPOINT`.
    pub fn setting(&self, key: &str) -> String {
        self.settings.get(key).cloned().unwrap_or_else(|| {
            panic!(
                "testbed {} printed no {key}; it printed {:?}",
                self.name,
                self.settings.keys()
            )
        })
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let script = testbed_dir().join(format!("{}.sh", self.name));
        let _ = Command::new("bash").arg(script).arg("stop").status();
    }
}
