//! ListOffsets, DeleteRecords and OffsetForLeaderEpoch: positions in a partition.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ResponseKind,
};
use kafka_protocol::records::RecordBatchDecoder;
use strata_core::store::StreamId;

use super::{store_error_code, topic_name};
use crate::broker::Broker;
use crate::topics::partition::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

fn find(broker: &Broker, topic: &str, index: i32) -> Option<Arc<Partition>> {
    broker
        .topics
        .get(topic)
        .and_then(|t| t.partition(index).cloned())
}

/// `(offset, timestamp)` of the first record at or after `target`, or `None`.
async fn offset_for_time(
    broker: &Broker,
    stream: StreamId,
    target: i64,
) -> Result<Option<(i64, i64)>, ResponseError> {
    let batch = broker
        .store
        .first_batch_at_or_after(stream, target)
        .await
        .map_err(|e| store_error_code(&e))?;
    let Some(batch) = batch else {
        return Ok(None);
    };
    if batch.has_log_append_time() {
        // Every record of the batch carries the append time.
        return Ok(Some((batch.base_offset() as i64, batch.max_timestamp())));
    }
    let mut bytes = batch.bytes().clone();
    let set = RecordBatchDecoder::decode(&mut bytes).map_err(|err| {
        tracing::warn!(stream = stream.0, %err, "cannot decode a stored batch for a timestamp lookup");
        ResponseError::CorruptMessage
    })?;
    Ok(set
        .records
        .iter()
        .find(|r| r.timestamp >= target)
        .map(|r| (r.offset, r.timestamp))
        .or(Some((batch.base_offset() as i64, batch.max_timestamp()))))
}

pub async fn list_offsets(broker: &Arc<Broker>, req: ListOffsetsRequest) -> ResponseKind {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let response = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let outcome = match find(broker, &name, p.partition_index) {
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(partition) => match broker.store.offsets(partition.stream) {
                    Err(err) => Err(store_error_code(&err)),
                    Ok((start, end)) => match p.timestamp {
                        LATEST => Ok(Some((end as i64, -1))),
                        EARLIEST => Ok(Some((start as i64, -1))),
                        target if target >= 0 => {
                            offset_for_time(broker, partition.stream, target).await
                        }
                        _ => Err(ResponseError::UnsupportedVersion),
                    },
                },
            };
            partitions.push(match outcome {
                Ok(Some((offset, timestamp))) => {
                    response.with_offset(offset).with_timestamp(timestamp)
                }
                Ok(None) => response,
                Err(error) => response.with_error_code(error.code()),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic_name(name))
                .with_partitions(partitions),
        );
    }
    ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(topics))
}

pub async fn delete_records(broker: &Arc<Broker>, req: DeleteRecordsRequest) -> ResponseKind {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            let outcome = match find(broker, &name, p.partition_index) {
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(partition) => match broker.store.offsets(partition.stream) {
                    Err(err) => Err(store_error_code(&err)),
                    Ok((start, end)) => {
                        let target = if p.offset == -1 { end as i64 } else { p.offset };
                        if target < 0 || target > end as i64 {
                            Err(ResponseError::OffsetOutOfRange)
                        } else if (target as u64) <= start {
                            Ok(start)
                        } else {
                            match broker.store.trim(partition.stream, target as u64).await {
                                Ok(()) => {
                                    tracing::info!(topic = %name, partition = p.partition_index, low_watermark = target, "records deleted");
                                    Ok(target as u64)
                                }
                                Err(err) => Err(store_error_code(&err)),
                            }
                        }
                    }
                },
            };
            partitions.push(match outcome {
                Ok(low) => result.with_low_watermark(low as i64),
                Err(error) => result.with_error_code(error.code()),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic_name(name))
                .with_partitions(partitions),
        );
    }
    ResponseKind::DeleteRecords(DeleteRecordsResponse::default().with_topics(topics))
}

/// Leadership never moves on a single broker, so there is one leader epoch (0)
/// whose end is the log end.
pub fn for_leader_epoch(broker: &Arc<Broker>, req: OffsetForLeaderEpochRequest) -> ResponseKind {
    let topics =
        req.topics
            .into_iter()
            .map(|topic| {
                let name = topic.topic.0.to_string();
                let partitions = topic
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let result = EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                        match find(broker, &name, p.partition)
                            .map(|part| broker.store.offsets(part.stream))
                        {
                            None => result
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                            Some(Err(err)) => result.with_error_code(store_error_code(&err).code()),
                            Some(Ok(_)) if p.current_leader_epoch > 0 => {
                                result.with_error_code(ResponseError::UnknownLeaderEpoch.code())
                            }
                            Some(Ok((_, end))) if p.leader_epoch <= 0 => {
                                result.with_leader_epoch(0).with_end_offset(end as i64)
                            }
                            Some(Ok(_)) => result,
                        }
                    })
                    .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(topic_name(name))
                    .with_partitions(partitions)
            })
            .collect();
    ResponseKind::OffsetForLeaderEpoch(OffsetForLeaderEpochResponse::default().with_topics(topics))
}
