//! Fault injection in front of a real S3 server: a loopback proxy that answers the
//! first connections with an error (or never answers), then forwards to the server.
//! Proves that the retry and timeout layers retry what is transient and nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};
use opendal::ErrorKind;
use strata_backends::{Storage, StorageConfig};

use crate::conformance::{self, StorageCheck};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the first `times` connections; later ones are forwarded.
#[derive(Clone, Copy)]
enum Fault {
    /// Answer with this status and S3 error code, then close the connection.
    Respond {
        status: u16,
        reason: &'static str,
        code: &'static str,
        message: &'static str,
        times: usize,
    },
    /// Read the request and never answer.
    Stall { times: usize },
}

struct FaultProxy {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl FaultProxy {
    async fn start(upstream: SocketAddr, fault: Fault) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(client, upstream, fault, n));
            }
        });
        Ok(FaultProxy {
            address,
            connections,
        })
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, fault: Fault, n: usize) {
    match fault {
        Fault::Respond {
            status,
            reason,
            code,
            message,
            times,
        } if n < times => {
            let _ = read_request_head(&mut client).await;
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            );
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(response.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Fault::Stall { times } if n < times => {
            let _ = read_request_head(&mut client).await;
            tokio::time::sleep(Duration::from_secs(300)).await;
        }
        _ => {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        }
    }
}

pub(crate) async fn read_request_head(client: &mut TcpStream) -> std::io::Result<()> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// The S3 server the fault trials run against.
#[derive(Clone)]
pub struct S3Target {
    pub kind: &'static str,
    pub endpoint: String,
    pub bucket: String,
    pub access: String,
    pub secret: String,
}

impl S3Target {
    fn upstream(&self) -> Result<SocketAddr, String> {
        let authority = self
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/');
        authority
            .parse()
            .map_err(|e| format!("endpoint {} is not ip:port: {e}", self.endpoint))
    }

    fn storage(
        &self,
        endpoint: &str,
        secret: &str,
        retry_and_timeouts: &str,
    ) -> Result<Storage, String> {
        let text = format!(
            "[storage]\nkind = \"{}\"\nbucket = \"{}\"\nendpoint = \"{endpoint}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{secret}\"\n{retry_and_timeouts}",
            self.kind, self.bucket, self.access
        );
        let config = StorageConfig::from_document(&text).map_err(|e| e.to_string())?;
        Storage::open(&config).map_err(|e| e.to_string())
    }
}

const FAST_RETRY: &str =
    "[storage.retry]\nmax_retries = 4\nmin_delay = \"20ms\"\nmax_delay = \"100ms\"\n";

type FaultCase = fn(S3Target) -> Result<(), String>;

pub fn trials(label: &str, target: S3Target) -> Vec<Trial> {
    let cases: [(&str, FaultCase); 4] = [
        ("retry_rides_out_throttling", throttled_then_ok),
        ("no_retry_on_permanent_error", permanent_error_once),
        ("stalled_request_times_out_and_retries", stalled_times_out),
        (
            "storage_check_wrong_region_as_aws_answers",
            wrong_region_check,
        ),
    ];
    cases
        .into_iter()
        .map(|(name, case)| {
            let target = target.clone();
            Trial::test(format!("{label}::{name}"), move || {
                case(target.clone()).map_err(Failed::from)
            })
        })
        .collect()
}

fn on_runtime(future: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(future)
}

/// Three 503 SlowDown answers, then the real server: the write succeeds and is there.
fn throttled_then_ok(target: S3Target) -> Result<(), String> {
    on_runtime(async move {
        let fault = Fault::Respond {
            status: 503,
            reason: "Slow Down",
            code: "SlowDown",
            message: "Please reduce your request rate.",
            times: 3,
        };
        let proxy = FaultProxy::start(target.upstream()?, fault)
            .await
            .map_err(|e| e.to_string())?;
        let storage = target.storage(&proxy.endpoint(), &target.secret, FAST_RETRY)?;
        let key = format!("faults/throttled-{}", std::process::id());
        storage
            .operator()
            .write(&key, vec![1u8; 2048])
            .await
            .map_err(|e| format!("write through throttling: {e}"))?;
        let direct = target.storage(&target.endpoint, &target.secret, "")?;
        let read = direct
            .operator()
            .read(&key)
            .await
            .map_err(|e| format!("read back: {e}"))?;
        if read.len() != 2048 {
            return Err(format!("read back {} bytes", read.len()));
        }
        if proxy.connections() < 4 {
            return Err(format!(
                "expected 3 throttled attempts and a forwarded one, saw {} connections",
                proxy.connections()
            ));
        }
        Ok(())
    })
}

/// 403 AccessDenied is permanent: exactly one attempt, the error kept.
fn permanent_error_once(target: S3Target) -> Result<(), String> {
    on_runtime(async move {
        let fault = Fault::Respond {
            status: 403,
            reason: "Forbidden",
            code: "AccessDenied",
            message: "Access Denied",
            times: usize::MAX,
        };
        let proxy = FaultProxy::start(target.upstream()?, fault)
            .await
            .map_err(|e| e.to_string())?;
        let storage = target.storage(&proxy.endpoint(), &target.secret, FAST_RETRY)?;
        let result = storage
            .operator()
            .write("faults/denied", vec![1u8; 16])
            .await;
        match result {
            Err(err) if err.kind() == ErrorKind::PermissionDenied => {}
            other => return Err(format!("expected PermissionDenied, got {other:?}")),
        }
        if proxy.connections() != 1 {
            return Err(format!(
                "a permanent error was attempted {} times",
                proxy.connections()
            ));
        }
        Ok(())
    })
}

/// A server that never answers: each attempt ends at the timeout, is retried, and the
/// operation fails in bounded time instead of hanging.
fn stalled_times_out(target: S3Target) -> Result<(), String> {
    on_runtime(async move {
        let proxy = FaultProxy::start(target.upstream()?, Fault::Stall { times: usize::MAX })
            .await
            .map_err(|e| e.to_string())?;
        let settings = "[storage.timeouts]\noperation = \"1s\"\nio = \"1s\"\n[storage.retry]\nmax_retries = 1\nmin_delay = \"10ms\"\nmax_delay = \"10ms\"\n";
        let storage = target.storage(&proxy.endpoint(), &target.secret, settings)?;
        let started = Instant::now();
        let result = storage.operator().stat("faults/stalled").await;
        let elapsed = started.elapsed();
        if result.is_ok() {
            return Err("stat through a stalled server succeeded".to_string());
        }
        if elapsed > Duration::from_secs(10) {
            return Err(format!(
                "the stalled operation took {elapsed:?}, timeouts are 1 s"
            ));
        }
        if proxy.connections() != 2 {
            return Err(format!(
                "expected the first attempt and one retry, saw {} connections",
                proxy.connections()
            ));
        }
        Ok(())
    })
}

/// No server installable here checks the signing region, so the proxy answers as AWS
/// does for a bucket in another region, and `strata storage check` must name it.
fn wrong_region_check(target: S3Target) -> Result<(), String> {
    on_runtime(async move {
        let fault = Fault::Respond {
            status: 400,
            reason: "Bad Request",
            code: "AuthorizationHeaderMalformed",
            message: "The authorization header is malformed; the region 'eu-west-9' is wrong; expecting 'us-east-1'",
            times: usize::MAX,
        };
        let proxy = FaultProxy::start(target.upstream()?, fault)
            .await
            .map_err(|e| e.to_string())?;
        let config = format!(
            "[storage]\nkind = \"{}\"\nbucket = \"{}\"\nendpoint = \"{}\"\nregion = \"eu-west-9\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            target.kind,
            target.bucket,
            proxy.endpoint(),
            target.access,
            target.secret
        );
        let check = StorageCheck::fails("wrong_region", config, "wrong-region");
        tokio::task::spawn_blocking(move || conformance::storage_check(&check))
            .await
            .map_err(|e| format!("storage check task: {e}"))?
    })
}
