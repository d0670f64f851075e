//! The group coordinator: classic-protocol consumer groups (join, sync, heartbeat,
//! leave) and their committed offsets. Every group lives on this broker.

mod group;
pub mod offsets;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use self::group::{Group, Member};
pub use self::group::{GroupState, JoinOutcome, SyncOutcome};
use self::offsets::OffsetStore;
use crate::config::BrokerSection;

/// A JoinGroup request, in plain terms.
#[derive(Debug)]
pub struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member gets its id first (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    pub offsets: OffsetStore,
    initial_delay: Duration,
    session_bounds: (Duration, Duration),
}

/// A member as `request` describes it, seated now.
fn new_member(
    id: String,
    request: JoinRequest,
    now: Instant,
    pending_join: Option<oneshot::Sender<JoinOutcome>>,
) -> Member {
    Member {
        id,
        instance_id: request.instance_id,
        client_id: request.client_id,
        client_host: request.client_host,
        session_timeout: request.session_timeout,
        rebalance_timeout: request.rebalance_timeout,
        protocols: request.protocols,
        assignment: Bytes::new(),
        last_heartbeat: now,
        pending_join,
        pending_sync: None,
    }
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

impl GroupCoordinator {
    pub fn new(offsets: OffsetStore, config: &BrokerSection) -> Arc<GroupCoordinator> {
        Arc::new(GroupCoordinator {
            groups: Mutex::new(HashMap::new()),
            offsets,
            initial_delay: config.group_initial_rebalance_delay,
            session_bounds: (
                config.group_min_session_timeout,
                config.group_max_session_timeout,
            ),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drives timeouts: lapsed sessions leave, overdue rebalances complete. Runs until
    /// the coordinator is dropped.
    pub async fn run_timers(coordinator: std::sync::Weak<GroupCoordinator>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let Some(coordinator) = coordinator.upgrade() else {
                return;
            };
            let now = Instant::now();
            let initial_delay = coordinator.initial_delay;
            let mut groups = coordinator.lock();
            for group in groups.values_mut() {
                for member in group.expired_members(now) {
                    tracing::info!(group = %group.id, member = %member, "member session expired");
                    group.remove_member(&member, now, initial_delay);
                }
                group.maybe_complete_join(now);
            }
        }
    }

    /// Joins (or rejoins) a member; the receiver resolves when the rebalance does.
    pub fn join(&self, request: JoinRequest) -> oneshot::Receiver<JoinOutcome> {
        let (reply, outcome) = oneshot::channel();
        let now = Instant::now();
        let (min, max) = self.session_bounds;
        if request.session_timeout < min || request.session_timeout > max {
            let _ = reply.send(JoinOutcome::failed(
                ResponseError::InvalidSessionTimeout,
                request.member_id,
            ));
            return outcome;
        }
        let mut groups = self.lock();
        let group = groups
            .entry(request.group.clone())
            .or_insert_with(|| Group::new(request.group.clone()));
        if !group.accepts(&request.protocol_type, &request.protocols) {
            let _ = reply.send(JoinOutcome::failed(
                ResponseError::InconsistentGroupProtocol,
                request.member_id,
            ));
            return outcome;
        }
        let mut member_id = request.member_id.clone();
        if member_id.is_empty() {
            member_id = new_member_id(&request.client_id);
            if let Some(instance) = &request.instance_id
                && let Some(seat) = group.seat_of_instance(instance)
            {
                // A static member restarting: it takes over its seat and assignment.
                let was_leader = group
                    .members
                    .get(&seat)
                    .is_some_and(|m| group.leader.as_deref() == Some(m.id.as_str()));
                let same_protocols = group
                    .members
                    .get(&seat)
                    .is_some_and(|m| m.protocols == request.protocols);
                if let Some(member) = group.members.get_mut(&seat) {
                    if let Some(old) = member.pending_join.take() {
                        let _ = old.send(JoinOutcome::failed(
                            ResponseError::FencedInstanceId,
                            member.id.clone(),
                        ));
                    }
                    member.id = member_id.clone();
                    member.last_heartbeat = now;
                    member.session_timeout = request.session_timeout;
                    member.rebalance_timeout = request.rebalance_timeout;
                }
                if group.state == GroupState::Stable && same_protocols && !was_leader {
                    let _ = reply.send(JoinOutcome {
                        error: None,
                        generation: group.generation,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol.clone(),
                        leader: group.leader.clone().unwrap_or_default(),
                        member_id,
                        members: Vec::new(),
                    });
                    return outcome;
                }
                if was_leader {
                    group.leader = Some(member_id.clone());
                }
            } else if request.require_known_member_id && request.instance_id.is_none() {
                if group.protocol_type.is_none() {
                    group.protocol_type = Some(request.protocol_type.clone());
                }
                group.add_member(new_member(member_id.clone(), request, now, None));
                let _ = reply.send(JoinOutcome::failed(
                    ResponseError::MemberIdRequired,
                    member_id,
                ));
                return outcome;
            }
        } else {
            let known = group.member(&member_id);
            match (known, &request.instance_id) {
                (None, Some(instance)) if group.seat_of_instance(instance).is_some() => {
                    let _ = reply.send(JoinOutcome::failed(
                        ResponseError::FencedInstanceId,
                        member_id,
                    ));
                    return outcome;
                }
                (None, _) => {
                    let _ = reply.send(JoinOutcome::failed(
                        ResponseError::UnknownMemberId,
                        member_id,
                    ));
                    return outcome;
                }
                _ => {}
            }
        }
        if group.protocol_type.is_none() || group.members.is_empty() {
            group.protocol_type = Some(request.protocol_type.clone());
        }
        match group.member_mut(&member_id) {
            Some(member) => {
                if let Some(old) = member.pending_join.take() {
                    let _ = old.send(JoinOutcome::failed(
                        ResponseError::RebalanceInProgress,
                        member_id.clone(),
                    ));
                }
                member.protocols = request.protocols;
                member.session_timeout = request.session_timeout;
                member.rebalance_timeout = request.rebalance_timeout;
                member.last_heartbeat = now;
                member.pending_join = Some(reply);
            }
            None => group.add_member(new_member(member_id, request, now, Some(reply))),
        }
        group.prepare_rebalance(now, self.initial_delay);
        group.maybe_complete_join(now);
        outcome
    }

    fn check_member(
        group: &Group,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let Some(member) = group.member(member_id) else {
            if let Some(instance) = instance_id
                && group.seat_of_instance(instance).is_some()
            {
                return Err(ResponseError::FencedInstanceId);
            }
            return Err(ResponseError::UnknownMemberId);
        };
        if instance_id.is_some() && member.instance_id.as_deref() != instance_id {
            return Err(ResponseError::FencedInstanceId);
        }
        if generation != group.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// SyncGroup: the leader hands out assignments; others wait for theirs.
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: BTreeMap<String, Bytes>,
    ) -> oneshot::Receiver<SyncOutcome> {
        let (reply, outcome) = oneshot::channel();
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            let _ = reply.send(Err(ResponseError::UnknownMemberId));
            return outcome;
        };
        if let Err(err) = Self::check_member(group, member_id, instance_id, generation) {
            let _ = reply.send(Err(err));
            return outcome;
        }
        match group.state {
            GroupState::Empty => {
                let _ = reply.send(Err(ResponseError::UnknownMemberId));
            }
            GroupState::PreparingRebalance => {
                let _ = reply.send(Err(ResponseError::RebalanceInProgress));
            }
            GroupState::Stable => {
                let assignment = group
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                let _ = reply.send(Ok(assignment));
            }
            GroupState::CompletingRebalance => {
                if let Some(member) = group.member_mut(member_id) {
                    member.pending_sync = Some(reply);
                    member.last_heartbeat = Instant::now();
                }
                if group.leader.as_deref() == Some(member_id) {
                    group.complete_sync(assignments);
                }
            }
        }
        outcome
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let mut groups = self.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        Self::check_member(group, member_id, instance_id, generation).map_err(|err| {
            // During a rebalance an old generation learns to rejoin.
            if err == ResponseError::IllegalGeneration
                && group.state == GroupState::PreparingRebalance
            {
                ResponseError::RebalanceInProgress
            } else {
                err
            }
        })?;
        if let Some(member) = group.member_mut(member_id) {
            member.last_heartbeat = Instant::now();
        }
        match group.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::Empty => Err(ResponseError::UnknownMemberId),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    /// LeaveGroup for one member, named by id or (static members) instance id.
    pub fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let mut groups = self.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        let id = match instance_id {
            Some(instance) => {
                let seat = group
                    .seat_of_instance(instance)
                    .ok_or(ResponseError::UnknownMemberId)?;
                let id = group
                    .members
                    .get(&seat)
                    .map(|m| m.id.clone())
                    .unwrap_or_default();
                if !member_id.is_empty() && member_id != id {
                    return Err(ResponseError::FencedInstanceId);
                }
                id
            }
            None => {
                group
                    .member(member_id)
                    .ok_or(ResponseError::UnknownMemberId)?;
                member_id.to_string()
            }
        };
        tracing::debug!(group = group_id, member = %id, "member left");
        group.remove_member(&id, Instant::now(), self.initial_delay);
        Ok(())
    }

    /// Checks that a commit comes from a current member (generation >= 0) or is a
    /// standalone commit to a group without members (generation -1).
    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return if generation < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration)
            };
        };
        if generation < 0 {
            return if group.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        // As Kafka: members of the current generation may commit while a rebalance
        // gathers (they commit what they had before giving partitions up), not while
        // assignments are being handed out.
        if group.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Self::check_member(group, member_id, instance_id, generation)
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.lock();
        let group = groups.get(group_id);
        match group {
            Some(group) => {
                let protocol = group.protocol.clone().unwrap_or_default();
                Some(GroupDescription {
                    state: group.state.name(),
                    protocol_type: group.protocol_type.clone().unwrap_or_default(),
                    protocol: protocol.clone(),
                    members: group
                        .members
                        .values()
                        .map(|m| MemberDescription {
                            member_id: m.id.clone(),
                            instance_id: m.instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            metadata: m
                                .protocols
                                .iter()
                                .find(|(n, _)| *n == protocol)
                                .map(|(_, md)| md.clone())
                                .unwrap_or_default(),
                            assignment: m.assignment.clone(),
                        })
                        .collect(),
                })
            }
            None if !self.offsets.fetch_all(group_id).is_empty() => Some(GroupDescription {
                state: GroupState::Empty.name(),
                protocol_type: "consumer".to_string(),
                protocol: String::new(),
                members: Vec::new(),
            }),
            None => None,
        }
    }

    /// `(group, protocol type, state)` of every group, with members or offsets.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        let mut out: BTreeMap<String, (String, &'static str)> = self
            .offsets
            .groups()
            .into_iter()
            .map(|g| (g, ("consumer".to_string(), GroupState::Empty.name())))
            .collect();
        for group in self.lock().values() {
            if group.members.is_empty() && !out.contains_key(&group.id) {
                continue;
            }
            out.insert(
                group.id.clone(),
                (
                    group.protocol_type.clone().unwrap_or_default(),
                    group.state.name(),
                ),
            );
        }
        out.into_iter().map(|(g, (t, s))| (g, t, s)).collect()
    }

    /// Deletes a group without members, with its offsets.
    pub async fn delete(&self, group_id: &str) -> Result<(), ResponseError> {
        {
            let mut groups = self.lock();
            match groups.get(group_id) {
                Some(group) if !group.members.is_empty() => {
                    return Err(ResponseError::NonEmptyGroup);
                }
                Some(_) => {
                    groups.remove(group_id);
                }
                None if self.offsets.fetch_all(group_id).is_empty() => {
                    return Err(ResponseError::GroupIdNotFound);
                }
                None => {}
            }
        }
        self.offsets
            .delete(group_id, None)
            .await
            .map_err(|_| ResponseError::UnknownServerError)
    }

    /// Topics the group's members subscribe to (from their consumer-protocol
    /// metadata), or `None` when it has no members. A member whose metadata cannot be
    /// read counts as subscribed to everything (`Some` with `"*"`).
    pub fn subscribed_topics(&self, group_id: &str) -> Option<std::collections::BTreeSet<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        let groups = self.lock();
        let group = groups.get(group_id).filter(|g| !g.members.is_empty())?;
        let protocol = group.protocol.clone();
        let mut topics = std::collections::BTreeSet::new();
        for member in group.members.values() {
            let metadata = member
                .protocols
                .iter()
                .find(|(name, _)| Some(name) == protocol.as_ref())
                .or(member.protocols.first())
                .map(|(_, metadata)| metadata.clone())
                .unwrap_or_default();
            let mut buf = metadata;
            let decoded = (buf.len() >= 2)
                .then(|| {
                    let version = i16::from_be_bytes([buf[0], buf[1]]);
                    let _ = bytes::Buf::get_i16(&mut buf);
                    ConsumerProtocolSubscription::decode(&mut buf, version.min(3)).ok()
                })
                .flatten();
            match decoded {
                Some(subscription) => {
                    topics.extend(subscription.topics.iter().map(|t| t.to_string()));
                }
                None => {
                    topics.insert("*".to_string());
                }
            }
        }
        Some(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    async fn coordinator() -> (tempfile::TempDir, Arc<GroupCoordinator>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta: Arc<dyn strata_core::meta::MetaStore> = Arc::new(
            strata_core::meta::EmbeddedMetaStore::open(dir.path(), Default::default())
                .await
                .expect("meta"),
        );
        let offsets = OffsetStore::load(meta).await.expect("offsets");
        let config = BrokerSection {
            group_initial_rebalance_delay: Duration::ZERO,
            ..BrokerSection::default()
        };
        (dir, GroupCoordinator::new(offsets, &config))
    }

    fn subscription(topics: &[&'static str]) -> Bytes {
        let mut out = bytes::BytesMut::new();
        out.extend_from_slice(&1i16.to_be_bytes());
        ConsumerProtocolSubscription::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| StrBytes::from_static_str(t))
                    .collect(),
            )
            .encode(&mut out, 1)
            .expect("encodes");
        out.freeze()
    }

    #[tokio::test]
    async fn a_join_completes_and_subscriptions_are_read_from_member_metadata() {
        let (_dir, groups) = coordinator().await;
        let join = groups.join(JoinRequest {
            group: "g".into(),
            member_id: String::new(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), subscription(&["orders", "audit"]))],
            require_known_member_id: false,
        });
        let outcome = join.await.expect("answered");
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.generation, 1);
        assert_eq!(outcome.members.len(), 1, "the only member leads");
        let topics = groups.subscribed_topics("g").expect("has members");
        assert_eq!(
            topics.into_iter().collect::<Vec<_>>(),
            vec!["audit".to_string(), "orders".to_string()]
        );
        assert_eq!(groups.subscribed_topics("other"), None);
        assert_eq!(
            groups.heartbeat("g", &outcome.member_id, None, 0),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(groups.heartbeat("g", &outcome.member_id, None, 1), Ok(()));
        groups.leave("g", &outcome.member_id, None).expect("leaves");
        assert_eq!(groups.subscribed_topics("g"), None);
    }
}
