//! Produce: validate each partition's record batch, queue it in request order, and
//! answer once every queued batch is durable (acks=1 and acks=all alike: both wait
//! for the WAL).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use strata_core::batch::{BatchError, RecordBatch};

use super::{Reply, store_error_code, str_bytes, topic_name};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::topics::partition::{AppendError, Partition, PendingAppend};
use crate::topics::producers::SequenceError;

const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

/// A partition's outcome before durability: refused now, or queued.
enum Step {
    Refused(ResponseError, String),
    Queued {
        partition: Arc<Partition>,
        pending: PendingAppend,
        append_time: i64,
        bytes: u64,
        records: u64,
    },
}

fn refuse(error: ResponseError, message: impl Into<String>) -> Step {
    Step::Refused(error, message.into())
}

/// Checks the bytes of one partition: exactly one valid v2 batch within the limit.
fn validate(records: Option<Bytes>, max_message_bytes: i32) -> Result<RecordBatch, Step> {
    let Some(records) = records else {
        return Err(refuse(ResponseError::InvalidRecord, "no records"));
    };
    if records.len() > usize::try_from(max_message_bytes).unwrap_or(0) {
        return Err(refuse(
            ResponseError::MessageTooLarge,
            format!(
                "record batch of {} bytes exceeds max.message.bytes {max_message_bytes}",
                records.len()
            ),
        ));
    }
    let batch = RecordBatch::parse(records).map_err(|err| match err {
        BatchError::LengthMismatch { declared, actual } if actual > declared => refuse(
            ResponseError::InvalidRecord,
            "a produce request must hold exactly one record batch per partition",
        ),
        BatchError::UnsupportedMagic(magic) => refuse(
            ResponseError::UnsupportedForMessageFormat,
            format!("record batch magic {magic}: only v2 is accepted"),
        ),
        other => refuse(ResponseError::CorruptMessage, other.to_string()),
    })?;
    if batch.attributes() & (TRANSACTIONAL | CONTROL) != 0 {
        return Err(refuse(
            ResponseError::InvalidRecord,
            "transactional and control batches are not supported yet",
        ));
    }
    if batch.record_count() == 0 || u64::from(batch.record_count()) != batch.offset_count() {
        return Err(refuse(
            ResponseError::InvalidRecord,
            "record count does not match the batch's offset span",
        ));
    }
    Ok(batch)
}

pub async fn handle(broker: &Arc<Broker>, req: ProduceRequest) -> Reply {
    let acks = req.acks;
    let mut steps: Vec<(String, Vec<(i32, Step)>)> = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        let name = topic_data.name.0.to_string();
        let topic = broker.topics.get(&name);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let step = if !matches!(acks, -1..=1) {
                refuse(ResponseError::InvalidRequiredAcks, format!("acks={acks}"))
            } else if req.transactional_id.is_some() {
                refuse(
                    ResponseError::InvalidRecord,
                    "transactional produce is not supported yet",
                )
            } else {
                match topic
                    .as_ref()
                    .and_then(|t| t.partition(data.index).map(|p| (t, p)))
                {
                    None => refuse(ResponseError::UnknownTopicOrPartition, ""),
                    Some((topic, partition)) => {
                        match validate(data.records, topic.config.max_message_bytes) {
                            Err(step) => step,
                            Ok(batch) => queue(broker, partition, batch, topic).await,
                        }
                    }
                }
            };
            if let Step::Refused(error, message) = &step {
                tracing::debug!(topic = %name, partition = data.index, ?error, %message, "produce refused");
                metrics::counter!("strata_produce_refused_total", "error" => format!("{error:?}"))
                    .increment(1);
            }
            partitions.push((data.index, step));
        }
        steps.push((name, partitions));
    }
    let broker = broker.clone();
    let waiting = metrics::gauge!("strata_kafka_purgatory_requests", "kind" => "produce");
    waiting.increment(1.0);
    let respond = async move {
        let mut responses = Vec::with_capacity(steps.len());
        for (name, partitions) in steps {
            let mut out = Vec::with_capacity(partitions.len());
            for (index, step) in partitions {
                out.push(finish(&broker, &name, index, step).await);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(topic_name(name))
                    .with_partition_responses(out),
            );
        }
        broker.data_arrived.notify_waiters();
        waiting.decrement(1.0);
        ResponseKind::Produce(ProduceResponse::default().with_responses(responses))
    };
    if acks == 0 {
        tokio::spawn(respond);
        Reply::Nothing
    } else {
        Reply::Later(Box::pin(respond))
    }
}

async fn queue(
    broker: &Broker,
    partition: &Arc<Partition>,
    batch: RecordBatch,
    topic: &crate::topics::Topic,
) -> Step {
    let (bytes, records) = (batch.len() as u64, u64::from(batch.record_count()));
    match partition
        .append(&broker.store, batch, &topic.config, now_ms())
        .await
    {
        Ok((pending, append_time)) => Step::Queued {
            partition: partition.clone(),
            pending,
            append_time,
            bytes,
            records,
        },
        Err(err) => refused_by(err),
    }
}

fn refused_by(err: AppendError) -> Step {
    match err {
        AppendError::Sequence(err @ SequenceError::OutOfOrder { .. }) => {
            refuse(ResponseError::OutOfOrderSequenceNumber, err.to_string())
        }
        AppendError::Sequence(err @ SequenceError::StaleEpoch { .. }) => {
            refuse(ResponseError::InvalidProducerEpoch, err.to_string())
        }
        AppendError::Store(err) => {
            tracing::warn!(%err, "append failed");
            refuse(store_error_code(&err), err.to_string())
        }
    }
}

async fn finish(broker: &Broker, topic: &str, index: i32, step: Step) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default()
        .with_index(index)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_base_offset(-1);
    let (partition, pending, append_time, bytes, records) = match step {
        Step::Refused(error, message) => {
            return response
                .with_error_code(error.code())
                .with_error_message((!message.is_empty()).then(|| str_bytes(message)));
        }
        Step::Queued {
            partition,
            pending,
            append_time,
            bytes,
            records,
        } => (partition, pending, append_time, bytes, records),
    };
    match partition.complete(pending).await {
        Ok(base_offset) => {
            let labels = [("topic", topic.to_string())];
            metrics::counter!("strata_kafka_bytes_in_total", &labels).increment(bytes);
            metrics::counter!("strata_kafka_records_in_total", &labels).increment(records);
            let start = broker
                .store
                .offsets(partition.stream)
                .map_or(-1, |(start, _)| start as i64);
            response
                .with_base_offset(base_offset as i64)
                .with_log_append_time_ms(append_time)
                .with_log_start_offset(start)
        }
        Err(err) => match refused_by(err) {
            Step::Refused(error, message) => response
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(message))),
            Step::Queued { .. } => response,
        },
    }
}
