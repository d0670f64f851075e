//! One consumer group of the classic protocol: members, generations and the
//! rebalance state machine (Empty -> PreparingRebalance -> CompletingRebalance ->
//! Stable). Pure state: the coordinator holds the lock and the clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a JoinGroup gets back once its rebalance completes.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// `(member id, instance id, metadata)`; only the leader gets them.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn failed(error: ResponseError, member_id: String) -> JoinOutcome {
        JoinOutcome {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id,
            members: Vec::new(),
        }
    }
}

/// What a SyncGroup gets back.
pub type SyncOutcome = Result<Bytes, ResponseError>;

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    pub(super) pending_join: Option<oneshot::Sender<JoinOutcome>>,
    pub(super) pending_sync: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Members in join order: the first is the leader when one must be chosen.
    pub members: BTreeMap<u64, Member>,
    next_seat: u64,
    /// When the current rebalance gives up waiting for members that have not
    /// rejoined; `None` outside PreparingRebalance.
    pub rebalance_deadline: Option<Instant>,
    /// A new group waits this long for more first members.
    pub initial_delay_until: Option<Instant>,
}

impl Group {
    pub fn new(id: String) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            next_seat: 0,
            rebalance_deadline: None,
            initial_delay_until: None,
        }
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.values().find(|m| m.id == id)
    }

    pub fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.values_mut().find(|m| m.id == id)
    }

    pub fn seat_of_instance(&self, instance: &str) -> Option<u64> {
        self.members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance))
            .map(|(seat, _)| *seat)
    }

    fn seat_of(&self, id: &str) -> Option<u64> {
        self.members
            .iter()
            .find(|(_, m)| m.id == id)
            .map(|(seat, _)| *seat)
    }

    pub fn add_member(&mut self, member: Member) {
        self.members.insert(self.next_seat, member);
        self.next_seat += 1;
    }

    /// Whether every member offers a protocol in common with `protocols`.
    pub fn accepts(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Starts (or continues) a rebalance; pending syncs learn that one is on.
    pub fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        for member in self.members.values_mut() {
            if let Some(sync) = member.pending_sync.take() {
                let _ = sync.send(Err(ResponseError::RebalanceInProgress));
            }
        }
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60));
        if self.state == GroupState::Empty {
            self.initial_delay_until = Some(now + initial_delay.min(timeout));
        }
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + timeout);
    }

    /// Completes the join phase when every member has rejoined (after a new group's
    /// initial delay) or the deadline passed, dropping members that did not rejoin.
    pub fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.pending_join.is_some());
        let delay_over = self.initial_delay_until.is_none_or(|until| now >= until);
        let deadline_passed = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !(deadline_passed || (all_joined && delay_over)) {
            return;
        }
        self.members.retain(|_, m| m.pending_join.is_some());
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.select_protocol();
        let leader_present = self
            .leader
            .as_deref()
            .is_some_and(|l| self.seat_of(l).is_some());
        if !leader_present {
            self.leader = self.members.values().next().map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let roster: Vec<(String, Option<String>, Bytes)> = self
            .members
            .values()
            .map(|m| {
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        for member in self.members.values_mut() {
            member.last_heartbeat = now;
            if let Some(join) = member.pending_join.take() {
                let _ = join.send(JoinOutcome {
                    error: None,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: member.id.clone(),
                    members: if member.id == leader {
                        roster.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    /// The protocol every member supports that most members prefer.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, *c)).collect();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(&name))
                && let Some(vote) = votes.iter_mut().find(|(_, c)| *c == name)
            {
                vote.0 += 1;
            }
        }
        // Highest count; the first member's order breaks ties.
        let best = votes.iter().map(|(count, _)| *count).max()?;
        votes
            .into_iter()
            .find(|(count, _)| *count == best)
            .map(|(_, name)| name.clone())
    }

    /// Removes a member; the group rebalances (or empties) without it.
    pub fn remove_member(&mut self, id: &str, now: Instant, initial_delay: Duration) {
        let Some(seat) = self.seat_of(id) else { return };
        if let Some(mut member) = self.members.remove(&seat) {
            if let Some(join) = member.pending_join.take() {
                let _ = join.send(JoinOutcome::failed(
                    ResponseError::UnknownMemberId,
                    member.id.clone(),
                ));
            }
            if let Some(sync) = member.pending_sync.take() {
                let _ = sync.send(Err(ResponseError::UnknownMemberId));
            }
        }
        if self.members.is_empty() && self.state != GroupState::PreparingRebalance {
            self.state = GroupState::Empty;
            self.generation += 1;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.prepare_rebalance(now, initial_delay);
        self.maybe_complete_join(now);
    }

    /// Members whose session lapsed without a heartbeat (members waiting in a join
    /// are exempt: the rebalance deadline covers them).
    pub fn expired_members(&self, now: Instant) -> Vec<String> {
        self.members
            .values()
            .filter(|m| m.pending_join.is_none() && m.pending_sync.is_none())
            .filter(|m| now.duration_since(m.last_heartbeat) > m.session_timeout)
            .map(|m| m.id.clone())
            .collect()
    }

    /// The leader's assignments end the rebalance; every waiting member gets its own.
    pub fn complete_sync(&mut self, assignments: BTreeMap<String, Bytes>) {
        for member in self.members.values_mut() {
            member.assignment = assignments.get(&member.id).cloned().unwrap_or_default();
            if let Some(sync) = member.pending_sync.take() {
                let _ = sync.send(Ok(member.assignment.clone()));
            }
        }
        self.state = GroupState::Stable;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> (Member, oneshot::Receiver<JoinOutcome>) {
        let (tx, rx) = oneshot::channel();
        (
            Member {
                id: id.to_string(),
                instance_id: None,
                client_id: "c".to_string(),
                client_host: "h".to_string(),
                session_timeout: Duration::from_secs(10),
                rebalance_timeout: Duration::from_secs(30),
                protocols: protocols
                    .iter()
                    .map(|p| (p.to_string(), Bytes::from(p.to_string())))
                    .collect(),
                assignment: Bytes::new(),
                last_heartbeat: Instant::now(),
                pending_join: Some(tx),
                pending_sync: None,
            },
            rx,
        )
    }

    #[test]
    fn a_rebalance_waits_for_every_member_then_elects_a_common_protocol() {
        let now = Instant::now();
        let mut group = Group::new("g".to_string());
        group.protocol_type = Some("consumer".to_string());
        let (a, mut a_rx) = member("a", &["range", "cooperative-sticky"]);
        group.add_member(a);
        group.prepare_rebalance(now, Duration::ZERO);
        let (b, mut b_rx) = member("b", &["cooperative-sticky", "range"]);
        let (c, mut c_rx) = member("c", &["cooperative-sticky"]);
        group.add_member(b);
        group.add_member(c);
        group.maybe_complete_join(now);
        assert_eq!(group.state, GroupState::CompletingRebalance);
        assert_eq!(group.protocol.as_deref(), Some("cooperative-sticky"));
        let a = a_rx.try_recv().expect("leader answered");
        assert_eq!(
            (a.leader.as_str(), a.members.len(), a.generation),
            ("a", 3, 1)
        );
        assert!(b_rx.try_recv().expect("answered").members.is_empty());
        assert!(c_rx.try_recv().is_ok());
        group.complete_sync(BTreeMap::from([("b".to_string(), Bytes::from("p0"))]));
        assert_eq!(group.state, GroupState::Stable);
        assert_eq!(group.member("b").expect("b").assignment, Bytes::from("p0"));
    }

    #[test]
    fn members_that_do_not_rejoin_are_dropped_at_the_deadline() {
        let now = Instant::now();
        let mut group = Group::new("g".to_string());
        group.protocol_type = Some("consumer".to_string());
        let (a, _a_rx) = member("a", &["range"]);
        let (b, _b_rx) = member("b", &["range"]);
        group.add_member(a);
        group.add_member(b);
        group.prepare_rebalance(now, Duration::ZERO);
        group.maybe_complete_join(now);
        group.complete_sync(BTreeMap::new());
        // b rejoins; a never does.
        let (tx, _rx) = oneshot::channel();
        group.member_mut("b").expect("b").pending_join = Some(tx);
        group.prepare_rebalance(now, Duration::ZERO);
        group.maybe_complete_join(now + Duration::from_secs(1));
        assert_eq!(group.state, GroupState::PreparingRebalance);
        group.maybe_complete_join(now + Duration::from_secs(31));
        assert_eq!(group.state, GroupState::CompletingRebalance);
        assert_eq!(group.members.len(), 1);
        assert_eq!(group.leader.as_deref(), Some("b"));
        assert_eq!(group.generation, 2);
    }
}
