//! InitProducerId and DescribeProducers: idempotent producers.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, ResponseKind,
};

use super::str_bytes;
use crate::broker::Broker;

pub async fn init_producer_id(broker: &Arc<Broker>, req: InitProducerIdRequest) -> ResponseKind {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        tracing::info!(
            "refused InitProducerId with a transactional id: transactions are not supported yet"
        );
        return ResponseKind::InitProducerId(
            response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()),
        );
    }
    // A new id each time: an idempotent producer that resets its sequences (KIP-360
    // passes its old id and epoch) starts clean under a fresh id.
    match broker.producer_ids.next(broker.meta.as_ref()).await {
        Ok(id) => ResponseKind::InitProducerId(
            response
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
        ),
        Err(err) => {
            tracing::warn!(%err, "cannot allocate a producer id");
            ResponseKind::InitProducerId(
                response.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
            )
        }
    }
}

pub async fn describe(broker: &Arc<Broker>, req: DescribeProducersRequest) -> ResponseKind {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let found = broker.topics.get(topic.name.0.as_str());
        let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
        for index in topic.partition_indexes {
            let response = PartitionResponse::default().with_partition_index(index);
            let Some(partition) = found.as_ref().and_then(|t| t.partition(index)) else {
                partitions.push(
                    response
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(str_bytes("unknown topic or partition"))),
                );
                continue;
            };
            let table = match partition.producers(&broker.store).await {
                Ok(table) => table,
                Err(err) => {
                    partitions.push(
                        response
                            .with_error_code(ResponseError::KafkaStorageError.code())
                            .with_error_message(Some(str_bytes(err.to_string()))),
                    );
                    continue;
                }
            };
            let active = table
                .entries()
                .map(|(id, entry)| {
                    ProducerState::default()
                        .with_producer_id(ProducerId(id))
                        .with_producer_epoch(i32::from(entry.epoch))
                        .with_last_sequence(entry.last_sequence())
                        .with_last_timestamp(entry.last_timestamp)
                        .with_coordinator_epoch(-1)
                        .with_current_txn_start_offset(-1)
                })
                .collect();
            partitions.push(response.with_active_producers(active));
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ResponseKind::DescribeProducers(DescribeProducersResponse::default().with_topics(topics))
}
