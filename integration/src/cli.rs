//! Runs the real `strata` binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::bounded::Bounded;

/// The longest a storage check may take: its requests to the backend time out
/// on their own, so past this it is hung.
const CHECK_DEADLINE: Duration = Duration::from_secs(180);

/// Output of one `strata` run.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The `strata` binary built beside this test binary (`target/<profile>/strata`).
pub fn strata_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/<profile>/deps/<test> -> target/<profile>/strata
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?;
    let binary = profile_dir.join("strata");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} is missing: build it first with `cargo build -p strata-broker --bin strata` (the README's test command does)",
            binary.display()
        ))
    }
}

/// `strata storage check --config <file with config_text>`, under libfaketime with
/// its clock shifted by `clock_offset` when given.
pub fn storage_check(config_text: &str, clock_offset: Option<&str>) -> Result<Run, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("strata.toml");
    std::fs::write(&path, config_text).map_err(|e| e.to_string())?;
    let strata = strata_binary()?;
    let mut command = match clock_offset {
        None => Command::new(&strata),
        Some(offset) => {
            let mut faketime = Command::new("faketime");
            // Only the wall clock moves: tokio's timers keep real monotonic time.
            faketime
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .args(["-f", offset])
                .arg(&strata);
            faketime
        }
    };
    let what = match clock_offset {
        Some(offset) => format!("strata storage check under faketime {offset}"),
        None => format!("{} storage check", strata.display()),
    };
    command
        .args(["storage", "check", "--config"])
        .arg(&path)
        .env("STRATA_LOG", "error");
    let finished = Bounded::spawn(what, &mut command)
        .map_err(|e| match clock_offset {
            Some(_) => {
                format!("{e} (faketime is the Debian package faketime, installed by the testbed)")
            }
            None => e,
        })?
        .wait(CHECK_DEADLINE)?;
    Ok(Run {
        success: finished.status.success(),
        stdout: finished.stdout,
        stderr: finished.stderr,
    })
}
