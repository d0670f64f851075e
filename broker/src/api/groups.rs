//! Group APIs: FindCoordinator, Join/Sync/Heartbeat/Leave, committed offsets, and
//! group administration. The state machine lives in [`crate::groups`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, ResponseKind, SyncGroupRequest, SyncGroupResponse,
};

use super::{Client, Reply, code, str_bytes, topic_name};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::groups::JoinRequest;
use crate::groups::offsets::{Committed, TopicPartition};

/// Per topic, each partition's outcome.
type PartitionResults<T> = Vec<(String, Vec<(i32, T)>)>;

/// Largest commit metadata string accepted (Kafka's `offset.metadata.max.bytes`).
const MAX_METADATA_BYTES: usize = 4096;

fn group_id(value: &str) -> GroupId {
    GroupId(str_bytes(value))
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

pub fn find_coordinator(
    broker: &Arc<Broker>,
    req: FindCoordinatorRequest,
    version: i16,
) -> ResponseKind {
    let node = &broker.node;
    // Groups (0) and transactions (1) both live here; other key types do not exist.
    let error = (req.key_type > 1).then_some(ResponseError::InvalidRequest);
    // v4 batches keys into `coordinators` and drops the single-key fields.
    let response = if version >= 4 {
        FindCoordinatorResponse::default().with_coordinators(
            req.coordinator_keys
                .into_iter()
                .map(|key| {
                    Coordinator::default()
                        .with_key(key)
                        .with_error_code(code(error))
                        .with_node_id(BrokerId(node.node_id))
                        .with_host(str_bytes(node.host.clone()))
                        .with_port(node.port)
                })
                .collect(),
        )
    } else {
        FindCoordinatorResponse::default()
            .with_error_code(code(error))
            .with_node_id(BrokerId(node.node_id))
            .with_host(str_bytes(node.host.clone()))
            .with_port(node.port)
    };
    ResponseKind::FindCoordinator(response)
}

pub fn join(broker: &Arc<Broker>, client: &Client, req: JoinGroupRequest, version: i16) -> Reply {
    let request = JoinRequest {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
        session_timeout: millis(req.session_timeout_ms),
        // v0 has no rebalance timeout: Kafka takes the session timeout.
        rebalance_timeout: millis(if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        }),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let outcome = broker.groups.join(request);
    let waiting = metrics::gauge!("strata_kafka_purgatory_requests", "kind" => "join");
    waiting.increment(1.0);
    Reply::Later(Box::pin(async move {
        let outcome = outcome.await;
        waiting.decrement(1.0);
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(_) => crate::groups::JoinOutcome::failed(
                ResponseError::CoordinatorNotAvailable,
                String::new(),
            ),
        };
        ResponseKind::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(code(outcome.error))
                .with_generation_id(outcome.generation)
                .with_protocol_type(outcome.protocol_type.map(str_bytes))
                .with_protocol_name(Some(str_bytes(outcome.protocol_name.unwrap_or_default())))
                .with_leader(str_bytes(outcome.leader))
                .with_member_id(str_bytes(outcome.member_id))
                .with_members(
                    outcome
                        .members
                        .into_iter()
                        .map(|(id, instance, metadata)| {
                            JoinGroupResponseMember::default()
                                .with_member_id(str_bytes(id))
                                .with_group_instance_id(instance.map(str_bytes))
                                .with_metadata(metadata)
                        })
                        .collect(),
                ),
        )
    }))
}

pub fn sync(broker: &Arc<Broker>, req: SyncGroupRequest) -> Reply {
    let assignments: BTreeMap<String, bytes::Bytes> = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let outcome = broker.groups.sync(
        req.group_id.0.as_str(),
        req.member_id.as_str(),
        req.group_instance_id.as_ref().map(|s| s.as_str()),
        req.generation_id,
        assignments,
    );
    let (protocol_type, protocol_name) = (req.protocol_type, req.protocol_name);
    Reply::Later(Box::pin(async move {
        let outcome = outcome
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
        let response = SyncGroupResponse::default()
            .with_protocol_type(protocol_type)
            .with_protocol_name(protocol_name);
        ResponseKind::SyncGroup(match outcome {
            Ok(assignment) => response.with_assignment(assignment),
            Err(error) => response.with_error_code(error.code()),
        })
    }))
}

pub fn heartbeat(broker: &Arc<Broker>, req: HeartbeatRequest) -> ResponseKind {
    let result = broker.groups.heartbeat(
        req.group_id.0.as_str(),
        req.member_id.as_str(),
        req.group_instance_id.as_ref().map(|s| s.as_str()),
        req.generation_id,
    );
    ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code(result.err())))
}

pub fn leave(broker: &Arc<Broker>, req: LeaveGroupRequest, version: i16) -> ResponseKind {
    let group = req.group_id.0.to_string();
    if version < 3 {
        let result = broker.groups.leave(&group, req.member_id.as_str(), None);
        return ResponseKind::LeaveGroup(
            LeaveGroupResponse::default().with_error_code(code(result.err())),
        );
    }
    let members = req
        .members
        .into_iter()
        .map(|m| {
            let result = broker.groups.leave(
                &group,
                m.member_id.as_str(),
                m.group_instance_id.as_ref().map(|s| s.as_str()),
            );
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(code(result.err()))
        })
        .collect();
    ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_members(members))
}

pub async fn offset_commit(broker: &Arc<Broker>, req: OffsetCommitRequest) -> ResponseKind {
    let group = req.group_id.0.to_string();
    let membership = broker.groups.validate_commit(
        &group,
        req.member_id.as_str(),
        req.group_instance_id.as_ref().map(|s| s.as_str()),
        req.generation_id_or_member_epoch,
    );
    let mut accepted: Vec<(TopicPartition, Committed)> = Vec::new();
    let mut results: PartitionResults<Option<ResponseError>> = Vec::new();
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let known = broker.topics.get(&name);
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let metadata = p.committed_metadata.map(|m| m.to_string());
            let error = if let Err(error) = membership {
                Some(error)
            } else if known
                .as_ref()
                .and_then(|t| t.partition(p.partition_index))
                .is_none()
            {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
            {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                accepted.push((
                    (name.clone(), p.partition_index),
                    Committed {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata,
                        commit_timestamp_ms: now_ms(),
                    },
                ));
                None
            };
            partitions.push((p.partition_index, error));
        }
        results.push((name, partitions));
    }
    let stored = if accepted.is_empty() {
        Ok(())
    } else {
        broker.groups.offsets.commit(&group, accepted).await
    };
    if let Err(err) = &stored {
        tracing::warn!(group = %group, %err, "offset commit failed");
    }
    let topics = results
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(topic_name(name))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, error)| {
                            let error = error.or(stored
                                .as_ref()
                                .err()
                                .map(|_| ResponseError::CoordinatorNotAvailable));
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(code(error))
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
}

/// Committed offsets of `group` for the asked partitions, or all with `None`;
/// partitions without one get [`Committed::absent`].
fn committed(
    broker: &Broker,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> PartitionResults<Committed> {
    let wanted = match wanted {
        Some(list) => list,
        None => {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for ((topic, partition), _) in broker.groups.offsets.fetch_all(group) {
                by_topic.entry(topic).or_default().push(partition);
            }
            by_topic.into_iter().collect()
        }
    };
    wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let found = partitions
                .into_iter()
                .map(|p| {
                    let committed = broker.groups.offsets.fetch(group, &(topic.clone(), p));
                    (p, committed.unwrap_or_else(Committed::absent))
                })
                .collect();
            (topic, found)
        })
        .collect()
}

pub fn offset_fetch(broker: &Arc<Broker>, req: OffsetFetchRequest, version: i16) -> ResponseKind {
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let group = g.group_id.0.to_string();
                let wanted = g.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let topics = committed(broker, &group, wanted)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(topic))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(index, c)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(index)
                                            .with_committed_offset(c.offset)
                                            .with_committed_leader_epoch(c.leader_epoch)
                                            .with_metadata(c.metadata.map(str_bytes))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(group_id(&group))
                    .with_topics(topics)
            })
            .collect();
        return ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_groups(groups));
    }
    let group = req.group_id.0.to_string();
    let wanted = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let topics = committed(broker, &group, wanted)
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, c)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(index)
                                .with_committed_offset(c.offset)
                                .with_committed_leader_epoch(c.leader_epoch)
                                .with_metadata(c.metadata.map(str_bytes))
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_topics(topics))
}

pub async fn offset_delete(broker: &Arc<Broker>, req: OffsetDeleteRequest) -> ResponseKind {
    let group = req.group_id.0.to_string();
    if broker.groups.offsets.fetch_all(&group).is_empty()
        && broker.groups.describe(&group).is_none()
    {
        return ResponseKind::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(ResponseError::GroupIdNotFound.code()),
        );
    }
    // As Kafka: offsets of topics the live members subscribe to stay.
    let subscribed = broker.groups.subscribed_topics(&group).unwrap_or_default();
    let is_subscribed = |topic: &str| subscribed.contains(topic) || subscribed.contains("*");
    let mut doomed: Vec<TopicPartition> = Vec::new();
    for topic in &req.topics {
        if is_subscribed(topic.name.0.as_str()) {
            continue;
        }
        for p in &topic.partitions {
            doomed.push((topic.name.0.to_string(), p.partition_index));
        }
    }
    let failed = broker
        .groups
        .offsets
        .delete(&group, Some(&doomed))
        .await
        .err()
        .map(|_| ResponseError::CoordinatorNotAvailable);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let error = if is_subscribed(t.name.0.as_str()) {
                Some(ResponseError::GroupSubscribedToTopic)
            } else {
                failed
            };
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code(error))
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_topics(topics))
}

pub fn describe(broker: &Arc<Broker>, req: DescribeGroupsRequest) -> ResponseKind {
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let described = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            match broker.groups.describe(id.0.as_str()) {
                None => described.with_group_state(str_bytes("Dead")),
                Some(group) => described
                    .with_group_state(str_bytes(group.state))
                    .with_protocol_type(str_bytes(group.protocol_type))
                    .with_protocol_data(str_bytes(group.protocol))
                    .with_members(
                        group
                            .members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(m.instance_id.map(str_bytes))
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(groups))
}

pub fn list(broker: &Arc<Broker>, req: ListGroupsRequest) -> ResponseKind {
    let states: Vec<String> = req
        .states_filter
        .iter()
        .map(|s| s.to_string().to_ascii_lowercase())
        .collect();
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|(_, _, state)| states.is_empty() || states.contains(&state.to_ascii_lowercase()))
        .map(|(group, protocol_type, state)| {
            ListedGroup::default()
                .with_group_id(group_id(&group))
                .with_protocol_type(str_bytes(protocol_type))
                .with_group_state(str_bytes(state))
                .with_group_type(str_bytes("classic"))
        })
        .collect();
    ResponseKind::ListGroups(ListGroupsResponse::default().with_groups(groups))
}

pub async fn delete(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> ResponseKind {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group in req.groups_names {
        let result = broker.groups.delete(group.0.as_str()).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(code(result.err())),
        );
    }
    ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
}
