//! ApiVersions, and the table of what this broker implements.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};

/// Every implemented API with the versions its handler speaks. Versions that move
/// to topic ids (Produce 12+, Fetch 13+, DeleteTopics 6+, OffsetCommit/Fetch 10+)
/// and the KIP-848 group protocol (OffsetCommit 9+) are left out for now.
const IMPLEMENTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
];

/// `(min, max)` of `key` as advertised: ours, within what the codec knows.
fn advertised(key: ApiKey) -> Option<(i16, i16)> {
    IMPLEMENTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| {
            let codec = key.valid_versions();
            ((*min).max(codec.min), (*max).min(codec.max))
        })
}

pub fn is_supported(key: ApiKey, version: i16) -> bool {
    advertised(key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

fn api_keys() -> Vec<ApiVersion> {
    IMPLEMENTED
        .iter()
        .filter_map(|(key, _, _)| {
            advertised(*key).map(|(min, max)| {
                ApiVersion::default()
                    .with_api_key(*key as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
        })
        .collect()
}

pub fn handle() -> ResponseKind {
    ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(api_keys()))
}

/// The answer to an ApiVersions request of a version we do not speak: version 0 of
/// the response, UNSUPPORTED_VERSION and our versions, so the client can retry.
pub fn unsupported_api_versions_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(kafka_protocol::ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_only_what_both_we_and_the_codec_speak() {
        assert!(is_supported(ApiKey::Produce, 9));
        assert!(!is_supported(ApiKey::Produce, 2), "below the codec's range");
        assert!(
            !is_supported(ApiKey::Fetch, 13),
            "topic-id fetch not implemented"
        );
        assert!(!is_supported(ApiKey::SaslHandshake, 1));
        let keys = api_keys();
        assert_eq!(keys.len(), IMPLEMENTED.len());
        assert!(keys.iter().all(|k| k.min_version <= k.max_version));
    }
}
