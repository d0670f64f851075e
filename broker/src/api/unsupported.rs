//! The answer to a request for an API or a version this broker does not implement.
//!
//! Clients pick versions from ApiVersions, so this path serves hand-made requests and
//! clients that skip negotiation. They get the response at the version they asked
//! for, carrying UNSUPPORTED_VERSION in every error field they read (per item where
//! the response has no top-level code), and the connection stays open. Inter-broker
//! and controller APIs, and versions the codec cannot encode, get `None`: the
//! connection closes, as Apache Kafka does for every unsupported request.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

const UNSUPPORTED: i16 = ResponseError::UnsupportedVersion.code();

/// `$response::default()` with UNSUPPORTED_VERSION in its top-level `error_code`,
/// for each request kind named (every version of these responses has the field).
macro_rules! with_top_level_error {
    ($request:expr, $($api:ident => $response:ident),* $(,)?) => {
        match $request {
            $(RequestKind::$api(_) => Some(ResponseKind::$api(
                $response::default().with_error_code(UNSUPPORTED),
            )),)*
            _ => None,
        }
    };
}

/// Responses whose only error field is a top-level `error_code`.
fn top_level(request: &RequestKind, version: i16) -> Option<ResponseKind> {
    // These gained the top-level field at a version; older ones fall to `per_item`
    // or close.
    let since_version = match request {
        RequestKind::Fetch(_) if version >= 7 => Some(ResponseKind::Fetch(
            FetchResponse::default().with_error_code(UNSUPPORTED),
        )),
        RequestKind::Metadata(_) if version >= 13 => Some(ResponseKind::Metadata(
            MetadataResponse::default().with_error_code(UNSUPPORTED),
        )),
        RequestKind::DescribeLogDirs(_) if version >= 3 => Some(ResponseKind::DescribeLogDirs(
            DescribeLogDirsResponse::default().with_error_code(UNSUPPORTED),
        )),
        RequestKind::ElectLeaders(_) if version >= 1 => Some(ResponseKind::ElectLeaders(
            ElectLeadersResponse::default().with_error_code(UNSUPPORTED),
        )),
        _ => None,
    };
    since_version.or_else(|| {
        with_top_level_error!(request,
            AddOffsetsToTxn => AddOffsetsToTxnResponse,
            AlterPartitionReassignments => AlterPartitionReassignmentsResponse,
            ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse,
            CreateDelegationToken => CreateDelegationTokenResponse,
            DescribeAcls => DescribeAclsResponse,
            DescribeClientQuotas => DescribeClientQuotasResponse,
            DescribeCluster => DescribeClusterResponse,
            DescribeDelegationToken => DescribeDelegationTokenResponse,
            DescribeUserScramCredentials => DescribeUserScramCredentialsResponse,
            EndTxn => EndTxnResponse,
            ExpireDelegationToken => ExpireDelegationTokenResponse,
            GetTelemetrySubscriptions => GetTelemetrySubscriptionsResponse,
            Heartbeat => HeartbeatResponse,
            InitProducerId => InitProducerIdResponse,
            JoinGroup => JoinGroupResponse,
            LeaveGroup => LeaveGroupResponse,
            ListGroups => ListGroupsResponse,
            ListPartitionReassignments => ListPartitionReassignmentsResponse,
            ListTransactions => ListTransactionsResponse,
            OffsetDelete => OffsetDeleteResponse,
            PushTelemetry => PushTelemetryResponse,
            RenewDelegationToken => RenewDelegationTokenResponse,
            SaslAuthenticate => SaslAuthenticateResponse,
            SaslHandshake => SaslHandshakeResponse,
            SyncGroup => SyncGroupResponse,
            UpdateFeatures => UpdateFeaturesResponse,
        )
    })
}

/// The UNSUPPORTED_VERSION response to `request` at `version`, if its response has
/// an error field for it.
pub fn response(request: &RequestKind, version: i16) -> Option<ResponseKind> {
    top_level(request, version).or_else(|| per_item(request, version))
}

/// Responses that carry errors per topic, partition, group or key: each item of the
/// request gets its own UNSUPPORTED_VERSION.
fn per_item(request: &RequestKind, version: i16) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::Produce(req) => ResponseKind::Produce(
            ProduceResponse::default().with_responses(
                req.topic_data
                    .iter()
                    .map(|topic| {
                        TopicProduceResponse::default()
                            .with_name(topic.name.clone())
                            .with_topic_id(topic.topic_id)
                            .with_partition_responses(
                                topic
                                    .partition_data
                                    .iter()
                                    .map(|p| {
                                        PartitionProduceResponse::default()
                                            .with_index(p.index)
                                            .with_error_code(UNSUPPORTED)
                                            .with_base_offset(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::ListOffsets(req) => ResponseKind::ListOffsets(
            ListOffsetsResponse::default().with_topics(
                req.topics
                    .iter()
                    .map(|topic| {
                        ListOffsetsTopicResponse::default()
                            .with_name(topic.name.clone())
                            .with_partitions(
                                topic
                                    .partitions
                                    .iter()
                                    .map(|p| {
                                        ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(UNSUPPORTED)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::OffsetCommit(req) => ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(
                req.topics
                    .iter()
                    .map(|topic| {
                        OffsetCommitResponseTopic::default()
                            .with_name(topic.name.clone())
                            .with_topic_id(topic.topic_id)
                            .with_partitions(
                                topic
                                    .partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(UNSUPPORTED)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::TxnOffsetCommit(req) => ResponseKind::TxnOffsetCommit(
            TxnOffsetCommitResponse::default().with_topics(
                req.topics
                    .iter()
                    .map(|topic| {
                        TxnOffsetCommitResponseTopic::default()
                            .with_name(topic.name.clone())
                            .with_partitions(
                                topic
                                    .partitions
                                    .iter()
                                    .map(|p| {
                                        TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(UNSUPPORTED)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::OffsetFetch(req) if version >= 8 => ResponseKind::OffsetFetch(
            OffsetFetchResponse::default().with_groups(
                req.groups
                    .iter()
                    .map(|group| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(group.group_id.clone())
                            .with_error_code(UNSUPPORTED)
                            .with_topics(
                                group
                                    .topics
                                    .iter()
                                    .flatten()
                                    .map(|topic| {
                                        OffsetFetchResponseTopics::default()
                                            .with_name(topic.name.clone())
                                            .with_topic_id(topic.topic_id)
                                            .with_partitions(
                                                topic
                                                    .partition_indexes
                                                    .iter()
                                                    .map(|&index| {
                                                        OffsetFetchResponsePartitions::default()
                                                            .with_partition_index(index)
                                                            .with_committed_offset(-1)
                                                            .with_error_code(UNSUPPORTED)
                                                    })
                                                    .collect(),
                                            )
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::OffsetFetch(req) => {
            let response = OffsetFetchResponse::default().with_topics(
                req.topics
                    .iter()
                    .flatten()
                    .map(|topic| {
                        OffsetFetchResponseTopic::default()
                            .with_name(topic.name.clone())
                            .with_partitions(
                                topic
                                    .partition_indexes
                                    .iter()
                                    .map(|&index| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(index)
                                            .with_committed_offset(-1)
                                            .with_error_code(UNSUPPORTED)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
            // Version 0 and 1 have no top-level error code.
            ResponseKind::OffsetFetch(if version >= 2 {
                response.with_error_code(UNSUPPORTED)
            } else {
                response
            })
        }
        RequestKind::FindCoordinator(req) if version >= 4 => ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default().with_coordinators(
                req.coordinator_keys
                    .iter()
                    .map(|key| {
                        Coordinator::default()
                            .with_key(key.clone())
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(UNSUPPORTED)
                    })
                    .collect(),
            ),
        ),
        RequestKind::FindCoordinator(_) => ResponseKind::FindCoordinator(
            FindCoordinatorResponse::default()
                .with_error_code(UNSUPPORTED)
                .with_node_id(BrokerId(-1))
                .with_port(-1),
        ),
        RequestKind::DescribeGroups(req) => ResponseKind::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(
                req.groups
                    .iter()
                    .map(|group| {
                        DescribedGroup::default()
                            .with_group_id(group.clone())
                            .with_error_code(UNSUPPORTED)
                    })
                    .collect(),
            ),
        ),
        RequestKind::DeleteTopics(req) => ResponseKind::DeleteTopics(
            DeleteTopicsResponse::default().with_responses(
                req.topics
                    .iter()
                    .map(|topic| {
                        DeletableTopicResult::default()
                            .with_name(topic.name.clone())
                            .with_topic_id(topic.topic_id)
                            .with_error_code(UNSUPPORTED)
                    })
                    .chain(req.topic_names.iter().map(|name| {
                        DeletableTopicResult::default()
                            .with_name(Some(name.clone()))
                            .with_error_code(UNSUPPORTED)
                    }))
                    .collect(),
            ),
        ),
        RequestKind::AddPartitionsToTxn(req) if version < 4 => ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
                req.v3_and_below_topics
                    .iter()
                    .map(|topic| {
                        AddPartitionsToTxnTopicResult::default()
                            .with_name(topic.name.clone())
                            .with_results_by_partition(
                                topic
                                    .partitions
                                    .iter()
                                    .map(|&index| {
                                        AddPartitionsToTxnPartitionResult::default()
                                            .with_partition_index(index)
                                            .with_partition_error_code(UNSUPPORTED)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        RequestKind::AddPartitionsToTxn(_) => ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_error_code(UNSUPPORTED),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::api::is_supported;

    /// A default request of every API a client may send without negotiating.
    fn client_requests() -> Vec<(ApiKey, RequestKind)> {
        vec![
            (ApiKey::Produce, RequestKind::Produce(Default::default())),
            (ApiKey::Fetch, RequestKind::Fetch(Default::default())),
            (
                ApiKey::ListOffsets,
                RequestKind::ListOffsets(Default::default()),
            ),
            (ApiKey::Metadata, RequestKind::Metadata(Default::default())),
            (
                ApiKey::OffsetCommit,
                RequestKind::OffsetCommit(Default::default()),
            ),
            (
                ApiKey::OffsetFetch,
                RequestKind::OffsetFetch(Default::default()),
            ),
            (
                ApiKey::FindCoordinator,
                RequestKind::FindCoordinator(Default::default()),
            ),
            (
                ApiKey::JoinGroup,
                RequestKind::JoinGroup(Default::default()),
            ),
            (
                ApiKey::Heartbeat,
                RequestKind::Heartbeat(Default::default()),
            ),
            (
                ApiKey::LeaveGroup,
                RequestKind::LeaveGroup(Default::default()),
            ),
            (
                ApiKey::SyncGroup,
                RequestKind::SyncGroup(Default::default()),
            ),
            (
                ApiKey::DescribeGroups,
                RequestKind::DescribeGroups(Default::default()),
            ),
            (
                ApiKey::ListGroups,
                RequestKind::ListGroups(Default::default()),
            ),
            (
                ApiKey::DeleteTopics,
                RequestKind::DeleteTopics(Default::default()),
            ),
            (
                ApiKey::InitProducerId,
                RequestKind::InitProducerId(Default::default()),
            ),
            (
                ApiKey::DescribeCluster,
                RequestKind::DescribeCluster(Default::default()),
            ),
            (
                ApiKey::DescribeLogDirs,
                RequestKind::DescribeLogDirs(Default::default()),
            ),
            (
                ApiKey::SaslHandshake,
                RequestKind::SaslHandshake(Default::default()),
            ),
            (
                ApiKey::SaslAuthenticate,
                RequestKind::SaslAuthenticate(Default::default()),
            ),
            (
                ApiKey::AddPartitionsToTxn,
                RequestKind::AddPartitionsToTxn(Default::default()),
            ),
            (
                ApiKey::AddOffsetsToTxn,
                RequestKind::AddOffsetsToTxn(Default::default()),
            ),
            (ApiKey::EndTxn, RequestKind::EndTxn(Default::default())),
            (
                ApiKey::TxnOffsetCommit,
                RequestKind::TxnOffsetCommit(Default::default()),
            ),
            (
                ApiKey::DescribeAcls,
                RequestKind::DescribeAcls(Default::default()),
            ),
            (
                ApiKey::ElectLeaders,
                RequestKind::ElectLeaders(Default::default()),
            ),
            (
                ApiKey::ListTransactions,
                RequestKind::ListTransactions(Default::default()),
            ),
            (
                ApiKey::ConsumerGroupHeartbeat,
                RequestKind::ConsumerGroupHeartbeat(Default::default()),
            ),
            (
                ApiKey::GetTelemetrySubscriptions,
                RequestKind::GetTelemetrySubscriptions(Default::default()),
            ),
        ]
    }

    fn encodes(response: &ResponseKind, version: i16) -> Result<(), String> {
        let mut buf = BytesMut::new();
        response
            .encode(&mut buf, version)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_unserved_version_of_a_client_api_gets_an_answer_the_codec_writes() {
        let mut answered = 0;
        for (key, request) in client_requests() {
            let range = key.valid_versions();
            for version in range.min..=range.max {
                if is_supported(key, version) {
                    continue;
                }
                // ElectLeaders v0 has no error field at all: that one closes.
                if (key, version) == (ApiKey::ElectLeaders, 0) {
                    assert!(response(&request, version).is_none());
                    continue;
                }
                let answer = response(&request, version)
                    .unwrap_or_else(|| panic!("{key:?} v{version} has no answer"));
                encodes(&answer, version)
                    .unwrap_or_else(|e| panic!("{key:?} v{version} does not encode: {e}"));
                answered += 1;
            }
        }
        assert!(answered > 50, "only {answered} versions checked");
    }

    #[test]
    fn per_item_responses_carry_the_error_on_every_item() {
        let request = RequestKind::Produce(ProduceRequest::default().with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_data(vec![
                        PartitionProduceData::default().with_index(0),
                        PartitionProduceData::default().with_index(3),
                    ]),
            ]));
        let Some(ResponseKind::Produce(produce)) = response(&request, 12) else {
            panic!("Produce v12 gets a Produce response");
        };
        let partitions = &produce.responses[0].partition_responses;
        assert_eq!(
            partitions
                .iter()
                .map(|p| (p.index, p.error_code))
                .collect::<Vec<_>>(),
            vec![(0, UNSUPPORTED), (3, UNSUPPORTED)]
        );
        encodes(&ResponseKind::Produce(produce), 12).expect("Produce v12 encodes");

        let request = RequestKind::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("group-a")]),
        );
        let Some(ResponseKind::FindCoordinator(found)) = response(&request, 5) else {
            panic!("FindCoordinator v5 gets a FindCoordinator response");
        };
        assert_eq!(found.coordinators[0].key.as_str(), "group-a");
        assert_eq!(found.coordinators[0].error_code, UNSUPPORTED);
    }

    #[test]
    fn inter_broker_apis_close_the_connection() {
        let request = RequestKind::BrokerHeartbeat(Default::default());
        assert!(response(&request, 0).is_none());
    }
}
