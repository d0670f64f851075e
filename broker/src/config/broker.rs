//! `[broker]`: the Kafka listener, the data directory and topic defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Settings of the Kafka front end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSection {
    /// This broker's id in Metadata responses.
    pub node_id: i32,
    /// Address the Kafka listener binds.
    pub listen: SocketAddr,
    /// `host:port` clients are told to connect to; the listen address when unset.
    pub advertised_listener: Option<String>,
    /// Local state: the WAL (local mode) and the embedded metadata store.
    pub data_dir: PathBuf,
    /// Largest request frame accepted (`socket.request.max.bytes`); a larger one
    /// closes its connection.
    pub socket_request_max_bytes: u32,
    /// Create a topic when a client asks Metadata for one that does not exist.
    pub auto_create_topics: bool,
    /// Partitions of a topic created without a count.
    pub num_partitions: i32,
    /// Default `max.message.bytes`: the largest record batch accepted.
    pub message_max_bytes: i32,
    /// Default `retention.ms`; -1 keeps data forever.
    pub log_retention_ms: i64,
    /// Default `retention.bytes` per partition; -1 for no limit.
    pub log_retention_bytes: i64,
    /// Wait before the first rebalance of a new group completes, so members starting
    /// together join one generation (`group.initial.rebalance.delay.ms`).
    #[serde(with = "humantime_serde")]
    pub group_initial_rebalance_delay: Duration,
    /// Bounds on the session timeout a member may ask for.
    #[serde(with = "humantime_serde")]
    pub group_min_session_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub group_max_session_timeout: Duration,
    /// Incremental fetch sessions kept at once (KIP-227); the least recently used
    /// one is evicted beyond this.
    pub max_fetch_sessions: usize,
    /// Largest fetch response, whatever the consumer asks (Kafka's broker-side
    /// `fetch.max.bytes`); bounds the memory responses take.
    pub fetch_max_bytes: usize,
}

impl Default for BrokerSection {
    fn default() -> Self {
        BrokerSection {
            node_id: 1,
            listen: SocketAddr::from(([0, 0, 0, 0], 9092)),
            advertised_listener: None,
            data_dir: PathBuf::from("./data"),
            socket_request_max_bytes: 100 << 20,
            auto_create_topics: true,
            num_partitions: 1,
            message_max_bytes: 1_048_588,
            log_retention_ms: 7 * 24 * 3600 * 1000,
            log_retention_bytes: -1,
            group_initial_rebalance_delay: Duration::from_secs(3),
            group_min_session_timeout: Duration::from_secs(6),
            group_max_session_timeout: Duration::from_secs(1800),
            max_fetch_sessions: 1000,
            fetch_max_bytes: 32 << 20,
        }
    }
}

impl BrokerSection {
    /// `(host, port)` put in Metadata responses.
    pub fn advertised(&self) -> Result<(String, i32), String> {
        match &self.advertised_listener {
            Some(listener) => {
                let (host, port) = listener.rsplit_once(':').ok_or_else(|| {
                    format!("broker.advertised_listener = {listener:?}: expected host:port")
                })?;
                let port = port.parse::<u16>().map_err(|_| {
                    format!("broker.advertised_listener = {listener:?}: port is not a number")
                })?;
                Ok((host.to_string(), i32::from(port)))
            }
            None => {
                let host = if self.listen.ip().is_unspecified() {
                    "localhost".to_string()
                } else {
                    self.listen.ip().to_string()
                };
                Ok((host, i32::from(self.listen.port())))
            }
        }
    }
}
