//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, and
//! DescribeLogDirs.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    ResponseKind,
};

use super::{store_error_code, str_bytes, topic_name};
use crate::broker::Broker;
use crate::topics::TopicError;
use crate::topics::config::TopicOverrides;

/// The Kafka error code of a topic failure, with the message to send along.
pub(super) fn topic_error(err: &TopicError) -> ResponseError {
    match err {
        TopicError::InvalidName(..) => ResponseError::InvalidTopicException,
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::Conflict(_) => ResponseError::ConcurrentTransactions,
        TopicError::Corrupt(..) => ResponseError::UnknownServerError,
        TopicError::Store(err) => store_error_code(err),
    }
}

pub async fn create_topics(
    broker: &Arc<Broker>,
    req: CreateTopicsRequest,
    version: i16,
) -> ResponseKind {
    let defaults = broker.topics.defaults();
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let entries: Vec<(String, String)> = topic
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let partitions = if topic.assignments.is_empty() {
            topic.num_partitions
        } else {
            topic.assignments.len() as i32
        };
        let outcome = if topic.replication_factor == 0 || topic.replication_factor < -1 {
            Err((
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {} is invalid: expected a positive count or -1",
                    topic.replication_factor
                ),
            ))
        } else {
            match TopicOverrides::from_entries(
                entries.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ) {
                Err(err) => Err((ResponseError::InvalidConfig, err.to_string())),
                Ok(overrides) => broker
                    .topics
                    .create(&name, partitions, overrides.clone(), req.validate_only)
                    .await
                    .map(|created| (created, overrides))
                    .map_err(|err| (topic_error(&err), err.to_string())),
            }
        };
        results.push(match outcome {
            Ok((created, overrides)) => {
                let count = created
                    .as_ref()
                    .map_or(partitions, |t| t.partitions.len() as i32);
                let count = if count == -1 {
                    defaults.num_partitions
                } else {
                    count
                };
                // Durability is the object store's: there is one copy per partition.
                let configs = overrides
                    .describe(&defaults)
                    .into_iter()
                    .map(|(key, value, is_default)| {
                        CreatableTopicConfigs::default()
                            .with_name(str_bytes(key))
                            .with_value(Some(str_bytes(value)))
                            .with_config_source(if is_default { 5 } else { 1 })
                    })
                    .collect();
                result
                    .with_topic_id(created.map(|t| t.id).unwrap_or_default())
                    .with_num_partitions(count)
                    .with_replication_factor(1)
                    // Configs in the response came with v5.
                    .with_configs((version >= 5).then_some(configs))
            }
            Err((error, message)) => {
                tracing::info!(topic = %name, %message, "create topic refused");
                result
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message)))
            }
        });
    }
    ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(results))
}

pub async fn delete_topics(broker: &Arc<Broker>, req: DeleteTopicsRequest) -> ResponseKind {
    let mut names: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    names.extend(
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut responses = Vec::with_capacity(names.len());
    for (name, id) in names {
        let name = name.or_else(|| broker.topics.by_id(id).map(|t| t.name.clone()));
        let result = DeletableTopicResult::default()
            .with_name(name.clone().map(topic_name))
            .with_topic_id(id);
        let outcome = match &name {
            Some(name) => broker.topics.delete(name).await,
            None => Err(TopicError::Unknown(id.to_string())),
        };
        if outcome.is_ok()
            && let Some(name) = &name
            && let Err(err) = broker.groups.offsets.delete_topic(name).await
        {
            tracing::warn!(topic = %name, %err, "committed offsets of a deleted topic remain");
        }
        responses.push(match outcome {
            Ok(()) => result,
            Err(err) => result
                .with_error_code(topic_error(&err).code())
                .with_error_message(Some(str_bytes(err.to_string()))),
        });
    }
    ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(responses))
}

pub async fn create_partitions(broker: &Arc<Broker>, req: CreatePartitionsRequest) -> ResponseKind {
    let mut results = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let outcome = broker
            .topics
            .add_partitions(topic.name.0.as_str(), topic.count, req.validate_only)
            .await;
        let result = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match outcome {
            Ok(()) => result,
            Err(err) => result
                .with_error_code(topic_error(&err).code())
                .with_error_message(Some(str_bytes(err.to_string()))),
        });
    }
    ResponseKind::CreatePartitions(CreatePartitionsResponse::default().with_results(results))
}

/// One "log dir": the object store, with each partition's size in it.
pub fn describe_log_dirs(broker: &Arc<Broker>, req: DescribeLogDirsRequest) -> ResponseKind {
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let mut topics = Vec::new();
    for topic in broker.topics.list() {
        let selected: Option<&Vec<i32>> = match &wanted {
            None => None,
            Some(list) => match list.iter().find(|(name, _)| *name == topic.name) {
                Some((_, partitions)) => Some(partitions),
                None => continue,
            },
        };
        let partitions = topic
            .partitions
            .iter()
            .filter(|p| selected.is_none_or(|s| s.contains(&p.index)))
            .map(|p| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(p.index)
                    .with_partition_size(
                        broker.store.stream_bytes(p.stream).map_or(0, |b| b as i64),
                    )
            })
            .collect();
        topics.push(
            DescribeLogDirsTopic::default()
                .with_name(topic_name(topic.name.clone()))
                .with_partitions(partitions),
        );
    }
    ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_results(vec![
            DescribeLogDirsResult::default()
                .with_log_dir(str_bytes(format!(
                    "{:?}://{}",
                    broker.config.storage.backend.kind(),
                    "strata"
                )))
                .with_total_bytes(-1)
                .with_usable_bytes(-1)
                .with_topics(topics),
        ]))
}
