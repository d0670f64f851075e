//! Counts the error codes a response carries, by API and Kafka error name.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseKind};

fn count(api: ApiKey, code: i16) {
    if let Some(error) = ResponseError::try_from_code(code) {
        metrics::counter!(
            "strata_kafka_request_errors_total",
            "api" => api_name(api),
            "error" => format!("{error:?}")
        )
        .increment(1);
    }
}

/// The API's name as a label value.
pub fn api_name(api: ApiKey) -> &'static str {
    match api {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::AlterConfigs => "AlterConfigs",
        ApiKey::DescribeLogDirs => "DescribeLogDirs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::OffsetDelete => "OffsetDelete",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::DescribeProducers => "DescribeProducers",
        _ => "other",
    }
}

/// Counts every non-zero error code in `response`.
pub fn record(api: ApiKey, response: &ResponseKind) {
    match response {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| count(api, p.error_code)),
        ResponseKind::Fetch(r) => {
            count(api, r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| count(api, p.error_code));
        }
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| count(api, p.error_code)),
        ResponseKind::Metadata(r) => r.topics.iter().for_each(|t| count(api, t.error_code)),
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| count(api, p.error_code)),
        ResponseKind::FindCoordinator(r) => {
            count(api, r.error_code);
            r.coordinators.iter().for_each(|c| count(api, c.error_code));
        }
        ResponseKind::JoinGroup(r) => count(api, r.error_code),
        ResponseKind::SyncGroup(r) => count(api, r.error_code),
        ResponseKind::Heartbeat(r) => count(api, r.error_code),
        ResponseKind::LeaveGroup(r) => {
            count(api, r.error_code);
            r.members.iter().for_each(|m| count(api, m.error_code));
        }
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| count(api, t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| count(api, t.error_code)),
        ResponseKind::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| count(api, p.error_code)),
        ResponseKind::InitProducerId(r) => count(api, r.error_code),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| count(api, g.error_code)),
        ResponseKind::CreatePartitions(r) => {
            r.results.iter().for_each(|t| count(api, t.error_code))
        }
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|t| count(api, t.error_code)),
        ResponseKind::AlterConfigs(r) => r.responses.iter().for_each(|t| count(api, t.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().for_each(|t| count(api, t.error_code))
        }
        ResponseKind::OffsetDelete(r) => count(api, r.error_code),
        ResponseKind::ApiVersions(r) => count(api, r.error_code),
        _ => {}
    }
}
