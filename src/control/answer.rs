//! The election's typed answers (and the responder's counters) as the
//! control protocol's responses.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::protocol::{Code, Response};
use crate::message::{
    ConflictView, ElectionAnswer, ElectionMetrics, Refusal, ResponderCounters as Counters,
    ServiceView,
};

/// `value` as JSON data (its fields sorted, as every answer's are).
fn data(value: &impl Serialize) -> Response {
    match serde_json::to_value(value) {
        Ok(data) => Response::ok(data),
        Err(e) => Response::error(Code::Internal, format!("unserializable answer: {e}")),
    }
}

/// The data of `services`.
#[derive(Serialize)]
struct ServicesData<'a> {
    services: &'a [ServiceView],
}

/// The response to a request the election answered; `responder` holds the
/// responder's counters (for `metrics`) and conflicts (for `status`).
pub fn response(
    answer: ElectionAnswer,
    responder: Option<(&Counters, &[ConflictView])>,
) -> Response {
    let counters = responder.map(|(counters, _)| counters);
    match answer {
        ElectionAnswer::Status(status) => match (data(&status), responder) {
            (Response::Ok(Value::Object(mut map)), Some((_, conflicts))) => {
                map.insert(
                    "conflicts".into(),
                    serde_json::to_value(conflicts).unwrap_or(Value::Null),
                );
                Response::ok(Value::Object(map))
            }
            (response, _) => response,
        },
        ElectionAnswer::Services(services) => data(&ServicesData {
            services: &services,
        }),
        ElectionAnswer::Metrics(metrics) => Response::ok(metrics_json(&metrics, counters)),
        ElectionAnswer::Draining(draining) => Response::ok(json!({ "draining": draining })),
        ElectionAnswer::HandedOver(moved) => Response::ok(json!({ "handed_over": moved })),
        ElectionAnswer::Refused(refusal) => refused(refusal),
    }
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::NotFound(name) => {
            Response::error(Code::NotFound, format!("no service named {name:?}"))
        }
        Refusal::NotOwner(None) => Response::error(Code::NotOwner, "this node owns no VIP"),
        Refusal::NotOwner(Some(name)) => {
            Response::error(Code::NotOwner, format!("this node does not own {name}"))
        }
        Refusal::NoCandidate(name) => Response::error(
            Code::NoCandidate,
            format!("no other node can take {name} now"),
        ),
    }
}

fn metrics_json(metrics: &ElectionMetrics, counters: Option<&Counters>) -> Value {
    let rejected: Map<String, Value> = metrics
        .rejected
        .iter()
        .map(|(name, count)| (name.to_string(), (*count).into()))
        .collect();
    let vips: Vec<Value> = metrics
        .vips
        .iter()
        .map(|(service, ip, owned)| json!({"service": &**service, "ip": ip, "owned": owned}))
        .collect();
    let mut value = json!({
        "node": metrics.node,
        "election": {
            "heartbeats_sent": metrics.heartbeats_sent,
            "heartbeats_received": metrics.heartbeats_received,
            "heartbeat_send_errors": metrics.heartbeat_send_errors,
            "ownership_changes": metrics.ownership_changes,
            "heartbeats_rejected": rejected,
        },
        "vips": vips,
    });
    if let (Some(counters), Value::Object(map)) = (counters, &mut value) {
        map.insert("responder".into(), counters.json());
    }
    value
}

/// The contract between the answer types and what the CLI prints: the
/// real types, serialized as the daemon answers and rendered as the CLI
/// does, so a renamed field breaks a test instead of a table.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::render;
    use super::*;
    use crate::config::Mode;
    use crate::counters::DropReason;
    use crate::message::{
        HealthStatus, PeerStatus, ServiceStatus, StatusSnapshot, Unfit, VipState,
    };
    use crate::ownership::Role;

    fn answered(answer: ElectionAnswer, counters: &Counters, conflicts: &[ConflictView]) -> Value {
        match response(answer, Some((counters, conflicts))) {
            Response::Ok(data) => data,
            other => panic!("not an answer: {other:?}"),
        }
    }

    fn service(name: &str, ip: &str, state: VipState) -> ServiceStatus {
        ServiceStatus {
            name: Arc::from(name),
            ip: ip.parse().unwrap(),
            interface: Arc::from("eth0"),
            mac: None,
            owner: None,
            state,
            since_s: None,
            unfit: None,
            linger_left_s: None,
            health: None,
            exported: None,
        }
    }

    fn snapshot() -> StatusSnapshot {
        let mut web = service("web", "192.0.2.200", VipState::Owner);
        web.owner = Some("r1".into());
        web.since_s = Some(4);
        web.health = Some(HealthStatus {
            state: "passing",
            last: Some("connected".into()),
        });
        web.exported = Some(100);
        let mut web6 = service("web6", "2001:db8::200", VipState::Lingering);
        web6.owner = Some("r2".into());
        web6.mac = Some("4a:bf:53:03:d7:fd".into());
        web6.linger_left_s = Some(90);
        let mut dns = service("dns", "192.0.2.201", VipState::NoOwner);
        dns.unfit = Some(Unfit::LinkDown);
        StatusSnapshot {
            node: "r1".into(),
            cluster: "lan".into(),
            priority: 150,
            mode: Mode::Spread,
            preempt: true,
            interval_ms: 1000,
            lease_ms: 10_000,
            draining: true,
            role: Role::Primary,
            uptime_s: 9,
            digest: "0123456789abcdef".into(),
            digest_agreement: false,
            insecure: true,
            services: vec![web, web6, dns],
            peers: vec![PeerStatus {
                node: "r2".into(),
                priority: 100,
                alive: true,
                last_heard_ms: 6,
                lease_left_ms: 9993,
                draining: true,
                joining: false,
                leaving: false,
                same_services: true,
            }],
        }
    }

    #[test]
    fn status_renders_every_field_of_the_snapshot() {
        let conflicts = [ConflictView {
            ip: "192.0.2.200".parse().unwrap(),
            mac: "02:00:5e:10:00:99".into(),
            count: 7,
            last_seen_s: 3,
        }];
        let data = answered(
            ElectionAnswer::Status(Box::new(snapshot())),
            &Counters::default(),
            &conflicts,
        );
        let table = render::status(&data);
        for expected in [
            "node r1 (primary, priority 150, spread mode, preempt), cluster lan, up 9s, DRAINING",
            "WARNING: heartbeats are not authenticated",
            "WARNING: some peers have another service list",
            "SERVICE  VIP            INTERFACE  MAC                OWNER  STATE",
            "web      192.0.2.200    eth0       -                  r1     owner, exported to table 100  4s     passing: connected",
            "web6     2001:db8::200  eth0       4a:bf:53:03:d7:fd  r2     lingering 90s",
            "dns      192.0.2.201    eth0       -                  -      no owner (link down)",
            "192.0.2.200  02:00:5e:10:00:99  7       3s ago",
            "r2    100       6ms ago  9993ms      draining",
        ] {
            assert!(table.contains(expected), "{expected:?} is not in\n{table}");
        }
    }

    #[test]
    fn services_render_every_field_of_the_view() {
        let services = vec![
            ServiceView {
                name: Arc::from("dns"),
                ip: "192.0.2.201".parse().unwrap(),
                interface: Arc::from("eth1"),
                nodes: vec!["r2".into(), "r3".into()],
                owned: false,
                owner: Some("r2".into()),
            },
            ServiceView {
                name: Arc::from("web"),
                ip: "192.0.2.200".parse().unwrap(),
                interface: Arc::from("eth0"),
                nodes: Vec::new(),
                owned: true,
                owner: Some("r1".into()),
            },
        ];
        let data = answered(
            ElectionAnswer::Services(services),
            &Counters::default(),
            &[],
        );
        let table = render::services(&data);
        for expected in [
            "SERVICE  VIP          INTERFACE  NODES  OWNER",
            "dns      192.0.2.201  eth1       r2,r3  r2",
            "web      192.0.2.200  eth0       all    r1",
        ] {
            assert!(table.contains(expected), "{expected:?} is not in\n{table}");
        }
    }

    #[test]
    fn metrics_render_every_counter_of_both_threads() {
        let metrics = ElectionMetrics {
            node: "r1".into(),
            heartbeats_sent: 11,
            heartbeats_received: 12,
            heartbeat_send_errors: 13,
            ownership_changes: 14,
            rejected: vec![("replay", 15), ("off_link", 16)],
            vips: vec![(Arc::from("web"), "192.0.2.200".parse().unwrap(), true)],
        };
        let mut counters = Counters {
            arp_received: 21,
            arp_replies_sent: 22,
            ns_received: 23,
            na_sent: 24,
            gratuitous_arp_sent: 25,
            unsolicited_na_sent: 26,
            send_errors: 27,
            ..Counters::default()
        };
        counters.drop(DropReason::Truncated);
        let data = answered(ElectionAnswer::Metrics(Box::new(metrics)), &counters, &[]);
        let text = render::prometheus(&data);
        for expected in [
            "l2vip_arp_requests_received_total 21",
            "l2vip_arp_replies_sent_total 22",
            "l2vip_ns_received_total 23",
            "l2vip_na_sent_total 24",
            "l2vip_gratuitous_arp_sent_total 25",
            "l2vip_unsolicited_na_sent_total 26",
            "l2vip_frame_send_errors_total 27",
            "l2vip_frames_dropped_total{reason=\"truncated\"} 1",
            "l2vip_heartbeats_sent_total 11",
            "l2vip_heartbeats_received_total 12",
            "l2vip_heartbeat_send_errors_total 13",
            "l2vip_ownership_changes_total 14",
            "l2vip_heartbeats_rejected_total{reason=\"replay\"} 15",
            "l2vip_heartbeats_rejected_total{reason=\"off_link\"} 16",
            "l2vip_vip_owned{service=\"web\",ip=\"192.0.2.200\"} 1",
        ] {
            assert!(text.contains(expected), "{expected:?} is not in\n{text}");
        }
        let table = render::metrics(&data);
        for expected in [
            "heartbeats_sent               11",
            "arp_received                  21",
            "drops.truncated               1",
            "heartbeats_rejected.off_link  16",
        ] {
            assert!(table.contains(expected), "{expected:?} is not in\n{table}");
        }
    }
}
