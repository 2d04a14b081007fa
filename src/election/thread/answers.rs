//! The election's answers to a client's questions and orders: typed
//! snapshots of the node, its services and peers, its counters, and the
//! planned moves (drain, hand-over) that change them.

use std::sync::Arc;
use std::time::Instant;

use super::heartbeats::Rejection;
use super::ElectionThread;
use crate::config::ExportWhat;
use crate::election::policy::HandoverError;
use crate::message::{
    ElectionAnswer, ElectionAsk, ElectionMetrics, HealthStatus, PeerStatus, Refusal, ServiceStatus,
    ServiceView, StatusSnapshot, VipState,
};
use crate::ownership::Vip;

impl ElectionThread {
    /// Answers a client's question or carries out its order.
    pub(super) fn answer(&mut self, now: Instant, ask: ElectionAsk) -> ElectionAnswer {
        match ask {
            ElectionAsk::Status => ElectionAnswer::Status(Box::new(self.status(now))),
            ElectionAsk::Services => ElectionAnswer::Services(self.services(now)),
            ElectionAsk::Metrics => ElectionAnswer::Metrics(Box::new(self.metrics())),
            ElectionAsk::Drain(draining) => {
                let outputs = self.policy.set_draining(now, draining);
                self.carry_out(now, outputs);
                ElectionAnswer::Draining(draining)
            }
            ElectionAsk::Handover(service) => match self.handover(now, service.as_deref()) {
                Ok(moved) => ElectionAnswer::HandedOver(moved),
                Err(refusal) => ElectionAnswer::Refused(refusal),
            },
        }
    }

    fn handover(&mut self, now: Instant, service: Option<&str>) -> Result<Vec<String>, Refusal> {
        let indices: Vec<usize> = match service {
            Some(name) => match self.vips.iter().position(|v| &*v.name == name) {
                Some(index) => vec![index],
                None => return Err(Refusal::NotFound(name.to_string())),
            },
            None => self.policy.owned().collect(),
        };
        if indices.is_empty() {
            return Err(Refusal::NotOwner(None));
        }
        let mut moved = Vec::new();
        for index in indices {
            let name = self.vips[index].name.to_string();
            match self.policy.handover(now, index) {
                Ok(outputs) => {
                    self.carry_out(now, outputs);
                    moved.push(name);
                }
                Err(HandoverError::NotOwner) => return Err(Refusal::NotOwner(Some(name))),
                Err(HandoverError::NoCandidate) => return Err(Refusal::NoCandidate(name)),
            }
        }
        Ok(moved)
    }

    fn status(&self, now: Instant) -> StatusSnapshot {
        let services = self
            .vips
            .iter()
            .enumerate()
            .map(|(index, vip)| self.service_status(index, vip, now))
            .collect();
        let peers = self
            .policy
            .peer_states(now)
            .into_iter()
            .map(|p| PeerStatus {
                node: p.node,
                priority: p.priority,
                alive: p.alive,
                last_heard_ms: p.last_heard.as_millis() as u64,
                lease_left_ms: p.lease_left.as_millis() as u64,
                draining: p.draining,
                joining: p.joining,
                leaving: p.leaving,
                same_services: p.same_services,
            })
            .collect();
        StatusSnapshot {
            node: self.identity.node.clone(),
            cluster: self.identity.cluster.clone(),
            priority: self.priority,
            mode: self.identity.mode,
            preempt: self.preempt,
            interval_ms: self.identity.interval_ms,
            lease_ms: self.identity.lease_ms,
            draining: self.policy.draining(),
            role: self.role,
            uptime_s: now.saturating_duration_since(self.started).as_secs(),
            digest: format!("{:016x}", self.policy.digest()),
            digest_agreement: self.mismatched.is_empty(),
            insecure: self.insecure(),
            services,
            peers,
        }
    }

    /// What `status` says of service `index` (`vip`).
    fn service_status(&self, index: usize, vip: &Vip, now: Instant) -> ServiceStatus {
        let owner = self.policy.owner(index, now);
        let linger_left = self.linger.left(&vip.name, now).map(|d| d.as_secs());
        let state = match (owner, linger_left) {
            (Some(node), _) if node == self.identity.node => VipState::Owner,
            (_, Some(_)) => VipState::Lingering,
            (Some(_), None) => VipState::Standby,
            (None, None) => VipState::NoOwner,
        };
        let health = self.checked[index].then(|| {
            let report = self.health.get(&*vip.name);
            HealthStatus {
                state: match report.and_then(|r| r.healthy) {
                    Some(true) => "passing",
                    Some(false) => "failing",
                    None => "pending",
                },
                last: report.map(|r| r.detail.clone()),
            }
        });
        ServiceStatus {
            name: Arc::clone(&vip.name),
            ip: vip.ip,
            interface: Arc::clone(&vip.interface),
            mac: vip.mac.map(|mac| mac.to_string()),
            owner: owner.map(str::to_string),
            state,
            since_s: self
                .policy
                .acquired_at(index)
                .map(|at| now.saturating_duration_since(at).as_secs()),
            unfit: self.policy.unfit(index),
            linger_left_s: linger_left,
            health,
            exported: vip
                .export
                .filter(|export| match export.what {
                    ExportWhat::Owned => state == VipState::Owner,
                    ExportWhat::Eligible => self.eligible.contains(&index),
                })
                .map(|export| export.table),
        }
    }

    fn services(&self, now: Instant) -> Vec<ServiceView> {
        self.vips
            .iter()
            .zip(self.policy.services())
            .enumerate()
            .map(|(index, (vip, spec))| ServiceView {
                name: Arc::clone(&vip.name),
                ip: vip.ip,
                interface: Arc::clone(&vip.interface),
                nodes: spec.nodes.clone(),
                owned: self.policy.owns(index),
                owner: self.policy.owner(index, now).map(str::to_string),
            })
            .collect()
    }

    fn metrics(&self) -> ElectionMetrics {
        ElectionMetrics {
            node: self.identity.node.clone(),
            heartbeats_sent: self.counters.sent,
            heartbeats_received: self.counters.received,
            heartbeat_send_errors: self.counters.send_errors,
            ownership_changes: self.counters.ownership_changes,
            rejected: Rejection::ALL
                .iter()
                .map(|reason| reason.name())
                .zip(self.counters.rejected)
                .collect(),
            vips: self
                .vips
                .iter()
                .enumerate()
                .map(|(index, vip)| (Arc::clone(&vip.name), vip.ip, self.policy.owns(index)))
                .collect(),
        }
    }
}
