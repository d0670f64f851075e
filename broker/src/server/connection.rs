//! One client connection: read frames, decode, dispatch, and write responses in
//! request order while slow requests (produce, fetch, joins) wait concurrently.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::frame::{encode_response, read_frame};
use crate::api::{self, Client, Reply};
use crate::broker::Broker;
use crate::observability::errors;

/// Requests answered or in progress but not yet written, per connection.
const IN_FLIGHT: usize = 64;

/// A response in its place in the connection's order.
struct Outgoing {
    key: ApiKey,
    received: Instant,
    body: Body,
}

enum Body {
    Ready(Bytes),
    /// The handler's task, resolving to the response and when it was ready.
    Pending {
        version: i16,
        correlation_id: i32,
        response: JoinHandle<(ResponseKind, Instant)>,
    },
}

/// Why the connection was closed by us.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error(transparent)]
    Frame(#[from] super::frame::FrameError),
    #[error("request too short for a header ({0} bytes)")]
    ShortHeader(usize),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("{key:?} version {version} is not supported")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("malformed {key:?} v{version} request: {reason}")]
    Malformed {
        key: ApiKey,
        version: i16,
        reason: String,
    },
}

pub async fn run(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>) {
    let _ = stream.set_nodelay(true);
    metrics::gauge!("strata_kafka_connections").increment(1.0);
    let (reader, mut writer) = stream.into_split();
    let (queue, mut outgoing) = mpsc::channel::<Outgoing>(IN_FLIGHT);
    let write = tokio::spawn(async move {
        while let Some(next) = outgoing.recv().await {
            let api = errors::api_name(next.key);
            let frame = match next.body {
                Body::Ready(frame) => frame,
                Body::Pending {
                    version,
                    correlation_id,
                    response,
                } => {
                    let Ok((response, ready_at)) = response.await else {
                        tracing::error!(%peer, api, "request handler panicked; closing");
                        return;
                    };
                    metrics::histogram!("strata_kafka_request_queue_seconds", "api" => api)
                        .record(ready_at.elapsed().as_secs_f64());
                    errors::record(next.key, &response);
                    match encode_response(next.key, version, correlation_id, &response) {
                        Ok(frame) => frame,
                        Err(reason) => {
                            tracing::error!(%peer, api, version, %reason, "cannot encode response; closing");
                            return;
                        }
                    }
                }
            };
            if writer.write_all(&frame).await.is_err() {
                return;
            }
            metrics::histogram!("strata_kafka_request_duration_seconds", "api" => api)
                .record(next.received.elapsed().as_secs_f64());
        }
    });
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    let max = broker.config.broker.socket_request_max_bytes;
    let mut client = Client {
        client_id: String::new(),
        host: peer.ip().to_string(),
    };
    loop {
        let frame = match read_frame(&mut reader, max).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(%peer, %err, "closing connection");
                break;
            }
        };
        match handle(&broker, &mut client, frame, Instant::now()).await {
            Ok(None) => {}
            Ok(Some(out)) => {
                if queue.send(out).await.is_err() {
                    break;
                }
            }
            Err((err, reply)) => {
                tracing::warn!(%peer, client_id = %client.client_id, %err, "closing connection");
                metrics::counter!("strata_kafka_rejected_requests_total").increment(1);
                if let Some(reply) = reply {
                    let _ = queue.send(reply).await;
                }
                break;
            }
        }
    }
    drop(queue);
    let _ = write.await;
    metrics::gauge!("strata_kafka_connections").decrement(1.0);
}

/// Decodes and dispatches one request; an `Err` closes the connection after
/// sending its optional last reply.
async fn handle(
    broker: &Arc<Broker>,
    client: &mut Client,
    frame: Bytes,
    received: Instant,
) -> Result<Option<Outgoing>, (Closed, Option<Outgoing>)> {
    if frame.len() < 8 {
        return Err((Closed::ShortHeader(frame.len()), None));
    }
    let raw_key = (&frame[0..2]).get_i16();
    let version = (&frame[2..4]).get_i16();
    let correlation_id = (&frame[4..8]).get_i32();
    let key = ApiKey::try_from(raw_key).map_err(|()| (Closed::UnknownApi(raw_key), None))?;
    let malformed = |reason: String| {
        (
            Closed::Malformed {
                key,
                version,
                reason,
            },
            None,
        )
    };
    let unsupported = || (Closed::UnsupportedVersion { key, version }, None);
    let supported = api::is_supported(key, version);
    if !supported && key == ApiKey::ApiVersions {
        // Answer in v0 so any client can read it, then let it retry lower.
        let response = ResponseKind::ApiVersions(api::unsupported_api_versions_response());
        return ready(key, 0, correlation_id, received, &response)
            .map(Some)
            .map_err(malformed);
    }
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, key.request_header_version(version))
        .map_err(|e| malformed(e.to_string()))?;
    let request = RequestKind::decode(key, &mut body, version).map_err(|e| {
        if supported {
            malformed(e.to_string())
        } else {
            // Beyond what the codec reads: there is no response we could write.
            unsupported()
        }
    })?;
    if !supported {
        let response = api::unsupported_response(&request, version).ok_or_else(unsupported)?;
        tracing::debug!(?key, version, "answered UNSUPPORTED_VERSION");
        return ready(key, version, correlation_id, received, &response)
            .map(Some)
            .map_err(|reason| {
                tracing::error!(?key, version, %reason, "cannot encode UNSUPPORTED_VERSION response");
                unsupported()
            });
    }
    if let Some(id) = &header.client_id
        && client.client_id != id.as_str()
    {
        client.client_id = id.to_string();
    }
    metrics::counter!("strata_kafka_requests_total", "api" => errors::api_name(key)).increment(1);
    match api::dispatch(broker, client, &header, request).await {
        Reply::Nothing => Ok(None),
        Reply::Now(response) => ready(key, version, correlation_id, received, &response)
            .map(Some)
            .map_err(|reason| {
                tracing::error!(?key, version, %reason, "cannot encode response");
                malformed(reason)
            }),
        Reply::Later(future) => Ok(Some(Outgoing {
            key,
            received,
            body: Body::Pending {
                version,
                correlation_id,
                response: tokio::spawn(async move { (future.await, Instant::now()) }),
            },
        })),
    }
}

/// An answer ready now: its errors counted, encoded at `version`.
fn ready(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    received: Instant,
    response: &ResponseKind,
) -> Result<Outgoing, String> {
    errors::record(key, response);
    let frame = encode_response(key, version, correlation_id, response)?;
    Ok(Outgoing {
        key,
        received,
        body: Body::Ready(frame),
    })
}
