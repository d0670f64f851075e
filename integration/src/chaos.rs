//! A loopback proxy in front of a real S3 server that, while enabled, breaks a share
//! of connections: error answers (500, 503 SlowDown), resets before any answer, and
//! forwarded connections cut after a short random lifetime (resets mid-transfer).
//! Decisions come from a seeded hash of the connection number, so a run repeats.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

pub struct ChaosProxy {
    address: SocketAddr,
    enabled: Arc<AtomicBool>,
    injected: Arc<AtomicUsize>,
}

impl ChaosProxy {
    /// Starts the proxy (enabled) on the current tokio runtime; about
    /// `error_per_mille` of 1000 connections get a fault.
    pub async fn start(
        upstream: SocketAddr,
        error_per_mille: u64,
        seed: u64,
    ) -> std::io::Result<ChaosProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let enabled = Arc::new(AtomicBool::new(true));
        let injected = Arc::new(AtomicUsize::new(0));
        let (on, count) = (enabled.clone(), injected.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while let Ok((client, _)) = listener.accept().await {
                n += 1;
                let roll = mix(n ^ seed);
                let fault = on
                    .load(Ordering::SeqCst)
                    .then_some(roll % 1000 < error_per_mille);
                tokio::spawn(serve(client, upstream, fault, roll, count.clone()));
            }
        });
        Ok(ChaosProxy {
            address,
            enabled,
            injected,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops injecting: every later connection is forwarded untouched.
    pub fn disable(&self) {
        self.enabled.store(false, Ordering::SeqCst);
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `fault`: `None` when chaos is off, else whether this connection gets an outright fault.
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    fault: Option<bool>,
    roll: u64,
    injected: Arc<AtomicUsize>,
) {
    let answer = |status: &str, code: &str| {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>chaos</Message></Error>"
        );
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    match fault {
        Some(true) => {
            injected.fetch_add(1, Ordering::SeqCst);
            let _ = crate::faults::read_request_head(&mut client).await;
            match (roll >> 20) % 3 {
                0 => {
                    let _ = client
                        .write_all(answer("500 Internal Server Error", "InternalError").as_bytes())
                        .await;
                }
                1 => {
                    let _ = client
                        .write_all(answer("503 Slow Down", "SlowDown").as_bytes())
                        .await;
                }
                _ => {} // dropped without an answer: the client sees a reset
            }
        }
        Some(false) => {
            // Forwarded, but cut after a short lifetime: later requests on this
            // keep-alive connection may die mid-transfer.
            let lifetime = Duration::from_millis(50 + (roll >> 30) % 400);
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let forwarded = tokio::io::copy_bidirectional(&mut client, &mut server);
            if tokio::time::timeout(lifetime, forwarded).await.is_err() {
                injected.fetch_add(1, Ordering::SeqCst);
            }
        }
        None => {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        }
    }
}
