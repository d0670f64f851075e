//! Kafka request handling: one module per API family and a single dispatch table.
//!
//! Each handler is a function of (broker, request) to a response, with Kafka's
//! error codes as values. Produce and Fetch return a future instead: the connection
//! keeps reading while they wait for durability or data, and answers in order.

mod admin;
mod configs;
mod fetch;
mod groups;
mod metadata;
mod offsets;
mod produce;
mod producers;
mod unsupported;
mod versions;

use std::sync::Arc;

use futures::future::BoxFuture;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub use self::unsupported::response as unsupported_response;
pub use self::versions::{is_supported, unsupported_api_versions_response};

/// What a connection does with a request.
pub enum Reply {
    Now(Box<ResponseKind>),
    /// Answered when the future resolves; the connection keeps reading meanwhile.
    Later(BoxFuture<'static, ResponseKind>),
    /// Produce with acks=0: no response at all.
    Nothing,
}

/// Who sent the request.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub host: String,
}

/// Handles one decoded request. `header.request_api_version` is supported (the
/// connection checked it against [`is_supported`]).
pub async fn dispatch(
    broker: &Arc<Broker>,
    client: &Client,
    header: &RequestHeader,
    request: RequestKind,
) -> Reply {
    let version = header.request_api_version;
    let now = |response: ResponseKind| Reply::Now(Box::new(response));
    match request {
        RequestKind::ApiVersions(_) => now(versions::handle()),
        RequestKind::Metadata(req) => now(metadata::metadata(broker, req, version).await),
        RequestKind::DescribeCluster(_) => now(metadata::describe_cluster(broker)),
        RequestKind::Produce(req) => produce::handle(broker, req).await,
        RequestKind::Fetch(req) => fetch::handle(broker, req, version),
        RequestKind::ListOffsets(req) => now(offsets::list_offsets(broker, req).await),
        RequestKind::DeleteRecords(req) => now(offsets::delete_records(broker, req).await),
        RequestKind::OffsetForLeaderEpoch(req) => now(offsets::for_leader_epoch(broker, req)),
        RequestKind::FindCoordinator(req) => now(groups::find_coordinator(broker, req, version)),
        RequestKind::JoinGroup(req) => groups::join(broker, client, req, version),
        RequestKind::SyncGroup(req) => groups::sync(broker, req),
        RequestKind::Heartbeat(req) => now(groups::heartbeat(broker, req)),
        RequestKind::LeaveGroup(req) => now(groups::leave(broker, req, version)),
        RequestKind::OffsetCommit(req) => now(groups::offset_commit(broker, req).await),
        RequestKind::OffsetFetch(req) => now(groups::offset_fetch(broker, req, version)),
        RequestKind::OffsetDelete(req) => now(groups::offset_delete(broker, req).await),
        RequestKind::DescribeGroups(req) => now(groups::describe(broker, req)),
        RequestKind::ListGroups(req) => now(groups::list(broker, req)),
        RequestKind::DeleteGroups(req) => now(groups::delete(broker, req).await),
        RequestKind::CreateTopics(req) => now(admin::create_topics(broker, req, version).await),
        RequestKind::DeleteTopics(req) => now(admin::delete_topics(broker, req).await),
        RequestKind::CreatePartitions(req) => now(admin::create_partitions(broker, req).await),
        RequestKind::DescribeConfigs(req) => now(configs::describe(broker, req)),
        RequestKind::AlterConfigs(req) => now(configs::alter(broker, req).await),
        RequestKind::IncrementalAlterConfigs(req) => {
            now(configs::incremental_alter(broker, req).await)
        }
        RequestKind::DescribeLogDirs(req) => now(admin::describe_log_dirs(broker, req)),
        RequestKind::InitProducerId(req) => now(producers::init_producer_id(broker, req).await),
        RequestKind::DescribeProducers(req) => now(producers::describe(broker, req).await),
        other => {
            // `is_supported` admits only the keys above; reaching here is a bug.
            tracing::error!(api = ?ApiKey::try_from(header.request_api_key), "request passed the version check but has no handler");
            let _ = other;
            Reply::Nothing
        }
    }
}

fn str_bytes(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn topic_name(value: impl Into<String>) -> TopicName {
    TopicName(str_bytes(value))
}

fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

/// The Kafka error code for a failure of the store.
fn store_error_code(err: &strata_core::store::StoreError) -> ResponseError {
    use strata_core::store::StoreError;
    match err {
        StoreError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StoreError::Fenced { .. } | StoreError::StreamClosing(_) => {
            ResponseError::NotLeaderOrFollower
        }
        StoreError::StreamNotOpen(_) | StoreError::UnknownStream(_) => {
            ResponseError::UnknownTopicOrPartition
        }
        StoreError::Batch(_) => ResponseError::CorruptMessage,
        _ => ResponseError::KafkaStorageError,
    }
}
