//! One service's rules, shared by the configuration file, `add` and the
//! state file: its name, address, interface, MAC, export and health check;
//! and the rules across services (MACs, interfaces on this host).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::build::out_of_range;
use super::locate::Step;
use super::read::{dotted, Source};
use super::schema::{RawExport, RawHealth, RawService};
use super::*;
use crate::wire::EthernetAddress;

/// Reads one service given over the control socket or from the state
/// file: the same fields and checks as in the configuration file.
pub fn service_from_json(value: serde_json::Value) -> Result<Service, String> {
    let raw: RawService = serde_json::from_value(value).map_err(|e| e.to_string())?;
    check_service(&raw).map_err(|(key, why)| format!("{}: {why}", dotted(&key)))
}

/// Validates one service; the error holds the path below the service.
pub(super) fn check_service(raw: &RawService) -> Result<Service, (Vec<Step<'static>>, String)> {
    let at = |key: &'static str| move |why: String| (vec![Step::Key(key)], why);
    check_name(&raw.name).map_err(at("name"))?;
    let ip = parse_vip(&raw.ip).map_err(at("ip"))?;
    check_interface_name(&raw.interface).map_err(at("interface"))?;
    for (i, node) in raw.nodes.iter().enumerate() {
        check_name(node).map_err(|why| (vec![Step::Key("nodes"), Step::Index(i)], why))?;
    }
    let mac = match &raw.mac {
        None => None,
        Some(text) => Some(MacChoice::parse(text).map_err(at("mac"))?),
    };
    let answer = raw.answer.unwrap_or(true);
    if is_link_local(ip) && mac.is_some_and(|m| m != MacChoice::Interface) {
        return Err(at("mac")(
            "a link-local VIP is the owner's own address on its interface, answered by its \
             kernel too: always with the interface's MAC"
                .into(),
        ));
    }
    if !answer && mac.is_some() {
        return Err(at("mac")(
            "a service with \"answer\": false is not answered, so no MAC answers for it".into(),
        ));
    }
    let export = match &raw.export {
        None => None,
        Some(value) => Some(match parse_export(value)? {
            Some(export) => ExportChoice::On(export),
            None => ExportChoice::Off,
        }),
    };
    let health = match &raw.health {
        None => None,
        Some(health) => {
            Some(Box::new(check_health(health).map_err(|(key, why)| {
                (vec![Step::Key("health"), Step::Key(key)], why)
            })?))
        }
    };
    Ok(Service {
        name: Arc::from(raw.name.as_str()),
        ip,
        interface: Arc::from(raw.interface.as_str()),
        nodes: raw.nodes.clone(),
        bind: raw.bind,
        mac,
        answer,
        export,
        health,
    })
}

/// The MACs `services` answer with (`default` where a service names
/// none): no two services share one, and no interface carries more than
/// `MAX_VIRTUAL_MACS` of them. The error names the first service past
/// a limit, by index.
pub fn check_macs(
    services: &[Service],
    default: MacChoice,
    cluster: &str,
) -> Result<(), (usize, String)> {
    // Plain vectors: a few entries, and no map code for these key types.
    let mut seen: Vec<(EthernetAddress, usize)> = Vec::new();
    let mut per_interface: Vec<(&str, usize)> = Vec::new();
    for (index, service) in services.iter().enumerate().filter(|(_, s)| s.answer) {
        let Some(mac) = service.mac_choice(default).resolve(cluster, &service.name) else {
            continue;
        };
        if let Some(&(_, first)) = seen.iter().find(|(known, _)| *known == mac) {
            return Err((
                index,
                format!(
                    "{} is already the MAC of services[{first}] ({})",
                    mac, services[first].name
                ),
            ));
        }
        seen.push((mac, index));
        let count = match per_interface
            .iter_mut()
            .find(|(name, _)| *name == &*service.interface)
        {
            Some((_, count)) => count,
            None => {
                per_interface.push((&service.interface, 0));
                &mut per_interface.last_mut().expect("just pushed").1
            }
        };
        *count += 1;
        if *count > MAX_VIRTUAL_MACS {
            return Err((
                index,
                format!(
                    "more than {MAX_VIRTUAL_MACS} services with a MAC of their own on {}: past \
                     its unicast filter a NIC listens to every frame; use \"mac\": \"interface\" \
                     for the others",
                    service.interface
                ),
            ));
        }
    }
    Ok(())
}

fn check_health(raw: &RawHealth) -> Result<Health, (&'static str, String)> {
    let check = match (&raw.tcp, &raw.exec) {
        (Some(target), None) => {
            let address = target.parse::<SocketAddr>().map_err(|_| {
                (
                    "tcp",
                    format!(
                        "{target:?} is not address:port (an IP literal; names are not resolved)"
                    ),
                )
            })?;
            if address.port() == 0 || address.ip().is_unspecified() || address.ip().is_multicast() {
                return Err(("tcp", format!("{target:?} cannot be connected to")));
            }
            Check::Tcp(address)
        }
        (None, Some(command)) => {
            check_command(command).map_err(|why| ("exec", why))?;
            Check::Exec(command.clone())
        }
        _ => return Err(("tcp", "give exactly one of \"tcp\" and \"exec\"".into())),
    };
    let interval_ms = raw.interval_ms.unwrap_or(1000);
    if let Some(why) = out_of_range(interval_ms, &(100..=3_600_000), "") {
        return Err(("interval_ms", why));
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(500.min(interval_ms));
    if timeout_ms < 10 || timeout_ms > interval_ms {
        return Err((
            "timeout_ms",
            format!("{timeout_ms} must be 10 or more and at most interval_ms ({interval_ms})"),
        ));
    }
    let rise = raw.rise.unwrap_or(2);
    let fall = raw.fall.unwrap_or(3);
    for (key, count) in [("rise", rise), ("fall", fall)] {
        if let Some(why) = out_of_range(count, &(1..=100), "") {
            return Err((key, why));
        }
    }
    Ok(Health {
        check,
        interval_ms,
        timeout_ms,
        rise,
        fall,
    })
}

/// A command for `/bin/sh -c`: one line of at most 4096 bytes.
pub(super) fn check_command(command: &str) -> Result<(), String> {
    if command.trim().is_empty() {
        return Err("empty command".into());
    }
    if command.len() > 4096 {
        return Err("longer than 4096 bytes".into());
    }
    if command.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    Ok(())
}

/// Checks every service's interface with `usable`, which says why an
/// interface cannot carry VIPs (missing, not Ethernet), or `Ok`.
pub fn check_interfaces(
    source: &Source,
    config: &Config,
    usable: impl Fn(&str) -> Result<(), String>,
) -> Result<(), ConfigError> {
    for (index, service) in config.services.iter().enumerate() {
        if let Err(why) = usable(&service.interface) {
            let path = [
                Step::Key("services"),
                Step::Index(index),
                Step::Key("interface"),
            ];
            return Err(source.fail(&path, format!("services[{index}].interface: {why}")));
        }
    }
    Ok(())
}

pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("{name:?} must be 1 to {MAX_NAME} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{name:?} has {bad:?}; use letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

pub(super) fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_INTERFACE_NAME {
        return Err(format!("{name:?} must be 1 to {MAX_INTERFACE_NAME} bytes"));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    Ok(())
}

/// Parses a VIP: a unicast IPv4 or IPv6 address a host could own.
fn parse_vip(text: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = text
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address"))?;
    let unusable = match ip {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() || v4.is_broadcast() {
                Some("is not a host address")
            } else if v4.is_multicast() {
                Some("is a multicast address")
            } else if v4.is_loopback() {
                Some("is a loopback address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                Some("is not a host address")
            } else if v6.is_multicast() {
                Some("is a multicast address")
            } else if v6.is_loopback() {
                Some("is a loopback address")
            } else if v6.to_ipv4_mapped().is_some() {
                Some("is an IPv4-mapped address; write the IPv4 address")
            } else {
                None
            }
        }
    };
    match unusable {
        Some(why) => Err(format!("{ip} {why}")),
        None => Ok(ip),
    }
}

/// Reads an `export` value: `false` (`None`), or `{"table": 100, "what":
/// "owned", "metric": 0}`. The error holds the path from `export` down.
pub(super) fn parse_export(value: &Value) -> Result<Option<Export>, (Vec<Step<'static>>, String)> {
    parse_export_value(value).map_err(|(below, why)| {
        let mut path = vec![Step::Key("export")];
        path.extend(below.map(Step::Key));
        (path, why)
    })
}

fn parse_export_value(value: &Value) -> Result<Option<Export>, (Option<&'static str>, String)> {
    match value {
        Value::Bool(false) => return Ok(None),
        Value::Object(_) => {}
        _ => {
            return Err((
                None,
                format!("{value} is neither false nor a table to export to ({{\"table\": 100}})"),
            ))
        }
    }
    let raw = RawExport::deserialize(value).map_err(|e| (None, e.to_string()))?;
    let table = match u32::try_from(raw.table) {
        Ok(table) if !matches!(table, 0 | 253..=255) => table,
        _ => {
            return Err((
                Some("table"),
                format!(
                    "{} is not a table of its own: 1 to 252 or 256 to 4294967295 (253, 254 and \
                     255 are the kernel's default, main and local tables)",
                    raw.table
                ),
            ))
        }
    };
    let metric = u32::try_from(raw.metric.unwrap_or(0))
        .map_err(|_| (Some("metric"), "is over 4294967295".to_string()))?;
    Ok(Some(Export {
        table,
        what: raw.what.unwrap_or(ExportWhat::Owned),
        metric,
    }))
}

#[cfg(test)]
mod tests {

    use super::super::read::parse_error as error;
    use super::*;

    #[test]
    fn macs_interface_virtual_or_given() {
        let config = parse(
            r#"{"node": "a", "cluster": "lab", "mac": "virtual", "services": [
                {"name": "web", "ip": "192.0.2.200", "interface": "eth0"},
                {"name": "db", "ip": "192.0.2.201", "interface": "eth0", "mac": "interface"},
                {"name": "dns", "ip": "192.0.2.202", "interface": "eth0", "mac": "02:00:5E:10:00:01"}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(config.mac, MacChoice::Virtual);
        let resolved: Vec<Option<EthernetAddress>> = config
            .services
            .iter()
            .map(|s| {
                s.mac
                    .unwrap_or(config.mac)
                    .resolve(&config.cluster, &s.name)
            })
            .collect();
        assert_eq!(
            resolved,
            [
                Some(virtual_mac("lab", "web")),
                None,
                Some(EthernetAddress([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]))
            ]
        );
        // The default is the interface's MAC; check-config prints choices.
        let plain = parse(r#"{"node": "a"}"#, None).unwrap();
        assert_eq!(plain.mac, MacChoice::Interface);
        let printed = serde_json::to_value(&config).unwrap();
        assert_eq!(printed["mac"], "virtual");
        assert_eq!(printed["services"][2]["mac"], "02:00:5e:10:00:01");
    }

    #[test]
    fn the_virtual_mac_is_fixed_by_cluster_and_service_name() {
        // Part of the protocol: nodes of different versions must agree.
        assert_eq!(virtual_mac("l2vip", "web").to_string(), "4a:bf:53:03:d7:fd");
        assert_ne!(virtual_mac("l2vip", "web"), virtual_mac("l2vip", "web6"));
        assert_ne!(virtual_mac("a", "bc"), virtual_mac("ab", "c"));
        for (cluster, name) in [("l2vip", "web"), ("x", "y"), ("lab", "gateway6")] {
            let mac = virtual_mac(cluster, name);
            assert_eq!(mac.0[0] & 3, 2, "locally administered unicast: {}", mac);
        }
    }

    #[test]
    fn bad_macs_are_refused_with_the_reason() {
        let cases = [
            (
                r#""mac": "hardware""#,
                "mac: \"hardware\" is not \"interface\"",
            ),
            (
                r#""mac": "01:00:5e:00:00:01""#,
                "mac: \"01:00:5e:00:00:01\" is not a unicast MAC",
            ),
            (r#""mac": "00:00:00:00:00:00""#, "is not a unicast MAC"),
            (r#""mac": "02:00:5e:10:00""#, "is not \"interface\""),
            (r#""mac": "02:00:5e:10:00:01:02""#, "is not \"interface\""),
            (r#""mac": "2:0:5e:10:0:1""#, "is not \"interface\""),
        ];
        for (setting, message) in cases {
            let top = error(&format!(r#"{{"node": "a", {setting}}}"#));
            assert!(top.message.contains(message), "{setting}: {top}");
            let service = error(&format!(
                r#"{{"node": "a", "services": [{{"name": "w", "ip": "192.0.2.1", "interface": "e", {setting}}}]}}"#
            ));
            assert!(
                service.message.starts_with("services[0].mac: "),
                "{service}"
            );
        }
        let twice = error(
            r#"{"node": "a", "services": [
            {"name": "a", "ip": "192.0.2.1", "interface": "e", "mac": "02:00:00:00:00:01"},
            {"name": "b", "ip": "192.0.2.2", "interface": "e", "mac": "02:00:00:00:00:01"}]}"#,
        );
        assert_eq!(
            twice.message,
            "services[1].mac: 02:00:00:00:00:01 is already the MAC of services[0] (a)"
        );
        assert_eq!(twice.line, Some(3));
    }

    #[test]
    fn an_interface_carries_at_most_the_nics_filter_of_macs() {
        let services = |count: usize, interface: &dyn Fn(usize) -> &'static str| {
            (0..count)
                .map(|i| {
                    format!(
                        r#"{{"name": "s{i}", "ip": "192.0.2.{}", "interface": "{}"}}"#,
                        i + 1,
                        interface(i)
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let text =
            |list: String| format!(r#"{{"node": "a", "mac": "virtual", "services": [{list}]}}"#);
        assert!(parse(&text(services(MAX_VIRTUAL_MACS, &|_| "eth0")), None).is_ok());
        // Two interfaces: the bound is per interface.
        let split = services(2 * MAX_VIRTUAL_MACS, &|i| {
            if i % 2 == 0 {
                "eth0"
            } else {
                "eth1"
            }
        });
        assert!(parse(&text(split), None).is_ok());
        let over = error(&text(services(MAX_VIRTUAL_MACS + 1, &|_| "eth0")));
        assert!(
            over.message.starts_with(
                "services[16].mac: more than 16 services with a MAC of their own on eth0"
            ),
            "{over}"
        );
    }

    #[test]
    fn export_global_per_service_or_off() {
        let config = parse(
            r#"{"node": "a", "export": {"table": 100}, "services": [
                {"name": "web", "ip": "192.0.2.200", "interface": "eth0"},
                {"name": "far", "ip": "198.51.100.7", "interface": "eth0", "answer": false,
                 "export": {"table": 1000, "what": "eligible", "metric": 20}},
                {"name": "lan", "ip": "192.0.2.201", "interface": "eth0", "export": false}]}"#,
            None,
        )
        .unwrap();
        let global = Export {
            table: 100,
            what: ExportWhat::Owned,
            metric: 0,
        };
        assert_eq!(config.export, Some(global));
        let exports: Vec<Option<Export>> = config
            .services
            .iter()
            .map(|s| s.export(config.export))
            .collect();
        assert_eq!(
            exports,
            vec![
                Some(global),
                Some(Export {
                    table: 1000,
                    what: ExportWhat::Eligible,
                    metric: 20
                }),
                None
            ]
        );
        assert_eq!(
            config.services.iter().map(|s| s.answer).collect::<Vec<_>>(),
            vec![true, false, true]
        );
        // check-config prints them back as they were given.
        let printed = serde_json::to_value(&config).unwrap();
        assert_eq!(printed["export"]["what"], "owned");
        assert_eq!(printed["services"][1]["answer"], false);
        assert_eq!(printed["services"][1]["export"]["table"], 1000);
        assert_eq!(printed["services"][2]["export"], false);
        assert!(printed["services"][0].get("answer").is_none());
        // Off by default.
        let plain = parse(r#"{"node": "a"}"#, None).unwrap();
        assert_eq!(plain.export, None);
        // An unanswered VIP has no MAC, so the global "virtual" skips it.
        let routed = parse(
            r#"{"node": "a", "mac": "virtual", "services": [
                {"name": "far", "ip": "198.51.100.7", "interface": "eth0", "answer": false}]}"#,
            None,
        );
        assert!(routed.is_ok());
    }

    #[test]
    fn bad_exports_are_refused_with_the_key() {
        let cases = [
            (
                r#""export": true"#,
                "export: true is neither false nor a table",
                None,
            ),
            (
                r#""export": {"what": "owned"}"#,
                "export: missing field `table`",
                None,
            ),
            (
                r#""export": {"table": 254}"#,
                "export.table: 254 is not a table of its own",
                None,
            ),
            (
                r#""export": {"table": 0}"#,
                "export.table: 0 is not a table of its own",
                None,
            ),
            (
                r#""export": {"table": 4294967296}"#,
                "export.table: 4294967296 is not",
                None,
            ),
            (
                r#""export": {"table": 100, "what": "all"}"#,
                "unknown variant `all`",
                None,
            ),
            (
                r#""export": {"table": 100, "metric": 4294967296}"#,
                "export.metric: is over",
                None,
            ),
            (
                r#""export": {"table": 100, "proto": 76}"#,
                "unknown field `proto`",
                None,
            ),
            (
                r#""answer": false, "mac": "virtual""#,
                "mac: a service with \"answer\": false",
                Some(()),
            ),
        ];
        for (setting, message, service_only) in cases {
            if service_only.is_none() {
                let top = error(&format!("{{\"node\": \"a\",\n {setting}}}"));
                assert!(top.message.contains(message), "{setting}: {top}");
                assert_eq!(top.line, Some(2), "{setting}: {top}");
            }
            let service = error(&format!(
                r#"{{"node": "a", "services": [{{"name": "w", "ip": "192.0.2.1", "interface": "e", {setting}}}]}}"#
            ));
            assert!(service.message.starts_with("services[0]."), "{service}");
            assert!(
                service
                    .message
                    .contains(message.trim_start_matches("export")),
                "{setting}: {service}"
            );
        }
    }

    #[test]
    fn missing_interface() {
        let text = "{\"node\": \"a\", \"services\": [\n{\"name\": \"a\", \"ip\": \"192.0.2.1\",\n \"interface\": \"eth9\"}]}";
        let (config, source) = parse_source(text, None).unwrap();
        assert!(check_interfaces(&source, &config, |_| Ok(())).is_ok());
        let error = check_interfaces(&source, &config, |name| {
            Err(format!("no interface named {name:?} on this system"))
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 3: services[0].interface: no interface named \"eth9\" on this system"
        );
    }
}
