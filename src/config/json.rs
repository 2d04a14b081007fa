//! Reading a configuration: JSON (or UCI, turned into the same JSON) into
//! the model, every value checked, every error naming its key and line.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::locate::{line_of, Step};
use super::uci;
use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: Option<String>,
    cluster: Option<String>,
    priority: Option<u64>,
    mode: Option<Mode>,
    preempt: Option<bool>,
    #[serde(default)]
    heartbeat: RawHeartbeat,
    #[serde(default)]
    announce: RawAnnounce,
    #[serde(default)]
    control: RawControl,
    /// Absent: the default path; null: no state file.
    #[serde(default = "default_state_file")]
    state_file: Option<String>,
    bind: Option<Bind>,
    mac: Option<String>,
    export: Option<Value>,
    linger_s: Option<u64>,
    #[serde(default)]
    hooks: RawHooks,
    user: Option<String>,
    nice: Option<i64>,
    /// Read as values, then each as a `RawService` (as `add` and the
    /// state file read them): one deserializer for services, not two.
    #[serde(default)]
    services: Vec<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    on_acquire: Option<String>,
    on_release: Option<String>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    tcp: Option<String>,
    exec: Option<String>,
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    rise: Option<u32>,
    fall: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAnnounce {
    count: Option<u32>,
    interval_ms: Option<u64>,
    refresh_s: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHeartbeat {
    port: Option<u16>,
    bind: Option<String>,
    interval_ms: Option<u64>,
    lease_ms: Option<u64>,
    #[serde(default)]
    peers: Vec<String>,
    multicast: Option<RawMulticast>,
    key_file: Option<String>,
    #[serde(default)]
    insecure: bool,
}

fn default_state_file() -> Option<String> {
    Some(DEFAULT_STATE_FILE.to_string())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<String>,
    group: Option<String>,
    idle_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMulticast {
    group: String,
    interface: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    ip: String,
    interface: String,
    #[serde(default)]
    nodes: Vec<String>,
    bind: Option<Bind>,
    mac: Option<String>,
    answer: Option<bool>,
    export: Option<Value>,
    health: Option<RawHealth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExport {
    table: u64,
    what: Option<ExportWhat>,
    metric: Option<u64>,
}

/// Reads an `export` value: `false` (`None`), or `{"table": 100, "what":
/// "owned", "metric": 0}`. The error holds the path from `export` down.
fn parse_export(value: &Value) -> Result<Option<Export>, (Vec<Step<'static>>, String)> {
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

/// Reads a configuration file (JSON or UCI); the error names the file.
pub fn load(path: &Path, hostname: Option<&str>) -> Result<(Config, Source), LoadError> {
    let text = read_text(path).map_err(|e| LoadError::new(path, ConfigError::general(e)))?;
    parse_source(&text, hostname).map_err(|e| LoadError::new(path, e))
}

fn read_text(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut text = String::new();
    let read = file.take(MAX_FILE_LEN + 1).read_to_string(&mut text);
    match read {
        Ok(len) if len as u64 > MAX_FILE_LEN => Err(format!("larger than {MAX_FILE_LEN} bytes")),
        Ok(_) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err("not UTF-8 text".into()),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

/// Where a configuration was read from, to point errors at its lines.
#[derive(Debug, Clone)]
pub enum Source {
    /// A JSON file's text.
    Json(String),
    /// A UCI file: where each value came from.
    Uci(uci::Places),
}

impl Source {
    /// An error about the value at `path`, with its line (and, for UCI,
    /// its section and option).
    pub fn fail(&self, path: &[Step<'_>], message: String) -> ConfigError {
        match self {
            Source::Json(text) => ConfigError {
                line: line_of(text, path),
                message,
            },
            Source::Uci(places) => places.fail(path, message),
        }
    }
}

const NOT_A_CONFIG: &str =
    "the configuration must be one JSON object ({ ... }) or OpenWrt UCI `config` sections";

/// Parses and validates a configuration, JSON or UCI (told apart by the
/// first character: `{` is JSON). `hostname` names the node when the file
/// does not.
pub fn parse(text: &str, hostname: Option<&str>) -> Result<Config, ConfigError> {
    parse_source(text, hostname).map(|(config, _)| config)
}

/// As `parse`, also returning the `Source` for later checks.
pub fn parse_source(text: &str, hostname: Option<&str>) -> Result<(Config, Source), ConfigError> {
    let not_a_config = || ConfigError {
        line: None,
        message: NOT_A_CONFIG.into(),
    };
    let start = text.trim_start();
    // Text to a value, then the value to the model: one deserializer for
    // the model, shared with UCI files, `add` and the state file (a second,
    // from text, costs ~18 KB of router binary). Syntax errors carry their
    // line from the first step; errors of the second are traced to their key.
    let (value, source) = if start.starts_with('{') {
        let value = serde_json::from_str::<Value>(text).map_err(|e| {
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = e.to_string();
            let message = message
                .strip_suffix(&suffix)
                .unwrap_or(&message)
                .to_string();
            ConfigError {
                line: (e.line() > 0).then_some(e.line()),
                message,
            }
        })?;
        (value, Source::Json(text.to_string()))
    } else if start.is_empty() || start.starts_with('[') {
        // serde would also take an array for a struct; a config is an object.
        return Err(not_a_config());
    } else {
        let (value, places) = uci::to_json(text)?;
        if value.as_object().is_some_and(|o| o.is_empty()) && !text.contains("config") {
            return Err(not_a_config());
        }
        (value, Source::Uci(places))
    };
    let raw: RawConfig = from_value_traced(&value, &[], &source)?;
    let config = build(&raw, hostname, &|path, message| source.fail(path, message))?;
    Ok((config, source))
}

/// `value` (at `base` in the file) as a `T`; an error names the key at
/// fault and its line.
fn from_value_traced<T: serde::de::DeserializeOwned>(
    value: &Value,
    base: &[Step<'_>],
    source: &Source,
) -> Result<T, ConfigError> {
    T::deserialize(value.clone()).map_err(|e| {
        let keys = culprit(value, &|v| T::deserialize(v.clone()).is_ok());
        let mut path = base.to_vec();
        path.extend(keys.iter().map(|k| Step::Key(k)));
        if path.is_empty() {
            source.fail(&path, e.to_string())
        } else {
            source.fail(&path, format!("{}: {e}", dotted(&path)))
        }
    })
}

/// The most trial parses `culprit` makes: each costs a copy and a parse
/// of the whole value, and a file may hold a megabyte of keys.
const CULPRIT_TRIALS: usize = 256;

/// The keys leading to the member of `value` that keeps `parses` from
/// accepting it: a key whose removal lets it parse, followed into objects.
/// Empty when no single member is at fault (a required key is missing);
/// shorter when `CULPRIT_TRIALS` run out first.
fn culprit(value: &Value, parses: &dyn Fn(&Value) -> bool) -> Vec<String> {
    let mut path: Vec<String> = Vec::new();
    let mut trials = 0;
    loop {
        let mut at = value;
        for key in &path {
            at = &at[key.as_str()];
        }
        let Some(object) = at.as_object() else {
            return path;
        };
        let found = object.keys().find(|key| {
            trials += 1;
            if trials > CULPRIT_TRIALS {
                return false;
            }
            let mut trial = value.clone();
            let mut member = &mut trial;
            for step in &path {
                member = &mut member[step.as_str()];
            }
            if let Some(object) = member.as_object_mut() {
                object.remove(key.as_str());
            }
            parses(&trial)
        });
        match found {
            Some(key) => path.push(key.clone()),
            None => return path,
        }
    }
}

/// Validates what was read into the model.
fn build(raw: &RawConfig, hostname: Option<&str>, fail: &Fail<'_>) -> Result<Config, ConfigError> {
    let node = match (&raw.node, hostname) {
        (Some(node), _) => {
            check_name(node).map_err(|why| fail(&[Step::Key("node")], format!("node: {why}")))?;
            node.clone()
        }
        (None, Some(host)) => {
            check_name(host).map_err(|why| {
                fail(
                    &[],
                    format!("node: not set, and the hostname {host:?} cannot name a node ({why})"),
                )
            })?;
            host.to_string()
        }
        (None, None) => {
            return Err(fail(
                &[],
                "node: not set, and the hostname is unknown".into(),
            ))
        }
    };

    let cluster = raw.cluster.clone().unwrap_or_else(|| "l2vip".to_string());
    check_name(&cluster).map_err(|why| fail(&[Step::Key("cluster")], format!("cluster: {why}")))?;
    let priority = raw.priority.unwrap_or(100);
    let priority = u8::try_from(priority)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| {
            fail(
                &[Step::Key("priority")],
                format!("priority: {priority} is outside 1..255"),
            )
        })?;
    let heartbeat = parse_heartbeat(&raw.heartbeat, &fail)?;

    let defaults = Announce::default();
    let announce = Announce {
        count: raw.announce.count.unwrap_or(defaults.count),
        interval_ms: raw.announce.interval_ms.unwrap_or(defaults.interval_ms),
        refresh_s: raw.announce.refresh_s.unwrap_or(defaults.refresh_s),
    };
    let announce_key = |key| [Step::Key("announce"), Step::Key(key)];
    if announce.count > 100 {
        return Err(fail(
            &announce_key("count"),
            format!("announce.count: {} is over 100", announce.count),
        ));
    }
    if !(100..=60_000).contains(&announce.interval_ms) {
        return Err(fail(
            &announce_key("interval_ms"),
            format!(
                "announce.interval_ms: {} is outside 100..60000",
                announce.interval_ms
            ),
        ));
    }
    if announce.refresh_s > 86_400 {
        return Err(fail(
            &announce_key("refresh_s"),
            format!(
                "announce.refresh_s: {} is over 86400 (0 turns refresh off)",
                announce.refresh_s
            ),
        ));
    }

    if raw.services.len() > MAX_SERVICES {
        return Err(fail(
            &[Step::Key("services")],
            format!(
                "services: {} services, at most {MAX_SERVICES}",
                raw.services.len()
            ),
        ));
    }
    let mut services = Vec::with_capacity(raw.services.len());
    let raw_services = raw
        .services
        .iter()
        .enumerate()
        .map(|(index, value)| {
            serde_json::from_value::<RawService>(value.clone()).map_err(|e| {
                let mut path = vec![Step::Key("services"), Step::Index(index)];
                let keys = culprit(value, &|v| {
                    serde_json::from_value::<RawService>(v.clone()).is_ok()
                });
                path.extend(keys.iter().map(|k| Step::Key(k)));
                fail(&path, format!("{}: {e}", dotted(&path)))
            })
        })
        .collect::<Result<Vec<RawService>, ConfigError>>()?;
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<IpAddr, usize> = HashMap::new();
    // Many services share few interfaces: one name each.
    let mut interfaces: Vec<Arc<str>> = Vec::new();
    for (index, service) in raw_services.iter().enumerate() {
        let label = format!("services[{index}]");
        let mut parsed = check_service(service).map_err(|(key, why)| {
            let mut path = vec![Step::Key("services"), Step::Index(index)];
            path.extend(&key);
            fail(&path, format!("{label}.{}: {why}", dotted(&key)))
        })?;
        let at = |key| [Step::Key("services"), Step::Index(index), Step::Key(key)];
        if let Some(first) = names.insert(&service.name, index) {
            return Err(fail(
                &at("name"),
                format!(
                    "{label}.name: {:?} is already the name of services[{first}]",
                    service.name
                ),
            ));
        }
        if let Some(first) = addresses.insert(parsed.ip, index) {
            return Err(fail(
                &at("ip"),
                format!(
                    "{label}.ip: {} is already the address of services[{first}]",
                    parsed.ip
                ),
            ));
        }
        match interfaces.iter().find(|i| **i == parsed.interface) {
            Some(known) => parsed.interface = Arc::clone(known),
            None => interfaces.push(Arc::clone(&parsed.interface)),
        }
        services.push(parsed);
    }
    let mac = match &raw.mac {
        None => MacChoice::Interface,
        Some(text) => MacChoice::parse(text)
            .map_err(|why| fail(&[Step::Key("mac")], format!("mac: {why}")))?,
    };
    let export = match &raw.export {
        None => None,
        Some(value) => parse_export(value)
            .map_err(|(path, why)| fail(&path, format!("{}: {why}", dotted(&path))))?,
    };
    check_macs(&services, mac, &cluster).map_err(|(index, why)| {
        let path = [Step::Key("services"), Step::Index(index), Step::Key("mac")];
        fail(&path, format!("services[{index}].mac: {why}"))
    })?;

    let nice = match raw.nice {
        None => DEFAULT_NICE,
        Some(n) if (-20..=0).contains(&n) => n as i32,
        Some(n) => {
            return Err(fail(
                &[Step::Key("nice")],
                format!("nice: {n} is outside -20..0 (0 leaves the threads as started)"),
            ))
        }
    };
    let linger_s = raw.linger_s.unwrap_or(DEFAULT_LINGER_S);
    if linger_s > MAX_LINGER_S {
        return Err(fail(
            &[Step::Key("linger_s")],
            format!("linger_s: {linger_s} is over {MAX_LINGER_S}"),
        ));
    }
    let hooks = Hooks {
        on_acquire: raw.hooks.on_acquire.clone(),
        on_release: raw.hooks.on_release.clone(),
        timeout_ms: raw.hooks.timeout_ms.unwrap_or(5000),
    };
    let hook_key = |key| [Step::Key("hooks"), Step::Key(key)];
    for (key, command) in [
        ("on_acquire", &hooks.on_acquire),
        ("on_release", &hooks.on_release),
    ] {
        if let Some(command) = command {
            check_command(command)
                .map_err(|why| fail(&hook_key(key), format!("hooks.{key}: {why}")))?;
        }
    }
    if !(100..=600_000).contains(&hooks.timeout_ms) {
        return Err(fail(
            &hook_key("timeout_ms"),
            format!(
                "hooks.timeout_ms: {} is outside 100..600000",
                hooks.timeout_ms
            ),
        ));
    }

    let control = Control {
        socket: raw
            .control
            .socket
            .clone()
            .unwrap_or_else(|| DEFAULT_SOCKET.to_string()),
        group: raw.control.group.clone(),
        idle_s: raw.control.idle_s.unwrap_or(60),
    };
    let control_key = |key| [Step::Key("control"), Step::Key(key)];
    if !control.socket.starts_with('/') || control.socket.len() > 107 {
        return Err(fail(
            &control_key("socket"),
            format!(
                "control.socket: {:?} must be an absolute path of at most 107 bytes",
                control.socket
            ),
        ));
    }
    if !(1..=86_400).contains(&control.idle_s) {
        return Err(fail(
            &control_key("idle_s"),
            format!("control.idle_s: {} is outside 1..86400", control.idle_s),
        ));
    }
    if let Some(group) = &control.group {
        check_name(group)
            .map_err(|why| fail(&control_key("group"), format!("control.group: {why}")))?;
    }

    Ok(Config {
        node,
        cluster,
        priority,
        mode: raw.mode.unwrap_or(Mode::Single),
        preempt: raw.preempt.unwrap_or(false),
        heartbeat,
        announce,
        control,
        bind: raw.bind.unwrap_or(Bind::Route),
        mac,
        export,
        linger_s,
        hooks,
        nice,
        user: match &raw.user {
            Some(user) => {
                check_name(user)
                    .map_err(|why| fail(&[Step::Key("user")], format!("user: {why}")))?;
                Some(user.clone())
            }
            None => None,
        },
        state_file: match raw.state_file.clone() {
            Some(path) if !path.starts_with('/') => {
                return Err(fail(
                    &[Step::Key("state_file")],
                    format!("state_file: {path:?} must be an absolute path (or null)"),
                ))
            }
            other => other,
        },
        services,
    })
}

type Fail<'a> = dyn Fn(&[Step<'_>], String) -> ConfigError + 'a;

fn parse_heartbeat(raw: &RawHeartbeat, fail: &Fail<'_>) -> Result<Heartbeat, ConfigError> {
    let key = |name| [Step::Key("heartbeat"), Step::Key(name)];
    let port = raw.port.unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(fail(&key("port"), "heartbeat.port: 0 is not a port".into()));
    }
    let bind = match &raw.bind {
        None => None,
        Some(text) => Some(text.parse::<IpAddr>().map_err(|_| {
            fail(
                &key("bind"),
                format!("heartbeat.bind: {text:?} is not an IPv4 or IPv6 address"),
            )
        })?),
    };
    let interval_ms = raw.interval_ms.unwrap_or(1000);
    if !(10..=60_000).contains(&interval_ms) {
        return Err(fail(
            &key("interval_ms"),
            format!("heartbeat.interval_ms: {interval_ms} is outside 10..60000"),
        ));
    }
    let lease_ms = raw.lease_ms.unwrap_or(10 * interval_ms.max(1000));
    if lease_ms < 3 * interval_ms || lease_ms > 600_000 {
        return Err(fail(
            &key("lease_ms"),
            format!(
                "heartbeat.lease_ms: {lease_ms} must be at least 3 x interval_ms ({}) and at most 600000",
                3 * interval_ms
            ),
        ));
    }
    if raw.peers.len() > MAX_PEERS {
        return Err(fail(
            &key("peers"),
            format!(
                "heartbeat.peers: {} peers, at most {MAX_PEERS}",
                raw.peers.len()
            ),
        ));
    }
    let mut peers = Vec::with_capacity(raw.peers.len());
    for (i, text) in raw.peers.iter().enumerate() {
        let path = [Step::Key("heartbeat"), Step::Key("peers"), Step::Index(i)];
        let peer = parse_peer(text, port)
            .map_err(|why| fail(&path, format!("heartbeat.peers[{i}]: {why}")))?;
        if peers.contains(&peer) {
            return Err(fail(
                &path,
                format!("heartbeat.peers[{i}]: {peer} is listed twice"),
            ));
        }
        peers.push(peer);
    }
    let multicast = match &raw.multicast {
        None => None,
        Some(multicast) => {
            let path = |name| {
                [
                    Step::Key("heartbeat"),
                    Step::Key("multicast"),
                    Step::Key(name),
                ]
            };
            let group = multicast
                .group
                .parse::<IpAddr>()
                .ok()
                .filter(IpAddr::is_multicast)
                .ok_or_else(|| {
                    fail(
                        &path("group"),
                        format!(
                            "heartbeat.multicast.group: {:?} is not a multicast address",
                            multicast.group
                        ),
                    )
                })?;
            check_interface_name(&multicast.interface).map_err(|why| {
                fail(
                    &path("interface"),
                    format!("heartbeat.multicast.interface: {why}"),
                )
            })?;
            Some(Multicast {
                group,
                interface: multicast.interface.clone(),
            })
        }
    };
    if let Some(path) = &raw.key_file {
        if path.is_empty() {
            return Err(fail(
                &key("key_file"),
                "heartbeat.key_file: empty path".into(),
            ));
        }
    }
    // Unauthenticated heartbeats let anyone on the LAN move the VIPs: never
    // by default, only when the file says so.
    let alone = peers.is_empty() && multicast.is_none();
    if !alone && raw.key_file.is_none() && !raw.insecure {
        let at = if raw.peers.is_empty() {
            key("multicast")
        } else {
            key("peers")
        };
        return Err(fail(
            &at,
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

/// Reads one service given over the control socket or from the state
/// file: the same fields and checks as in the configuration file.
pub fn service_from_json(value: serde_json::Value) -> Result<Service, String> {
    let raw: RawService = serde_json::from_value(value).map_err(|e| e.to_string())?;
    check_service(&raw).map_err(|(key, why)| format!("{}: {why}", dotted(&key)))
}

/// "health.tcp", "nodes[1]": a path below a service, as people write it.
fn dotted(path: &[Step<'_>]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => text.push_str(&format!(".{key}")),
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// Validates one service; the error holds the path below the service.
fn check_service(raw: &RawService) -> Result<Service, (Vec<Step<'static>>, String)> {
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
    let mut seen: Vec<([u8; 6], usize)> = Vec::new();
    let mut per_interface: Vec<(&str, usize)> = Vec::new();
    for (index, service) in services.iter().enumerate().filter(|(_, s)| s.answer) {
        let Some(mac) = service
            .mac
            .unwrap_or(default)
            .resolve(cluster, &service.name)
        else {
            continue;
        };
        if let Some(&(_, first)) = seen.iter().find(|(known, _)| *known == mac) {
            return Err((
                index,
                format!(
                    "{} is already the MAC of services[{first}] ({})",
                    mac_text(mac),
                    services[first].name
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
    if !(100..=3_600_000).contains(&interval_ms) {
        return Err((
            "interval_ms",
            format!("{interval_ms} is outside 100..3600000"),
        ));
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
        if !(1..=100).contains(&count) {
            return Err((key, format!("{count} is outside 1..100")));
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
fn check_command(command: &str) -> Result<(), String> {
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

fn check_name(name: &str) -> Result<(), String> {
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

fn check_interface_name(name: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn error(text: &str) -> ConfigError {
        parse(text, Some("host")).unwrap_err()
    }

    #[test]
    fn tracing_an_error_in_a_file_of_many_keys_is_bounded() {
        // Each trial copies and parses the whole file: a megabyte of keys
        // must not cost one trial per key.
        let mut object = serde_json::Map::new();
        for i in 0..5000 {
            object.insert(format!("k{i}"), Value::from(i));
        }
        let value = Value::Object(object);
        let trials = std::cell::Cell::new(0);
        let path = culprit(&value, &|_| {
            trials.set(trials.get() + 1);
            false
        });
        assert!(path.is_empty());
        assert_eq!(trials.get(), CULPRIT_TRIALS);
        // The message is still serde's.
        let mut text = String::from("{\"node\": \"a\"");
        for i in 0..5000 {
            text.push_str(&format!(",\n \"k{i}\": 1"));
        }
        text.push('}');
        assert!(error(&text).message.contains("unknown field `k0`"));
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_reported_with_its_key_and_line() {
        let cases = [
            (
                "{\"node\": \"a\",\n \"heartbeat\": {\"interval_ms\": \"x\"}}",
                2,
                "heartbeat.interval_ms: invalid type: string \"x\", expected u64",
            ),
            (
                "{\"node\": \"a\",\n \"services\": [{\"name\": \"w\", \"ip\": \"192.0.2.1\", \"interface\": \"e\",\n  \"health\": {\"tcp\": 5}}]}",
                3,
                "services[0].health.tcp: invalid type: integer `5`, expected a string",
            ),
            (
                "{\"node\": \"a\",\n \"announce\": {\"count\": -1}}",
                2,
                "announce.count: invalid value: integer `-1`, expected u32",
            ),
            (
                "{\"node\": \"a\",\n \"services\": [{\"name\": \"w\", \"ip\": \"192.0.2.1\"}]}",
                2,
                "services[0]: missing field `interface`",
            ),
        ];
        for (text, line, message) in cases {
            let e = error(text);
            assert_eq!(
                (e.line, e.message.as_str()),
                (Some(line), message),
                "{text}"
            );
        }
        let unknown = error("{\"node\": \"a\",\n \"hooks\": {\"on_start\": \"true\"}}");
        assert_eq!(unknown.line, Some(2));
        assert!(
            unknown
                .message
                .starts_with("hooks.on_start: unknown field `on_start`"),
            "{unknown}"
        );
        // Syntax errors keep the parser's line.
        let syntax = error("{\"node\": \"a\",\n \"priority\": }");
        assert_eq!(syntax.line, Some(2));
    }

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
        let resolved: Vec<Option<[u8; 6]>> = config
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
                Some([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01])
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
        assert_eq!(mac_text(virtual_mac("l2vip", "web")), "4a:bf:53:03:d7:fd");
        assert_ne!(virtual_mac("l2vip", "web"), virtual_mac("l2vip", "web6"));
        assert_ne!(virtual_mac("a", "bc"), virtual_mac("ab", "c"));
        for (cluster, name) in [("l2vip", "web"), ("x", "y"), ("lab", "gateway6")] {
            let mac = virtual_mac(cluster, name);
            assert_eq!(
                mac[0] & 3,
                2,
                "locally administered unicast: {}",
                mac_text(mac)
            );
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
    fn errors_name_key_and_line() {
        let unknown = error("{\n  \"node\": \"a\",\n  \"colour\": 1\n}");
        assert_eq!(unknown.line, Some(3));
        assert!(
            unknown.message.contains("unknown field `colour`"),
            "{unknown}"
        );

        let nested = error("{\"services\": [\n {\"name\": \"a\", \"ip\": \"192.0.2.1\", \"interface\": \"e\",\n  \"port\": 1}]}");
        assert_eq!(nested.line, Some(3));
        assert!(nested.message.contains("unknown field `port`"), "{nested}");

        let bad_ip = error("{\"services\": [\n {\"name\": \"a\",\n  \"ip\": \"192.0.2.300\", \"interface\": \"eth0\"}]}");
        assert_eq!(
            bad_ip.to_string(),
            "line 3: services[0].ip: \"192.0.2.300\" is not an IPv4 or IPv6 address"
        );

        let duplicate = error(
            "{\"services\": [\n {\"name\": \"a\", \"ip\": \"192.0.2.1\", \"interface\": \"eth0\"},\n {\"name\": \"a\", \"ip\": \"192.0.2.2\", \"interface\": \"eth0\"}]}",
        );
        assert_eq!(duplicate.line, Some(3));
        assert!(
            duplicate
                .message
                .contains("services[1].name: \"a\" is already the name of services[0]"),
            "{duplicate}"
        );

        let same_ip = error(
            "{\"services\": [\n {\"name\": \"a\", \"ip\": \"2001:db8::1\", \"interface\": \"eth0\"},\n {\"name\": \"b\", \"ip\": \"2001:DB8::1\", \"interface\": \"eth0\"}]}",
        );
        assert!(
            same_ip
                .message
                .contains("services[1].ip: 2001:db8::1 is already the address of services[0]"),
            "{same_ip}"
        );

        let syntax = error("{\n\"node\": \"a\",,\n}");
        assert_eq!(syntax.line, Some(2));

        let wrong_type = error("{\"announce\": {\"count\": \"five\"}}");
        assert!(wrong_type.message.contains("invalid type"), "{wrong_type}");
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

    #[test]
    fn uci_reads_into_the_same_model_as_json() {
        let uci = "\
config l2vip 'main'
\toption node 'r1'
\toption priority '150'
\toption linger_s '30'
\toption nice '-5'

config heartbeat
\toption interval_ms '500'
\tlist peer '192.0.2.12'
\toption insecure '1'

config hooks
\toption on_acquire 'logger acquired'

config service 'web'
\toption ip '192.0.2.200'
\toption interface 'eth0'
\toption health_exec 'true'
";
        let json = r#"{"node": "r1", "priority": 150, "linger_s": 30, "nice": -5,
            "heartbeat": {"interval_ms": 500, "peers": ["192.0.2.12"], "insecure": true},
            "hooks": {"on_acquire": "logger acquired"},
            "services": [{"name": "web", "ip": "192.0.2.200", "interface": "eth0",
                          "health": {"exec": "true"}}]}"#;
        assert_eq!(parse(uci, None).unwrap(), parse(json, None).unwrap());

        let bad_ip = uci.replace("192.0.2.200", "192.0.2.300");
        assert_eq!(
            parse(&bad_ip, None).unwrap_err().to_string(),
            "line 16: config service 'web', option ip: \"192.0.2.300\" is not an IPv4 or IPv6 address"
        );
        let bad_lease = uci.replace("option interval_ms '500'", "option lease_ms '100'");
        assert!(
            parse(&bad_lease, None)
                .unwrap_err()
                .to_string()
                .starts_with("line 8: config heartbeat, option lease_ms: 100 must be at least"),
            "{}",
            parse(&bad_lease, None).unwrap_err()
        );
        let twice = format!(
            "{uci}config service 'web2'\n\toption ip '192.0.2.200'\n\toption interface 'eth0'\n"
        );
        assert_eq!(
            parse(&twice, None).unwrap_err().to_string(),
            "line 20: config service 'web2', option ip: 192.0.2.200 is already the address of services[0]"
        );
        let (config, source) = parse_source(uci, None).unwrap();
        let missing = check_interfaces(&source, &config, |_| Err("no such interface".into()));
        assert_eq!(
            missing.unwrap_err().to_string(),
            "line 17: config service 'web', option interface: no such interface"
        );
        for text in ["", "  \n", "[1]", "hello"] {
            assert!(parse(text, None).is_err(), "{text:?}");
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
