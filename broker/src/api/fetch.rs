//! Fetch: whole batches from each partition's position, long-polling until
//! `min_bytes` are there or `max_wait_ms` passed, with incremental fetch sessions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ResponseKind};

use super::{Reply, store_error_code, topic_name};
use crate::broker::Broker;
use crate::fetch_sessions::{Key, SessionPartition, SessionRequest};

/// One partition to read.
#[derive(Debug, Clone)]
struct Wanted {
    key: Key,
    fetch_offset: i64,
    max_bytes: i32,
    /// Incremental sessions answer only partitions with news.
    sent: Option<(i64, i64)>,
}

/// What was read from one partition.
struct Read {
    key: Key,
    error: Option<ResponseError>,
    high_watermark: i64,
    log_start: i64,
    records: Bytes,
    /// The session had nothing new for this partition: leave it out.
    quiet: bool,
}

fn error_response(error: ResponseError, session_id: i32) -> ResponseKind {
    ResponseKind::Fetch(
        FetchResponse::default()
            .with_error_code(error.code())
            .with_session_id(session_id),
    )
}

pub fn handle(broker: &Arc<Broker>, req: FetchRequest, version: i16) -> Reply {
    let mut requested: Vec<(Key, i64, i32)> = Vec::new();
    for topic in &req.topics {
        for p in &topic.partitions {
            requested.push((
                (topic.topic.0.to_string(), p.partition),
                p.fetch_offset,
                p.partition_max_bytes,
            ));
        }
    }
    let as_wanted = |list: Vec<(Key, i64, i32)>| -> Vec<Wanted> {
        list.into_iter()
            .map(|(key, fetch_offset, max_bytes)| Wanted {
                key,
                fetch_offset,
                max_bytes,
                sent: None,
            })
            .collect()
    };
    let sessions = &broker.fetch_sessions;
    let (session_id, wanted) = match SessionRequest::parse(req.session_id, req.session_epoch) {
        _ if version < 7 => (0, as_wanted(requested)),
        SessionRequest::Sessionless => (0, as_wanted(requested)),
        SessionRequest::Close { id } => {
            sessions.close(id);
            (0, as_wanted(requested))
        }
        SessionRequest::Open => {
            let partitions: BTreeMap<Key, SessionPartition> = requested
                .iter()
                .map(|(key, fetch_offset, max_bytes)| {
                    (
                        key.clone(),
                        SessionPartition {
                            fetch_offset: *fetch_offset,
                            max_bytes: *max_bytes,
                            sent_high_watermark: -1,
                            sent_log_start: -1,
                        },
                    )
                })
                .collect();
            (sessions.open(partitions), as_wanted(requested))
        }
        SessionRequest::Incremental { id, epoch } => {
            let forget: Vec<Key> = req
                .forgotten_topics_data
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.topic.0.to_string(), *p))
                        .collect::<Vec<_>>()
                })
                .collect();
            match sessions.update(id, epoch, requested, forget) {
                Err(error) => return Reply::Now(Box::new(error_response(error, 0))),
                Ok(partitions) => (
                    id,
                    partitions
                        .into_iter()
                        .map(|(key, p)| Wanted {
                            key,
                            fetch_offset: p.fetch_offset,
                            max_bytes: p.max_bytes,
                            sent: Some((p.sent_high_watermark, p.sent_log_start)),
                        })
                        .collect(),
                ),
            }
        }
    };
    let broker = broker.clone();
    let max_wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(req.max_bytes)
        .unwrap_or(usize::MAX)
        .min(broker.config.broker.fetch_max_bytes);
    Reply::Later(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + max_wait;
        let reads = loop {
            let arrived = broker.data_arrived.notified();
            let reads = read_all(&broker, &wanted, max_bytes).await;
            let bytes: usize = reads.iter().map(|r| r.records.len()).sum();
            let errors = reads.iter().any(|r| r.error.is_some());
            if bytes >= min_bytes.max(1) || errors || tokio::time::Instant::now() >= deadline {
                break reads;
            }
            let waiting = metrics::gauge!("strata_kafka_purgatory_requests", "kind" => "fetch");
            waiting.increment(1.0);
            let timed_out = tokio::time::timeout_at(deadline, arrived).await.is_err();
            waiting.decrement(1.0);
            // `arrived` was registered before the read, so a timeout means nothing was
            // produced since: what was read is the answer.
            if timed_out {
                break reads;
            }
        };
        respond(&broker, session_id, reads)
    }))
}

async fn read_all(broker: &Broker, wanted: &[Wanted], max_bytes: usize) -> Vec<Read> {
    let mut budget = max_bytes;
    let mut reads = Vec::with_capacity(wanted.len());
    for want in wanted {
        let read = read_one(broker, want, budget).await;
        budget = budget.saturating_sub(read.records.len());
        reads.push(read);
    }
    reads
}

async fn read_one(broker: &Broker, want: &Wanted, budget: usize) -> Read {
    let mut read = Read {
        key: want.key.clone(),
        error: None,
        high_watermark: -1,
        log_start: -1,
        records: Bytes::new(),
        quiet: false,
    };
    let Some(partition) = broker
        .topics
        .get(&want.key.0)
        .and_then(|t| t.partition(want.key.1).cloned())
    else {
        read.error = Some(ResponseError::UnknownTopicOrPartition);
        return read;
    };
    let (start, end) = match broker.store.offsets(partition.stream) {
        Ok(offsets) => offsets,
        Err(err) => {
            read.error = Some(store_error_code(&err));
            return read;
        }
    };
    read.high_watermark = end as i64;
    read.log_start = start as i64;
    let offset = want.fetch_offset;
    if offset < start as i64 || offset > end as i64 {
        read.error = Some(ResponseError::OffsetOutOfRange);
        return read;
    }
    let limit = usize::try_from(want.max_bytes).unwrap_or(0).min(budget);
    if offset < end as i64 && limit > 0 {
        match broker
            .store
            .fetch(partition.stream, offset as u64, limit)
            .await
        {
            Ok(batches) => {
                let mut out = BytesMut::new();
                for batch in batches {
                    // The store returns at least one batch; beyond that, stay in budget.
                    if !out.is_empty() && out.len() + batch.len() > limit {
                        break;
                    }
                    out.extend_from_slice(batch.bytes());
                }
                read.records = out.freeze();
            }
            Err(err) => {
                tracing::warn!(topic = %want.key.0, partition = want.key.1, %err, "fetch failed");
                read.error = Some(store_error_code(&err));
            }
        }
    }
    if let Some((high, log_start)) = want.sent {
        read.quiet = read.error.is_none()
            && read.records.is_empty()
            && high == read.high_watermark
            && log_start == read.log_start;
    }
    read
}

fn respond(broker: &Broker, session_id: i32, reads: Vec<Read>) -> ResponseKind {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for read in reads {
        if read.quiet {
            continue;
        }
        if session_id != 0 {
            broker
                .fetch_sessions
                .sent(session_id, &read.key, read.high_watermark, read.log_start);
        }
        if !read.records.is_empty() {
            metrics::counter!("strata_kafka_bytes_out_total", "topic" => read.key.0.clone())
                .increment(read.records.len() as u64);
        }
        let data = PartitionData::default()
            .with_partition_index(read.key.1)
            .with_error_code(read.error.map_or(0, |e| e.code()))
            .with_high_watermark(read.high_watermark)
            .with_last_stable_offset(read.high_watermark)
            .with_log_start_offset(read.log_start)
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(read.records));
        match topics.last_mut() {
            Some(topic) if topic.topic.0.as_str() == read.key.0 => topic.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(topic_name(read.key.0.clone()))
                    .with_partitions(vec![data]),
            ),
        }
    }
    ResponseKind::Fetch(
        FetchResponse::default()
            .with_session_id(session_id)
            .with_responses(topics),
    )
}
