//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and for
//! this broker.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ResponseKind,
};

use super::admin::topic_error;
use super::str_bytes;
use crate::broker::Broker;
use crate::dynamic_config;
use crate::topics::TopicError;
use crate::topics::config::TopicOverrides;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Config sources of DescribeConfigs.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

type Failure = (ResponseError, String);

/// A broker resource must name this broker (or be empty, meaning this one).
fn this_broker(broker: &Broker, name: &str) -> Result<(), Failure> {
    if name.is_empty() || name == broker.node.node_id.to_string() {
        Ok(())
    } else {
        Err((
            ResponseError::InvalidRequest,
            format!(
                "broker {name:?} is not this broker ({})",
                broker.node.node_id
            ),
        ))
    }
}

fn no_configs(resource_type: i8) -> Failure {
    (
        ResponseError::InvalidRequest,
        format!("resource type {resource_type} has no configs here (topics: 2, brokers: 4)"),
    )
}

fn entry(name: &str, value: String, source: i8, read_only: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_config_source(source)
        .with_read_only(read_only)
}

fn describe_one(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
    match resource_type {
        TOPIC => {
            let topic = broker.topics.get(name).ok_or((
                ResponseError::UnknownTopicOrPartition,
                format!("topic {name:?} does not exist"),
            ))?;
            Ok(topic
                .overrides
                .describe(&broker.topics.defaults())
                .into_iter()
                .map(|(key, value, is_default)| {
                    entry(
                        &key,
                        value,
                        if is_default {
                            SOURCE_DEFAULT
                        } else {
                            SOURCE_TOPIC
                        },
                        false,
                    )
                })
                .collect())
        }
        BROKER => {
            this_broker(broker, name)?;
            Ok(dynamic_config::describe(&broker.topics.defaults())
                .into_iter()
                .map(|(key, value, read_only)| {
                    let source = if read_only {
                        SOURCE_STATIC_BROKER
                    } else {
                        SOURCE_DYNAMIC_BROKER
                    };
                    entry(key, value, source, read_only)
                })
                .collect())
        }
        other => Err(no_configs(other)),
    }
}

pub fn describe(broker: &Arc<Broker>, req: DescribeConfigsRequest) -> ResponseKind {
    let results = req
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match describe_one(broker, resource.resource_type, &name) {
                Ok(mut configs) => {
                    if let Some(keys) = resource.configuration_keys {
                        configs.retain(|c| keys.iter().any(|k| k == &c.name));
                    }
                    result.with_configs(configs)
                }
                Err((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    ResponseKind::DescribeConfigs(DescribeConfigsResponse::default().with_results(results))
}

/// Sets a resource's configs to `entries` (the whole set, as AlterConfigs means).
async fn set(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    entries: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Failure> {
    match resource_type {
        TOPIC => {
            let overrides =
                TopicOverrides::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .map_err(|err| (ResponseError::InvalidConfig, err.to_string()))?;
            broker
                .topics
                .set_overrides(name, overrides, validate_only)
                .await
                .map_err(|err: TopicError| (topic_error(&err), err.to_string()))
        }
        BROKER => {
            this_broker(broker, name)?;
            let mut section = broker.config.broker.clone();
            dynamic_config::apply(&mut section, &entries)
                .map_err(|err| (ResponseError::InvalidConfig, err.to_string()))?;
            if validate_only {
                return Ok(());
            }
            dynamic_config::store(broker.meta.as_ref(), &entries)
                .await
                .map_err(|err| (ResponseError::UnknownServerError, err.to_string()))?;
            broker.topics.set_defaults(section);
            Ok(())
        }
        other => Err(no_configs(other)),
    }
}

/// The current explicit entries of a resource, the base of an incremental change.
async fn current(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<BTreeMap<String, String>, Failure> {
    match resource_type {
        TOPIC => broker
            .topics
            .get(name)
            .map(|t| t.overrides.0.clone())
            .ok_or((
                ResponseError::UnknownTopicOrPartition,
                format!("topic {name:?} does not exist"),
            )),
        BROKER => dynamic_config::load(broker.meta.as_ref())
            .await
            .map_err(|err| (ResponseError::UnknownServerError, err.to_string())),
        _ => Ok(BTreeMap::new()),
    }
}

pub async fn alter(broker: &Arc<Broker>, req: AlterConfigsRequest) -> ResponseKind {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        let name = resource.resource_name.to_string();
        let entries = resource
            .configs
            .into_iter()
            .filter_map(|c| c.value.map(|v| (c.name.to_string(), v.to_string())))
            .collect();
        let outcome = set(
            broker,
            resource.resource_type,
            &name,
            entries,
            req.validate_only,
        )
        .await;
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match outcome {
            Ok(()) => response,
            Err((error, message)) => response
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(message))),
        });
    }
    ResponseKind::AlterConfigs(AlterConfigsResponse::default().with_responses(responses))
}

pub async fn incremental_alter(
    broker: &Arc<Broker>,
    req: IncrementalAlterConfigsRequest,
) -> ResponseKind {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let mut responses = Vec::with_capacity(req.resources.len());
    for resource in req.resources {
        let name = resource.resource_name.to_string();
        let outcome = async {
            let mut entries = current(broker, resource.resource_type, &name).await?;
            for config in resource.configs {
                let key = config.name.to_string();
                let value = config.value.map(|v| v.to_string()).unwrap_or_default();
                match config.config_operation {
                    0 => {
                        entries.insert(key, value);
                    }
                    1 => {
                        entries.remove(&key);
                    }
                    2 | 3 => {
                        let mut items: Vec<String> = entries
                            .get(&key)
                            .map(|v| v.split(',').map(str::to_string).collect())
                            .unwrap_or_default();
                        if config.config_operation == 2 {
                            if !items.contains(&value) {
                                items.push(value);
                            }
                        } else {
                            items.retain(|i| *i != value);
                        }
                        entries.insert(key, items.join(","));
                    }
                    other => {
                        return Err((
                            ResponseError::InvalidRequest,
                            format!("config operation {other} is unknown (0 set, 1 delete, 2 append, 3 subtract)"),
                        ));
                    }
                }
            }
            set(broker, resource.resource_type, &name, entries, req.validate_only).await
        }
        .await;
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        responses.push(match outcome {
            Ok(()) => response,
            Err((error, message)) => response
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(message))),
        });
    }
    ResponseKind::IncrementalAlterConfigs(
        IncrementalAlterConfigsResponse::default().with_responses(responses),
    )
}
