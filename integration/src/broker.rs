//! A real `strata serve` process for client tests: started on a free port with its
//! own data directory, stopped gracefully, killed with SIGKILL, and restarted on the
//! same port and data.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::strata_binary;

/// Where the broker keeps its objects.
#[derive(Debug, Clone)]
pub enum BrokerStorage {
    /// The embedded default (a local directory), configured only through
    /// `STRATA_*` environment overrides.
    EmbeddedDefault,
    /// A config file with this `[storage]` section (and `[wal]` if given).
    Document(String),
}

pub struct BrokerProcess {
    child: Option<Child>,
    port: u16,
    admin_port: u16,
    data: PathBuf,
    storage: BrokerStorage,
    starts: u32,
    extra_env: Vec<(String, String)>,
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

impl BrokerProcess {
    /// Starts a broker with its data under `data` (created if missing).
    pub fn start(storage: BrokerStorage, data: &Path) -> Result<BrokerProcess, String> {
        Self::start_with(storage, data, &[])
    }

    /// [`BrokerProcess::start`] with more `STRATA_*` settings in its environment.
    pub fn start_with(
        storage: BrokerStorage,
        data: &Path,
        env: &[(&str, &str)],
    ) -> Result<BrokerProcess, String> {
        std::fs::create_dir_all(data).map_err(|e| format!("{}: {e}", data.display()))?;
        let mut broker = BrokerProcess {
            child: None,
            port: free_port()?,
            admin_port: free_port()?,
            data: data.to_path_buf(),
            storage,
            starts: 0,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        broker.spawn()?;
        Ok(broker)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `host:port` of the admin HTTP endpoint (`/metrics`).
    pub fn admin(&self) -> String {
        format!("127.0.0.1:{}", self.admin_port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log_path(&self) -> PathBuf {
        self.data.join(format!("broker-{}.log", self.starts))
    }

    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).map_err(|e| e.to_string())?;
        let mut command = Command::new(strata_binary()?);
        command
            .arg("serve")
            .env("STRATA_LOG", "info")
            .env("STRATA_BROKER_LISTEN", format!("127.0.0.1:{}", self.port))
            .env(
                "STRATA_ADMIN_LISTEN",
                format!("127.0.0.1:{}", self.admin_port),
            )
            .env("STRATA_BROKER_DATA_DIR", self.data.join("state"))
            .env("STRATA_BROKER_GROUP_INITIAL_REBALANCE_DELAY", "0s")
            .env("STRATA_METRICS_REFRESH_INTERVAL", "1s")
            .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        match &self.storage {
            BrokerStorage::EmbeddedDefault => {
                command.env("STRATA_STORAGE_ROOT", self.data.join("objects"));
            }
            BrokerStorage::Document(text) => {
                let path = self.data.join("strata.toml");
                std::fs::write(&path, text).map_err(|e| e.to_string())?;
                command.arg("--config").arg(path);
            }
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start strata: {e}"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until the broker answers an ApiVersions request.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "strata serve exited with {status} before serving; log:\n{}",
                    self.log_tail()
                ));
            }
            if api_versions_answered(self.addr()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "strata serve did not answer on {} within 60s; log:\n{}",
            self.bootstrap(),
            self.log_tail()
        ))
    }

    /// The last lines of the current run's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Everything every run of this broker logged.
    pub fn all_logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.data.join(format!("broker-{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "strata serve exited with {status} on SIGTERM; log:\n{}",
                        self.log_tail()
                    ));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    return Err("strata serve did not exit within 60s of SIGTERM".into());
                }
            }
        }
    }

    /// Starts again on the same port and data.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a raw ApiVersions v0 request and checks that a response frame comes back.
fn api_versions_answered(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    // size, api key 18, version 0, correlation id 1, client id "probe".
    let mut request = vec![0, 0, 0, 15, 0, 18, 0, 0, 0, 0, 0, 1, 0, 5];
    request.extend_from_slice(b"probe");
    if stream.write_all(&request).is_err() {
        return false;
    }
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).is_ok() && i32::from_be_bytes(size) > 4
}
