//! From what the file says to the model: every value checked against its
//! range, every default filled in, every error naming its key (spelled
//! once, as a path: the message's name and the line come from it).

use std::collections::HashMap;
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;

use super::locate::Step;
use super::read::dotted;
use super::schema::{RawConfig, RawHeartbeat, RawHooks, RawMulticast, RawService};
use super::service::{
    check_command, check_interface_name, check_name, check_service, parse_export,
};
use super::*;

/// Turns a path and a message into an error with its line.
pub(super) type Fail<'a> = dyn Fn(&[Step<'_>], String) -> ConfigError + 'a;

/// An error about the key at `path`: "KEY: why".
fn at(fail: &Fail<'_>, path: &[Step<'_>], why: impl Display) -> ConfigError {
    fail(path, format!("{}: {why}", dotted(path)))
}

/// Why `value` is not in `range`, if it is not: "V is outside A..B", or
/// "V is over B" for a range from zero; `note` follows in parentheses.
pub(super) fn out_of_range<T: Copy + PartialOrd + Display + Default>(
    value: T,
    range: &RangeInclusive<T>,
    note: &str,
) -> Option<String> {
    if range.contains(&value) {
        return None;
    }
    let (start, end) = (*range.start(), *range.end());
    let mut why = if start == T::default() {
        format!("{value} is over {end}")
    } else {
        format!("{value} is outside {start}..{end}")
    };
    if !note.is_empty() {
        why.push_str(&format!(" ({note})"));
    }
    Some(why)
}

/// The value of the key at `path`, or `default` when the file has none;
/// either must lie in `range` (see `out_of_range` for the message).
fn ranged<T: Copy + PartialOrd + Display + Default>(
    fail: &Fail<'_>,
    path: &[Step<'_>],
    value: Option<T>,
    default: T,
    range: RangeInclusive<T>,
    note: &str,
) -> Result<T, ConfigError> {
    let value = value.unwrap_or(default);
    match out_of_range(value, &range, note) {
        Some(why) => Err(at(fail, path, why)),
        None => Ok(value),
    }
}

/// `key` below `section`.
fn key<'k>(section: &'k str, key: &'k str) -> [Step<'k>; 2] {
    [Step::Key(section), Step::Key(key)]
}

/// Validates what was read into the model; `services` are the file's,
/// each read already.
pub(super) fn build(
    raw: &RawConfig,
    services: &[RawService],
    hostname: Option<&str>,
    fail: &Fail<'_>,
) -> Result<Config, ConfigError> {
    let node = node_name(raw, hostname, fail)?;
    let cluster = raw.cluster.clone().unwrap_or_else(|| "l2vip".to_string());
    check_name(&cluster).map_err(|why| at(fail, &[Step::Key("cluster")], why))?;
    let priority = ranged(
        fail,
        &[Step::Key("priority")],
        raw.priority,
        100,
        1..=255,
        "",
    )? as u8;
    let heartbeat = parse_heartbeat(&raw.heartbeat, fail)?;
    let announce = parse_announce(raw, fail)?;
    let services = build_services(services, fail)?;
    let mac = match &raw.mac {
        None => MacChoice::Interface,
        Some(text) => MacChoice::parse(text).map_err(|why| at(fail, &[Step::Key("mac")], why))?,
    };
    let export = match &raw.export {
        None => None,
        Some(value) => parse_export(value).map_err(|(path, why)| at(fail, &path, why))?,
    };
    check_macs(&services, mac, &cluster).map_err(|(index, why)| {
        let path = [Step::Key("services"), Step::Index(index), Step::Key("mac")];
        at(fail, &path, why)
    })?;
    let nice = ranged(
        fail,
        &[Step::Key("nice")],
        raw.nice,
        i64::from(DEFAULT_NICE),
        -20..=0,
        "0 leaves the threads as started",
    )? as i32;
    let linger_s = ranged(
        fail,
        &[Step::Key("linger_s")],
        raw.linger_s,
        DEFAULT_LINGER_S,
        0..=MAX_LINGER_S,
        "",
    )?;
    Ok(Config {
        node,
        cluster,
        priority,
        mode: raw.mode.unwrap_or(Mode::Single),
        preempt: raw.preempt.unwrap_or(false),
        heartbeat,
        announce,
        control: parse_control(raw, fail)?,
        bind: raw.bind.unwrap_or(Bind::Route),
        mac,
        export,
        linger_s,
        hooks: parse_hooks(&raw.hooks, &services, fail)?,
        nice,
        user: parse_user(raw, fail)?,
        state_file: parse_state_file(raw, fail)?,
        services,
    })
}

/// The user to run as after start-up, if any.
fn parse_user(raw: &RawConfig, fail: &Fail<'_>) -> Result<Option<String>, ConfigError> {
    if let Some(user) = &raw.user {
        check_name(user).map_err(|why| at(fail, &[Step::Key("user")], why))?;
    }
    Ok(raw.user.clone())
}

/// Where services added at run time are kept: an absolute path, or none.
fn parse_state_file(raw: &RawConfig, fail: &Fail<'_>) -> Result<Option<String>, ConfigError> {
    match &raw.state_file {
        Some(path) if !path.starts_with('/') => Err(at(
            fail,
            &[Step::Key("state_file")],
            format!("{path:?} must be an absolute path (or null)"),
        )),
        other => Ok(other.clone()),
    }
}

/// The announcements: rounds when a VIP is taken, their spacing, refresh.
fn parse_announce(raw: &RawConfig, fail: &Fail<'_>) -> Result<Announce, ConfigError> {
    let defaults = Announce::default();
    Ok(Announce {
        count: ranged(
            fail,
            &key("announce", "count"),
            raw.announce.count,
            defaults.count,
            0..=100,
            "",
        )?,
        interval_ms: ranged(
            fail,
            &key("announce", "interval_ms"),
            raw.announce.interval_ms,
            defaults.interval_ms,
            100..=60_000,
            "",
        )?,
        refresh_s: ranged(
            fail,
            &key("announce", "refresh_s"),
            raw.announce.refresh_s,
            defaults.refresh_s,
            0..=86_400,
            "0 turns refresh off",
        )?,
    })
}

/// The node's name: the file's, or the hostname.
fn node_name(
    raw: &RawConfig,
    hostname: Option<&str>,
    fail: &Fail<'_>,
) -> Result<String, ConfigError> {
    match (&raw.node, hostname) {
        (Some(node), _) => {
            check_name(node).map_err(|why| at(fail, &[Step::Key("node")], why))?;
            Ok(node.clone())
        }
        (None, Some(host)) => {
            check_name(host).map_err(|why| {
                fail(
                    &[],
                    format!("node: not set, and the hostname {host:?} cannot name a node ({why})"),
                )
            })?;
            Ok(host.to_string())
        }
        (None, None) => Err(fail(
            &[],
            "node: not set, and the hostname is unknown".into(),
        )),
    }
}

/// Checks each service, and that no two share a name or an address.
fn build_services(
    raw_services: &[RawService],
    fail: &Fail<'_>,
) -> Result<Vec<Service>, ConfigError> {
    let mut services = Vec::with_capacity(raw_services.len());
    let mut names: HashMap<&str, usize> = HashMap::new();
    // A link-local VIP is one per interface: keyed with its interface.
    let mut addresses: HashMap<(IpAddr, &str), usize> = HashMap::new();
    // Many services share few interfaces: one name each.
    let mut interfaces: Vec<Arc<str>> = Vec::new();
    for (index, service) in raw_services.iter().enumerate() {
        let mut parsed = check_service(service).map_err(|(below, why)| {
            let mut path = vec![Step::Key("services"), Step::Index(index)];
            path.extend(&below);
            at(fail, &path, why)
        })?;
        let path = |key| [Step::Key("services"), Step::Index(index), Step::Key(key)];
        if let Some(first) = names.insert(&service.name, index) {
            let why = format!(
                "{:?} is already the name of services[{first}]",
                service.name
            );
            return Err(at(fail, &path("name"), why));
        }
        let scope = if is_link_local(parsed.ip) {
            service.interface.as_str()
        } else {
            ""
        };
        if let Some(first) = addresses.insert((parsed.ip, scope), index) {
            let on = if scope.is_empty() {
                String::new()
            } else {
                format!(" on {scope}")
            };
            let why = format!(
                "{} is already the address of services[{first}]{on}",
                parsed.ip
            );
            return Err(at(fail, &path("ip"), why));
        }
        match interfaces.iter().find(|i| **i == parsed.interface) {
            Some(known) => parsed.interface = Arc::clone(known),
            None => interfaces.push(Arc::clone(&parsed.interface)),
        }
        services.push(parsed);
    }
    Ok(services)
}

/// The hooks: commands, the group the node's role follows (services of
/// this file), and how long each may run.
fn parse_hooks(
    raw: &RawHooks,
    services: &[Service],
    fail: &Fail<'_>,
) -> Result<Hooks, ConfigError> {
    for (name, command) in [
        ("on_acquire", &raw.on_acquire),
        ("on_release", &raw.on_release),
        ("on_primary", &raw.on_primary),
        ("on_backup", &raw.on_backup),
        ("on_fault", &raw.on_fault),
    ] {
        if let Some(command) = command {
            check_command(command).map_err(|why| at(fail, &key("hooks", name), why))?;
        }
    }
    if let Some(unknown) = raw
        .group
        .iter()
        .find(|name| !services.iter().any(|s| *s.name == ***name))
    {
        let why = format!("no service named {unknown:?} in this file");
        return Err(at(fail, &key("hooks", "group"), why));
    }
    Ok(Hooks {
        on_acquire: raw.on_acquire.clone(),
        on_release: raw.on_release.clone(),
        on_primary: raw.on_primary.clone(),
        on_backup: raw.on_backup.clone(),
        on_fault: raw.on_fault.clone(),
        group: raw.group.clone(),
        timeout_ms: ranged(
            fail,
            &key("hooks", "timeout_ms"),
            raw.timeout_ms,
            5000,
            100..=600_000,
            "",
        )?,
    })
}

/// The control socket: where, for whom, and how long an idle client stays.
fn parse_control(raw: &RawConfig, fail: &Fail<'_>) -> Result<Control, ConfigError> {
    let socket = raw
        .control
        .socket
        .clone()
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string());
    if !socket.starts_with('/') || socket.len() > 107 {
        let why = format!("{socket:?} must be an absolute path of at most 107 bytes");
        return Err(at(fail, &key("control", "socket"), why));
    }
    let idle_s = ranged(
        fail,
        &key("control", "idle_s"),
        raw.control.idle_s,
        60,
        1..=86_400,
        "",
    )?;
    if let Some(group) = &raw.control.group {
        check_name(group).map_err(|why| at(fail, &key("control", "group"), why))?;
    }
    Ok(Control {
        socket,
        group: raw.control.group.clone(),
        idle_s,
    })
}

/// The heartbeat: port, timers, peers or group, and the key.
fn parse_heartbeat(raw: &RawHeartbeat, fail: &Fail<'_>) -> Result<Heartbeat, ConfigError> {
    let port = raw.port.unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(at(fail, &key("heartbeat", "port"), "0 is not a port"));
    }
    let bind = match &raw.bind {
        None => None,
        Some(text) => Some(text.parse::<IpAddr>().map_err(|_| {
            let why = format!("{text:?} is not an IPv4 or IPv6 address");
            at(fail, &key("heartbeat", "bind"), why)
        })?),
    };
    let interval_ms = ranged(
        fail,
        &key("heartbeat", "interval_ms"),
        raw.interval_ms,
        1000,
        10..=60_000,
        "",
    )?;
    let lease_ms = raw.lease_ms.unwrap_or(10 * interval_ms.max(1000));
    if lease_ms < 3 * interval_ms || lease_ms > 600_000 {
        let why = format!(
            "{lease_ms} must be at least 3 x interval_ms ({}) and at most 600000",
            3 * interval_ms
        );
        return Err(at(fail, &key("heartbeat", "lease_ms"), why));
    }
    let peers = parse_peers(&raw.peers, port, fail)?;
    let multicast = match &raw.multicast {
        None => None,
        Some(multicast) => Some(parse_multicast(multicast, fail)?),
    };
    if raw.key_file.as_deref() == Some("") {
        return Err(at(fail, &key("heartbeat", "key_file"), "empty path"));
    }
    // Unauthenticated heartbeats let anyone on the LAN move the VIPs: never
    // by default, only when the file says so.
    let alone = peers.is_empty() && multicast.is_none();
    if !alone && raw.key_file.is_none() && !raw.insecure {
        let which = if raw.peers.is_empty() {
            "multicast"
        } else {
            "peers"
        };
        return Err(fail(
            &key("heartbeat", which),
            "heartbeat: peers or a multicast group but no heartbeat.key_file: anyone on the \
             LAN could move the VIPs; give every node the same key file, or set \
             heartbeat.insecure to true to run without one"
                .into(),
        ));
    }
    Ok(Heartbeat {
        port,
        bind,
        interval_ms,
        lease_ms,
        peers,
        multicast,
        key_file: raw.key_file.clone(),
        insecure: raw.insecure,
    })
}

/// The unicast peers: at most `MAX_PEERS`, none twice.
fn parse_peers(
    texts: &[String],
    port: u16,
    fail: &Fail<'_>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    if texts.len() > MAX_PEERS {
        let why = format!("{} peers, at most {MAX_PEERS}", texts.len());
        return Err(at(fail, &key("heartbeat", "peers"), why));
    }
    let mut peers = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let path = [Step::Key("heartbeat"), Step::Key("peers"), Step::Index(i)];
        let peer = parse_peer(text, port).map_err(|why| at(fail, &path, why))?;
        if peers.contains(&peer) {
            return Err(at(fail, &path, format!("{peer} is listed twice")));
        }
        peers.push(peer);
    }
    Ok(peers)
}

/// The multicast group and the interface it is joined on.
fn parse_multicast(raw: &RawMulticast, fail: &Fail<'_>) -> Result<Multicast, ConfigError> {
    let path = |name| {
        [
            Step::Key("heartbeat"),
            Step::Key("multicast"),
            Step::Key(name),
        ]
    };
    let group = raw
        .group
        .parse::<IpAddr>()
        .ok()
        .filter(IpAddr::is_multicast)
        .ok_or_else(|| {
            let why = format!("{:?} is not a multicast address", raw.group);
            at(fail, &path("group"), why)
        })?;
    check_interface_name(&raw.interface).map_err(|why| at(fail, &path("interface"), why))?;
    Ok(Multicast {
        group,
        interface: raw.interface.clone(),
    })
}

/// A peer: "192.0.2.2", "192.0.2.2:7947", "2001:db8::2" or "[2001:db8::2]:7947".
fn parse_peer(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let address = if let Ok(ip) = text.parse::<IpAddr>() {
        SocketAddr::new(ip, default_port)
    } else {
        text.parse::<SocketAddr>()
            .map_err(|_| format!("{text:?} is not an address or address:port"))?
    };
    let ip = address.ip();
    if ip.is_unspecified() || ip.is_multicast() || address.port() == 0 {
        return Err(format!(
            "{text:?} is not a unicast peer (use heartbeat.multicast for groups)"
        ));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::read::parse_error as error;
    use super::*;

    #[test]
    fn minimal_and_defaults() {
        let config = parse(
            r#"{"services": [{"name": "web", "ip": "192.0.2.200", "interface": "eth0"}]}"#,
            Some("r1"),
        )
        .unwrap();
        assert_eq!(config.node, "r1");
        assert_eq!(config.announce, Announce::default());
        assert_eq!(config.announce.interval(), Duration::from_millis(1100));
        assert_eq!(config.announce.refresh(), Some(Duration::from_secs(60)));
        assert_eq!(
            config.services[0].ip,
            "192.0.2.200".parse::<IpAddr>().unwrap()
        );
        let off = parse(r#"{"node": "a", "announce": {"refresh_s": 0}}"#, None).unwrap();
        assert_eq!(off.announce.refresh(), None);
    }

    #[test]
    fn a_link_local_vip_is_one_per_interface_with_the_interfaces_mac() {
        let config = parse(
            r#"{"node": "a", "cluster": "lab", "mac": "virtual", "export": {"table": 100},
                "services": [
                {"name": "lan6", "ip": "fe80::1", "interface": "eth0"},
                {"name": "wan6", "ip": "fe80::1", "interface": "eth1"},
                {"name": "web", "ip": "192.0.2.200", "interface": "eth0"}]}"#,
            None,
        )
        .unwrap();
        let lan6 = &config.services[0];
        assert!(lan6.link_local() && !config.services[2].link_local());
        assert_eq!(lan6.mac_choice(config.mac), MacChoice::Interface);
        assert_eq!(
            config.services[2].mac_choice(config.mac),
            MacChoice::Virtual
        );
        assert_eq!(lan6.export(config.export), None, "nothing beyond its link");
        assert!(config.services[2].export(config.export).is_some());
        assert!(check_macs(&config.services, config.mac, &config.cluster).is_ok());
        let twice = error(
            r#"{"services": [{"name": "a", "ip": "fe80::1", "interface": "eth0"},
                             {"name": "b", "ip": "fe80::1", "interface": "eth0"}]}"#,
        );
        assert_eq!(
            twice.message,
            "services[1].ip: fe80::1 is already the address of services[0] on eth0"
        );
        let mac = error(
            r#"{"services": [{"name": "a", "ip": "fe80::1", "interface": "eth0", "mac": "virtual"}]}"#,
        );
        assert!(
            mac.message
                .starts_with("services[0].mac: a link-local VIP is the owner's own address"),
            "{mac}"
        );
    }

    #[test]
    fn traffic_health_and_hooks() {
        let config = parse(
            r#"{"node": "a", "services": [
                {"name": "web", "ip": "192.0.2.200", "interface": "eth0",
                 "health": {"tcp": "127.0.0.1:80"}},
                {"name": "db", "ip": "2001:db8::200", "interface": "eth0", "bind": "none",
                 "health": {"exec": "test -f /run/db.ok", "interval_ms": 2000,
                            "timeout_ms": 1500, "rise": 1, "fall": 1}}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(config.bind, Bind::Route);
        assert_eq!(config.linger_s, DEFAULT_LINGER_S);
        assert_eq!(config.nice, DEFAULT_NICE);
        assert_eq!(config.hooks.timeout(), Duration::from_secs(5));
        let web = config.services[0].health.as_ref().unwrap();
        assert_eq!(web.check, Check::Tcp("127.0.0.1:80".parse().unwrap()));
        assert_eq!(
            (web.interval_ms, web.timeout_ms, web.rise, web.fall),
            (1000, 500, 2, 3)
        );
        assert_eq!(config.services[1].bind, Some(Bind::None));
        let db = config.services[1].health.as_ref().unwrap();
        assert_eq!(db.check, Check::Exec("test -f /run/db.ok".into()));
        assert_eq!(
            (db.timeout(), db.rise, db.fall),
            (Duration::from_millis(1500), 1, 1)
        );
        // The normalized form reads back the same.
        let json = serde_json::to_string(&config.services[1]).unwrap();
        assert!(json.contains(r#""exec":"test -f /run/db.ok""#), "{json}");
        assert_eq!(
            service_from_json(serde_json::from_str(&json).unwrap()).unwrap(),
            config.services[1]
        );

        let both = error("{\"services\": [{\"name\": \"a\", \"ip\": \"192.0.2.1\", \"interface\": \"e\",\n \"health\": {\"tcp\": \"127.0.0.1:1\", \"exec\": \"true\"}}]}");
        assert_eq!(both.line, Some(2));
        assert!(
            both.message
                .starts_with("services[0].health.tcp: give exactly one"),
            "{both}"
        );
        let name = error(
            r#"{"services": [{"name": "a", "ip": "192.0.2.1", "interface": "e", "health": {"tcp": "localhost:80"}}]}"#,
        );
        assert!(name.message.contains("names are not resolved"), "{name}");
        let slow = error(
            r#"{"services": [{"name": "a", "ip": "192.0.2.1", "interface": "e", "health": {"exec": "true", "interval_ms": 200, "timeout_ms": 300}}]}"#,
        );
        assert!(
            slow.message.starts_with("services[0].health.timeout_ms:"),
            "{slow}"
        );
        let rise = error(
            r#"{"services": [{"name": "a", "ip": "192.0.2.1", "interface": "e", "health": {"exec": "true", "rise": 0}}]}"#,
        );
        assert!(
            rise.message
                .starts_with("services[0].health.rise: 0 is outside"),
            "{rise}"
        );
        let bind = error(r#"{"bind": "address"}"#);
        assert!(bind.message.contains("unknown variant `address`"), "{bind}");
        let linger = error(r#"{"linger_s": 7200}"#);
        assert_eq!(linger.message, "linger_s: 7200 is over 3600");
        let nice = error(r#"{"nice": 5}"#);
        assert_eq!(
            nice.message,
            "nice: 5 is outside -20..0 (0 leaves the threads as started)"
        );
        let hook = error(r#"{"hooks": {"on_acquire": " "}}"#);
        assert_eq!(hook.message, "hooks.on_acquire: empty command");
        let fault = error(r#"{"hooks": {"on_fault": ""}}"#);
        assert_eq!(fault.message, "hooks.on_fault: empty command");
        let group = error(r#"{"hooks": {"group": ["lan"]}}"#);
        assert_eq!(
            group.message,
            "hooks.group: no service named \"lan\" in this file"
        );
        let idle = error(r#"{"control": {"idle_s": 0}}"#);
        assert_eq!(idle.message, "control.idle_s: 0 is outside 1..86400");
        let timeout = error(r#"{"hooks": {"timeout_ms": 5}}"#);

        assert!(
            timeout
                .message
                .starts_with("hooks.timeout_ms: 5 is outside"),
            "{timeout}"
        );
    }

    #[test]
    fn rejects_values() {
        for (text, expect) in [
            (r#"{"node": ""}"#, "node: \"\" must be 1 to 64"),
            (r#"{"node": "a b"}"#, "node: \"a b\" has ' '"),
            (
                r#"{"announce": {"count": 101}}"#,
                "announce.count: 101 is over 100",
            ),
            (
                r#"{"announce": {"interval_ms": 5}}"#,
                "announce.interval_ms: 5 is outside",
            ),
            (
                r#"{"announce": {"refresh_s": 100000}}"#,
                "announce.refresh_s: 100000 is over",
            ),
            (
                r#"{"services": [{"name": "a", "ip": "224.0.0.1", "interface": "e"}]}"#,
                "multicast",
            ),
            (
                r#"{"services": [{"name": "a", "ip": "0.0.0.0", "interface": "e"}]}"#,
                "not a host address",
            ),
            (
                r#"{"services": [{"name": "a", "ip": "::1", "interface": "e"}]}"#,
                "loopback",
            ),
            (
                r#"{"services": [{"name": "a", "ip": "::ffff:192.0.2.1", "interface": "e"}]}"#,
                "IPv4-mapped",
            ),
            (
                r#"{"services": [{"name": "a", "ip": "192.0.2.1", "interface": "a-very-long-interface"}]}"#,
                "1 to 15 bytes",
            ),
            (
                r#"{"services": [{"name": "a", "ip": "192.0.2.1", "interface": "../x"}]}"#,
                "not a valid interface name",
            ),
            (
                r#"{"services": [{"name": "a", "ip": "192.0.2.1"}]}"#,
                "missing field `interface`",
            ),
            ("[]", "must be one JSON object"),
        ] {
            let message = error(text).to_string();
            assert!(message.contains(expect), "{text}: {message}");
        }
        assert!(parse("{}", Some("bad host!"))
            .unwrap_err()
            .message
            .contains("hostname"));
        assert!(parse("{}", None)
            .unwrap_err()
            .message
            .contains("hostname is unknown"));
    }

    #[test]
    fn cluster_settings() {
        let text = r#"{"node": "r1", "cluster": "lan", "priority": 150, "mode": "spread", "preempt": true,
            "heartbeat": {"port": 7000, "interval_ms": 100, "lease_ms": 500,
                          "peers": ["192.0.2.2", "192.0.2.3:7001", "2001:db8::2", "[2001:db8::3]:7002"],
                          "multicast": {"group": "239.255.76.47", "interface": "eth0"},
                          "key_file": "/etc/l2vip/key"},
            "services": [{"name": "a", "ip": "192.0.2.200", "interface": "eth0", "nodes": ["r1", "r2"]}]}"#;
        let config = parse(text, None).unwrap();
        assert_eq!((config.cluster.as_str(), config.priority), ("lan", 150));
        assert_eq!((config.mode, config.preempt), (Mode::Spread, true));
        let heartbeat = &config.heartbeat;
        assert_eq!(heartbeat.interval(), Duration::from_millis(100));
        assert_eq!(heartbeat.lease(), Duration::from_millis(500));
        let peers: Vec<String> = heartbeat.peers.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            peers,
            [
                "192.0.2.2:7000",
                "192.0.2.3:7001",
                "[2001:db8::2]:7000",
                "[2001:db8::3]:7002"
            ]
        );
        assert!(!heartbeat.is_alone());
        assert_eq!(config.services[0].nodes, ["r1", "r2"]);

        let defaults = parse("{\"node\": \"r1\"}", None).unwrap();
        assert_eq!(
            (defaults.cluster.as_str(), defaults.priority),
            ("l2vip", 100)
        );
        assert_eq!((defaults.mode, defaults.preempt), (Mode::Single, false));
        assert_eq!(defaults.heartbeat.port, DEFAULT_PORT);
        assert_eq!(defaults.heartbeat.interval(), Duration::from_secs(1));
        assert_eq!(defaults.heartbeat.lease(), Duration::from_secs(10));
        assert!(defaults.heartbeat.is_alone());
        let slow = parse(
            r#"{"node": "r1", "heartbeat": {"interval_ms": 5000}}"#,
            None,
        )
        .unwrap();
        assert_eq!(slow.heartbeat.lease(), Duration::from_secs(50));
    }

    #[test]
    fn rejects_cluster_settings() {
        for (text, expect) in [
            (r#"{"priority": 0}"#, "priority: 0 is outside 1..255"),
            (r#"{"priority": 256}"#, "priority: 256 is outside"),
            (r#"{"mode": "random"}"#, "unknown variant `random`"),
            (r#"{"cluster": "a b"}"#, "cluster: \"a b\" has ' '"),
            (r#"{"heartbeat": {"port": 0}}"#, "heartbeat.port: 0"),
            (
                r#"{"heartbeat": {"interval_ms": 5}}"#,
                "heartbeat.interval_ms: 5 is outside",
            ),
            (
                r#"{"heartbeat": {"interval_ms": 100, "lease_ms": 200}}"#,
                "at least 3 x interval_ms (300)",
            ),
            (
                r#"{"heartbeat": {"peers": ["192.0.2.1", "192.0.2.1:7947"]}}"#,
                "heartbeat.peers[1]: 192.0.2.1:7947 is listed twice",
            ),
            (
                r#"{"heartbeat": {"peers": ["nohost"]}}"#,
                "heartbeat.peers[0]: \"nohost\" is not an address",
            ),
            (
                r#"{"heartbeat": {"peers": ["239.1.1.1"]}}"#,
                "not a unicast peer",
            ),
            (
                r#"{"heartbeat": {"multicast": {"group": "192.0.2.1", "interface": "eth0"}}}"#,
                "not a multicast address",
            ),
            (r#"{"heartbeat": {"bind": "host"}}"#, "heartbeat.bind"),
            (
                r#"{"heartbeat": {"key_file": ""}}"#,
                "heartbeat.key_file: empty path",
            ),
            (r#"{"heartbeat": {"lease": 5}}"#, "unknown field `lease`"),
            (
                r#"{"services": [{"name": "a", "ip": "192.0.2.1", "interface": "e", "nodes": ["a b"]}]}"#,
                "services[0].nodes[0]",
            ),
        ] {
            let message = error(text).to_string();
            assert!(message.contains(expect), "{text}: {message}");
        }
    }

    #[test]
    fn peers_without_a_key_need_the_file_to_say_insecure() {
        let service = r#""services": [{"name": "web", "ip": "192.0.2.200", "interface": "eth0"}]"#;
        let with =
            |heartbeat: &str| format!(r#"{{"node": "r1", "heartbeat": {heartbeat}, {service}}}"#);
        for heartbeat in [
            r#"{"peers": ["192.0.2.12"]}"#,
            r#"{"multicast": {"group": "239.255.76.47", "interface": "eth0"}}"#,
            r#"{"peers": ["192.0.2.12"], "insecure": false}"#,
        ] {
            let message = parse(&with(heartbeat), None).unwrap_err().to_string();
            assert!(
                message.starts_with(
                    "line 1: heartbeat: peers or a multicast group but no heartbeat.key_file"
                ) && message.contains("heartbeat.insecure"),
                "{message}"
            );
        }
        for heartbeat in [
            r#"{"peers": ["192.0.2.12"], "insecure": true}"#,
            r#"{"peers": ["192.0.2.12"], "key_file": "/etc/l2vip/key"}"#,
            r#"{}"#,
        ] {
            assert!(parse(&with(heartbeat), None).is_ok(), "{heartbeat}");
        }
    }
}
