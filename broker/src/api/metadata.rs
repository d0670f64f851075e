//! Metadata and DescribeCluster: this broker leads every partition.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterResponse, MetadataRequest, MetadataResponse, ResponseKind,
};

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::topics::config::TopicOverrides;
use crate::topics::{Topic, TopicError};

fn describe_topic(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.node.node_id);
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(topic.name.clone())))
        .with_topic_id(topic.id)
        .with_topic_authorized_operations(i32::MIN)
        .with_partitions(
            topic
                .partitions
                .iter()
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p.index)
                        .with_leader_id(node)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}

fn missing_topic(
    name: Option<String>,
    id: uuid::Uuid,
    error: ResponseError,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_topic_authorized_operations(i32::MIN)
}

pub async fn metadata(broker: &Arc<Broker>, req: MetadataRequest, version: i16) -> ResponseKind {
    let wanted: Option<Vec<(Option<String>, uuid::Uuid)>> = match req.topics {
        // v0 has no null: an empty list means every topic.
        Some(list) if version == 0 && list.is_empty() => None,
        Some(list) => Some(
            list.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
        None => None,
    };
    let auto_create =
        broker.config.broker.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let topics = match wanted {
        None => broker
            .topics
            .list()
            .iter()
            .map(|t| describe_topic(broker, t))
            .collect(),
        Some(wanted) => {
            let mut out = Vec::with_capacity(wanted.len());
            for (name, id) in wanted {
                let found = match &name {
                    Some(name) => broker.topics.get(name),
                    None => broker.topics.by_id(id),
                };
                let entry = match (found, name) {
                    (Some(topic), _) => describe_topic(broker, &topic),
                    (None, Some(name)) if auto_create => {
                        match broker
                            .topics
                            .create(&name, -1, TopicOverrides::default(), false)
                            .await
                        {
                            Ok(Some(topic)) => describe_topic(broker, &topic),
                            Err(TopicError::AlreadyExists(_)) => match broker.topics.get(&name) {
                                Some(topic) => describe_topic(broker, &topic),
                                None => {
                                    missing_topic(Some(name), id, ResponseError::LeaderNotAvailable)
                                }
                            },
                            Err(TopicError::InvalidName(..)) => {
                                missing_topic(Some(name), id, ResponseError::InvalidTopicException)
                            }
                            Ok(None) | Err(_) => {
                                missing_topic(Some(name), id, ResponseError::LeaderNotAvailable)
                            }
                        }
                    }
                    (None, name) => missing_topic(name, id, ResponseError::UnknownTopicOrPartition),
                };
                out.push(entry);
            }
            out
        }
    };
    ResponseKind::Metadata(
        MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(broker.node.node_id))
                    .with_host(str_bytes(broker.node.host.clone()))
                    .with_port(broker.node.port),
            ])
            .with_cluster_id(Some(str_bytes(broker.node.cluster_id.clone())))
            .with_controller_id(BrokerId(broker.node.node_id))
            .with_cluster_authorized_operations(i32::MIN)
            .with_topics(topics),
    )
}

pub fn describe_cluster(broker: &Arc<Broker>) -> ResponseKind {
    ResponseKind::DescribeCluster(
        DescribeClusterResponse::default()
            .with_endpoint_type(1)
            .with_cluster_id(str_bytes(broker.node.cluster_id.clone()))
            .with_controller_id(BrokerId(broker.node.node_id))
            .with_cluster_authorized_operations(i32::MIN)
            .with_brokers(vec![
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(broker.node.node_id))
                    .with_host(str_bytes(broker.node.host.clone()))
                    .with_port(broker.node.port),
            ]),
    )
}
