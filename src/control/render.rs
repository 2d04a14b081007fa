//! What the CLI prints for people: compact aligned tables, and the
//! Prometheus text exposition of `metrics`.

use serde_json::Value;

/// Aligns rows of cells into columns separated by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn duration_ms(ms: u64) -> String {
    if ms < 10_000 {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

fn duration_s(value: &Value) -> String {
    match value.as_u64() {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) => format!("{}h", s / 3600),
    }
}

/// `l2vip status` for people.
pub fn status(data: &Value) -> String {
    // An older daemon says no role.
    let role = match data["role"].as_str() {
        Some(role) => format!("{role}, "),
        None => String::new(),
    };
    let mut out = format!(
        "node {} ({role}priority {}, {} mode{}), cluster {}, up {}{}\n",
        text(&data["node"]),
        text(&data["priority"]),
        text(&data["mode"]),
        if data["preempt"] == Value::Bool(true) {
            ", preempt"
        } else {
            ""
        },
        text(&data["cluster"]),
        duration_s(&data["uptime_s"]),
        if data["draining"] == Value::Bool(true) {
            ", DRAINING"
        } else {
            ""
        },
    );
    if data["insecure"] == Value::Bool(true) {
        out.push_str(
            "WARNING: heartbeats are not authenticated (heartbeat.insecure): anyone on the LAN \
             can move the VIPs\n",
        );
    }
    if data["digest_agreement"] == Value::Bool(false) {
        out.push_str("WARNING: some peers have another service list (see peers)\n");
    }
    let services: Vec<&Value> = data["services"].as_array().into_iter().flatten().collect();
    // A MAC column only when some VIP has a MAC of its own.
    let macs = services.iter().any(|s| s["mac"].is_string());
    let mut header = vec!["SERVICE", "VIP", "INTERFACE"];
    if macs {
        header.push("MAC");
    }
    header.extend(["OWNER", "STATE", "SINCE", "HEALTH"]);
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for service in services {
        let mut state = text(&service["state"]);
        if let Some(left) = service["linger_left_s"].as_u64() {
            state.push_str(&format!(" {left}s"));
        }
        if let Some(why) = service["unfit"].as_str() {
            state.push_str(&format!(" ({why})"));
        }
        if let Some(table) = service["exported"].as_u64() {
            state.push_str(&format!(", exported to table {table}"));
        }
        let health = &service["health"];
        let health = match (health["state"].as_str(), health["last"].as_str()) {
            (Some(state), Some(last)) => format!("{state}: {last}"),
            (Some(state), None) => state.to_string(),
            _ => "-".to_string(),
        };
        let mut row = vec![
            text(&service["name"]),
            text(&service["ip"]),
            text(&service["interface"]),
        ];
        if macs {
            row.push(text(&service["mac"]));
        }
        row.extend([
            text(&service["owner"]),
            state,
            duration_s(&service["since_s"]),
            health,
        ]);
        rows.push(row);
    }
    out.push('\n');
    out.push_str(&table(&rows));
    let conflicts: Vec<&Value> = data["conflicts"].as_array().into_iter().flatten().collect();
    if !conflicts.is_empty() {
        let mut rows = vec![["CONFLICT", "MAC", "CLAIMS", "LAST SEEN"]
            .map(String::from)
            .to_vec()];
        for conflict in conflicts {
            rows.push(vec![
                text(&conflict["ip"]),
                text(&conflict["mac"]),
                text(&conflict["count"]),
                format!("{} ago", duration_s(&conflict["last_seen_s"])),
            ]);
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    let peers: Vec<&Value> = data["peers"].as_array().into_iter().flatten().collect();
    if !peers.is_empty() {
        let mut rows = vec![["PEER", "PRIORITY", "HEARD", "LEASE LEFT", "STATE"]
            .map(String::from)
            .to_vec()];
        for peer in peers {
            let flag = |key: &str| peer[key] == Value::Bool(true);
            let state = if flag("leaving") {
                "left"
            } else if !flag("alive") {
                "dead"
            } else if !flag("same_services") {
                "other services"
            } else if flag("draining") {
                "draining"
            } else if flag("joining") {
                "joining"
            } else {
                "alive"
            };
            rows.push(vec![
                text(&peer["node"]),
                text(&peer["priority"]),
                format!(
                    "{} ago",
                    duration_ms(peer["last_heard_ms"].as_u64().unwrap_or(0))
                ),
                duration_ms(peer["lease_left_ms"].as_u64().unwrap_or(0)),
                state.into(),
            ]);
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    out
}

/// `l2vip services` for people.
pub fn services(data: &Value) -> String {
    let mut rows = vec![["SERVICE", "VIP", "INTERFACE", "NODES", "OWNER"]
        .map(String::from)
        .to_vec()];
    for service in data["services"].as_array().into_iter().flatten() {
        let nodes: Vec<String> = service["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        rows.push(vec![
            text(&service["name"]),
            text(&service["ip"]),
            text(&service["interface"]),
            if nodes.is_empty() {
                "all".into()
            } else {
                nodes.join(",")
            },
            text(&service["owner"]),
        ]);
    }
    table(&rows)
}

/// Label values escaped for the exposition format.
fn label(value: &Value) -> String {
    text(value)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn counter(out: &mut String, name: &str, help: &str, value: &Value) {
    out.push_str(&format!(
        "# HELP l2vip_{name} {help}\n# TYPE l2vip_{name} counter\nl2vip_{name} {}\n",
        value.as_u64().unwrap_or(0)
    ));
}

fn by_reason(out: &mut String, name: &str, help: &str, reasons: &Value) {
    out.push_str(&format!(
        "# HELP l2vip_{name} {help}\n# TYPE l2vip_{name} counter\n"
    ));
    for (reason, value) in reasons.as_object().into_iter().flatten() {
        out.push_str(&format!(
            "l2vip_{name}{{reason=\"{reason}\"}} {}\n",
            value.as_u64().unwrap_or(0)
        ));
    }
}

/// `l2vip metrics --prometheus`: the text exposition format.
pub fn prometheus(data: &Value) -> String {
    let mut out = String::new();
    let responder = &data["responder"];
    counter(
        &mut out,
        "arp_requests_received_total",
        "ARP frames read.",
        &responder["arp_received"],
    );
    counter(
        &mut out,
        "arp_replies_sent_total",
        "ARP replies sent.",
        &responder["arp_replies_sent"],
    );
    counter(
        &mut out,
        "ns_received_total",
        "Neighbor Solicitations read.",
        &responder["ns_received"],
    );
    counter(
        &mut out,
        "na_sent_total",
        "Neighbor Advertisements sent in answer.",
        &responder["na_sent"],
    );
    counter(
        &mut out,
        "gratuitous_arp_sent_total",
        "Gratuitous ARP frames sent.",
        &responder["gratuitous_arp_sent"],
    );
    counter(
        &mut out,
        "unsolicited_na_sent_total",
        "Unsolicited Neighbor Advertisements sent.",
        &responder["unsolicited_na_sent"],
    );
    counter(
        &mut out,
        "frame_send_errors_total",
        "Frames the kernel refused to send.",
        &responder["send_errors"],
    );
    by_reason(
        &mut out,
        "frames_dropped_total",
        "Received frames not answered, by reason.",
        &responder["drops"],
    );
    let election = &data["election"];
    counter(
        &mut out,
        "heartbeats_sent_total",
        "Heartbeats sent.",
        &election["heartbeats_sent"],
    );
    counter(
        &mut out,
        "heartbeats_received_total",
        "Valid heartbeats received.",
        &election["heartbeats_received"],
    );
    counter(
        &mut out,
        "heartbeat_send_errors_total",
        "Heartbeats the kernel refused to send.",
        &election["heartbeat_send_errors"],
    );
    by_reason(
        &mut out,
        "heartbeats_rejected_total",
        "Heartbeats dropped, by reason.",
        &election["heartbeats_rejected"],
    );
    counter(
        &mut out,
        "ownership_changes_total",
        "VIPs acquired or released by this node.",
        &election["ownership_changes"],
    );
    out.push_str(
        "# HELP l2vip_vip_owned 1 if this node owns the VIP.\n# TYPE l2vip_vip_owned gauge\n",
    );
    for vip in data["vips"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "l2vip_vip_owned{{service=\"{}\",ip=\"{}\"}} {}\n",
            label(&vip["service"]),
            label(&vip["ip"]),
            u8::from(vip["owned"] == Value::Bool(true))
        ));
    }
    out
}

/// `l2vip metrics` for people: every non-zero counter, one per line.
pub fn metrics(data: &Value) -> String {
    let mut rows = vec![vec!["COUNTER".to_string(), "VALUE".to_string()]];
    fn walk(prefix: &str, value: &Value, rows: &mut Vec<Vec<String>>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&name, inner, rows);
                }
            }
            Value::Number(n) if n.as_u64() != Some(0) => {
                rows.push(vec![prefix.to_string(), n.to_string()])
            }
            _ => {}
        }
    }
    walk("", &data["responder"], &mut rows);
    walk("", &data["election"], &mut rows);
    table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_table() {
        let data = json!({
            "node": "n1", "priority": 150, "mode": "single", "preempt": false, "cluster": "lan",
            "uptime_s": 75, "draining": false, "digest_agreement": true,
            "services": [
                {"name": "web", "ip": "192.0.2.200", "interface": "eth0", "owner": "n1", "state": "owner", "since_s": 70},
                {"name": "web6", "ip": "2001:db8::200", "interface": "eth0", "owner": null, "state": "no owner", "since_s": null},
                {"name": "db", "ip": "192.0.2.201", "interface": "eth1", "owner": "n2", "state": "lingering", "since_s": null,
                 "linger_left_s": 95, "unfit": "health check failing",
                 "health": {"state": "failing", "last": "exit 1"}}
            ],
            "peers": [{"node": "n2", "priority": 100, "alive": true, "last_heard_ms": 40, "lease_left_ms": 460,
                       "draining": false, "joining": false, "leaving": false, "same_services": true}]
        });
        let text = status(&data);
        assert!(
            text.starts_with("node n1 (priority 150, single mode), cluster lan, up 75s\n"),
            "{text}"
        );
        assert!(
            text.contains("SERVICE  VIP            INTERFACE  OWNER  STATE                                 SINCE  HEALTH\n"),
            "{text}"
        );
        assert!(
            text.contains("web      192.0.2.200    eth0       n1     owner                                 70s    -\n"),
            "{text}"
        );
        assert!(
            text.contains("web6     2001:db8::200  eth0       -      no owner                              -      -\n"),
            "{text}"
        );
        assert!(
            text.contains("db       192.0.2.201    eth1       n2     lingering 95s (health check failing)  -      failing: exit 1\n"),
            "{text}"
        );
        assert!(
            text.contains("n2    100       40ms ago  460ms       alive\n"),
            "{text}"
        );
    }

    #[test]
    fn status_shows_a_mac_column_when_a_vip_has_its_own_mac() {
        let data = json!({
            "node": "n1", "priority": 150, "mode": "single", "preempt": false, "cluster": "lan",
            "uptime_s": 5, "draining": false, "digest_agreement": true,
            "services": [
                {"name": "web", "ip": "192.0.2.200", "interface": "eth0", "mac": "4a:bf:53:03:d7:fd",
                 "owner": "n1", "state": "owner", "since_s": 5},
                {"name": "db", "ip": "192.0.2.201", "interface": "eth0", "mac": null,
                 "owner": "n1", "state": "owner", "since_s": 5}
            ],
            "peers": []
        });
        let text = status(&data);
        assert!(
            text.contains(
                "SERVICE  VIP          INTERFACE  MAC                OWNER  STATE  SINCE  HEALTH
"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "web      192.0.2.200  eth0       4a:bf:53:03:d7:fd  n1     owner  5s     -
"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "db       192.0.2.201  eth0       -                  n1     owner  5s     -
"
            ),
            "{text}"
        );
    }

    #[test]
    fn status_says_which_vips_this_node_exports() {
        let data = json!({
            "node": "n2", "priority": 150, "mode": "single", "preempt": false, "cluster": "lan",
            "uptime_s": 5, "draining": false, "digest_agreement": true,
            "services": [
                {"name": "far", "ip": "198.51.100.7", "interface": "eth0", "owner": "n1",
                 "state": "standby", "exported": 100},
                {"name": "one", "ip": "198.51.100.8", "interface": "eth0", "owner": "n1",
                 "state": "standby", "exported": null}
            ],
            "peers": []
        });
        let text = status(&data);
        assert!(
            text.contains(
                "far      198.51.100.7  eth0       n1     standby, exported to table 100  -"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "one      198.51.100.8  eth0       n1     standby                         -"
            ),
            "{text}"
        );
    }

    #[test]
    fn prometheus_text() {
        let data = json!({
            "responder": {"arp_received": 3, "drops": {"truncated": 1, "checksum": 0}},
            "election": {"heartbeats_sent": 9, "heartbeats_rejected": {"bad_mac": 2}},
            "vips": [{"service": "web", "ip": "192.0.2.200", "owned": true}]
        });
        let text = prometheus(&data);
        assert!(text.contains("# TYPE l2vip_arp_requests_received_total counter\nl2vip_arp_requests_received_total 3\n"));
        assert!(text.contains("l2vip_frames_dropped_total{reason=\"truncated\"} 1\n"));
        assert!(text.contains("l2vip_heartbeats_rejected_total{reason=\"bad_mac\"} 2\n"));
        assert!(text.contains("l2vip_vip_owned{service=\"web\",ip=\"192.0.2.200\"} 1\n"));
        assert!(
            text.lines()
                .all(|l| l.starts_with('#') || l.starts_with("l2vip_")),
            "{text}"
        );
    }
}
