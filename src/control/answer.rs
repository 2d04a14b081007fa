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
