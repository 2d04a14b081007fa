//! OpenWrt's UCI format (`/etc/config/l2vip`), read into the same model as
//! the JSON file.
//!
//! ```text
//! config l2vip 'main'
//!     option node 'r1'
//!     option priority '150'
//! config heartbeat
//!     list peer '192.0.2.12'
//! config service 'web'
//!     option ip '192.0.2.200'
//!     option interface 'br-lan'
//! ```
//!
//! The reader turns sections into the JSON document the rest of the
//! configuration code validates, and remembers where each value came from,
//! so an error names the section, the option and the line.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use super::locate::Step;

pub mod syntax;
use super::ConfigError;

/// One `config TYPE ['NAME']` section.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    kind: String,
    name: Option<String>,
    line: usize,
    options: Vec<Opt>,
}

/// One `option` or `list` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opt {
    name: String,
    value: String,
    list: bool,
    line: usize,
}

impl Section {
    fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("config {} '{name}'", self.kind),
            None => format!("config {}", self.kind),
        }
    }
}

/// The file's sections as OpenWrt's `uci` reads it (strict), with each
/// list item as an option line of its own.
fn parse_sections(text: &str) -> Result<Vec<Section>, ConfigError> {
    let sections = syntax::parse(text.as_bytes()).map_err(|e| ConfigError {
        line: Some(e.line.max(1)),
        message: format!("{} (byte {})", e.reason, e.byte),
    })?;
    let mut out = Vec::with_capacity(sections.len());
    for section in sections {
        let mut read = Section {
            kind: section.kind,
            name: section.name,
            line: section.line,
            options: Vec::new(),
        };
        let label = read.label();
        for opt in section.options {
            // The text came in as UTF-8; a value is a run of its bytes.
            let utf8 = |bytes: Vec<u8>| {
                String::from_utf8(bytes).map_err(|_| ConfigError {
                    line: Some(opt.line),
                    message: format!("{label}, option {}: not UTF-8 text", opt.name),
                })
            };
            match opt.value {
                syntax::Value::One(value) => read.options.push(Opt {
                    name: opt.name.clone(),
                    value: utf8(value)?,
                    list: false,
                    line: opt.line,
                }),
                syntax::Value::List(items) => {
                    for item in items {
                        read.options.push(Opt {
                            name: opt.name.clone(),
                            value: utf8(item)?,
                            list: true,
                            line: opt.line,
                        });
                    }
                }
            }
        }
        out.push(read);
    }
    Ok(out)
}

/// Where each value of the built document came from: a JSON path (steps
/// joined by '/') to its line and its UCI name.
#[derive(Debug, Clone, Default)]
pub struct Places {
    places: BTreeMap<String, (usize, String)>,
}

fn key_of(path: &[Step<'_>]) -> String {
    path.iter()
        .map(|step| match step {
            Step::Key(key) => key.to_string(),
            Step::Index(index) => index.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl Places {
    fn add(&mut self, path: &[Step<'_>], line: usize, label: String) {
        self.places.insert(key_of(path), (line, label));
    }

    /// An error about the value at `path`: the message's leading JSON key
    /// ("services[0].ip: ...") becomes the UCI name of the nearest place.
    pub fn fail(&self, path: &[Step<'_>], message: String) -> ConfigError {
        for len in (0..=path.len()).rev() {
            if let Some((line, label)) = self.places.get(&key_of(&path[..len])) {
                let rest = message
                    .split_once(": ")
                    .map(|(_, rest)| rest)
                    .unwrap_or(&message);
                return ConfigError {
                    line: Some(*line),
                    message: format!("{label}: {rest}"),
                };
            }
        }
        ConfigError {
            line: None,
            message,
        }
    }
}

/// How an option's text becomes a JSON value.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Number,
    /// A whole number that may be negative.
    Integer,
    Bool,
    /// `none` means none (JSON null).
    TextOrNone,
}

fn convert(kind: Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Text => Ok(Value::String(text.to_string())),
        // uci drops an empty option (and `uci commit` with it): "none" it is.
        Kind::TextOrNone if text == "none" => Ok(Value::Null),
        Kind::TextOrNone => Ok(Value::String(text.to_string())),
        Kind::Number => text
            .parse::<u64>()
            .map(|n| Value::Number(Number::from(n)))
            .map_err(|_| format!("{text:?} is not a whole number")),
        Kind::Integer => text
            .parse::<i64>()
            .map(|n| Value::Number(Number::from(n)))
            .map_err(|_| format!("{text:?} is not a whole number")),
        Kind::Bool => match text {
            "1" | "true" | "yes" | "on" | "enabled" => Ok(Value::Bool(true)),
            "0" | "false" | "no" | "off" | "disabled" => Ok(Value::Bool(false)),
            _ => Err(format!("{text:?} is not a boolean (use 0 or 1)")),
        },
    }
}

/// One UCI option: its name, the JSON path below the section's object it
/// fills, how it converts, and whether it is a `list`.
struct Rule {
    option: &'static str,
    path: &'static [&'static str],
    kind: Kind,
    list: bool,
}

const fn rule(option: &'static str, path: &'static [&'static str], kind: Kind) -> Rule {
    Rule {
        option,
        path,
        kind,
        list: false,
    }
}

const fn list(option: &'static str, path: &'static [&'static str], kind: Kind) -> Rule {
    Rule {
        option,
        path,
        kind,
        list: true,
    }
}

/// `config l2vip`: the top-level keys. `enabled` is for the init script.
const MAIN: &[Rule] = &[
    rule("enabled", &[], Kind::Bool),
    rule("node", &["node"], Kind::Text),
    rule("cluster", &["cluster"], Kind::Text),
    rule("priority", &["priority"], Kind::Number),
    rule("mode", &["mode"], Kind::Text),
    rule("preempt", &["preempt"], Kind::Bool),
    rule("bind", &["bind"], Kind::Text),
    rule("mac", &["mac"], Kind::Text),
    rule("export_table", &["export", "table"], Kind::Number),
    rule("export_what", &["export", "what"], Kind::Text),
    rule("export_metric", &["export", "metric"], Kind::Number),
    rule("linger_s", &["linger_s"], Kind::Number),
    rule("state_file", &["state_file"], Kind::TextOrNone),
    rule("user", &["user"], Kind::Text),
    rule("nice", &["nice"], Kind::Integer),
];

const HEARTBEAT: &[Rule] = &[
    rule("port", &["port"], Kind::Number),
    rule("bind", &["bind"], Kind::Text),
    rule("interval_ms", &["interval_ms"], Kind::Number),
    rule("lease_ms", &["lease_ms"], Kind::Number),
    list("peer", &["peers"], Kind::Text),
    rule("multicast_group", &["multicast", "group"], Kind::Text),
    rule(
        "multicast_interface",
        &["multicast", "interface"],
        Kind::Text,
    ),
    rule("key_file", &["key_file"], Kind::Text),
    rule("insecure", &["insecure"], Kind::Bool),
];

const ANNOUNCE: &[Rule] = &[
    rule("count", &["count"], Kind::Number),
    rule("interval_ms", &["interval_ms"], Kind::Number),
    rule("refresh_s", &["refresh_s"], Kind::Number),
];

const CONTROL: &[Rule] = &[
    rule("socket", &["socket"], Kind::Text),
    rule("group", &["group"], Kind::Text),
    rule("idle_s", &["idle_s"], Kind::Number),
];

const HOOKS: &[Rule] = &[
    rule("on_acquire", &["on_acquire"], Kind::Text),
    rule("on_release", &["on_release"], Kind::Text),
    rule("on_primary", &["on_primary"], Kind::Text),
    rule("on_backup", &["on_backup"], Kind::Text),
    rule("on_fault", &["on_fault"], Kind::Text),
    list("group", &["group"], Kind::Text),
    rule("timeout_ms", &["timeout_ms"], Kind::Number),
];

const SERVICE: &[Rule] = &[
    rule("name", &["name"], Kind::Text),
    rule("ip", &["ip"], Kind::Text),
    rule("interface", &["interface"], Kind::Text),
    list("node", &["nodes"], Kind::Text),
    rule("bind", &["bind"], Kind::Text),
    rule("mac", &["mac"], Kind::Text),
    rule("answer", &["answer"], Kind::Bool),
    rule("export", &["export"], Kind::Bool),
    rule("export_table", &["export", "table"], Kind::Number),
    rule("export_what", &["export", "what"], Kind::Text),
    rule("export_metric", &["export", "metric"], Kind::Number),
    rule("health_tcp", &["health", "tcp"], Kind::Text),
    rule("health_exec", &["health", "exec"], Kind::Text),
    rule(
        "health_interval_ms",
        &["health", "interval_ms"],
        Kind::Number,
    ),
    rule("health_timeout_ms", &["health", "timeout_ms"], Kind::Number),
    rule("health_rise", &["health", "rise"], Kind::Number),
    rule("health_fall", &["health", "fall"], Kind::Number),
];

/// The section types, the JSON key each fills (none: the top level) and
/// their options.
const SECTIONS: &[(&str, Option<&str>, &[Rule])] = &[
    ("l2vip", None, MAIN),
    ("heartbeat", Some("heartbeat"), HEARTBEAT),
    ("announce", Some("announce"), ANNOUNCE),
    ("control", Some("control"), CONTROL),
    ("hooks", Some("hooks"), HOOKS),
];

/// Puts `value` at `path` below `object`, making objects on the way.
/// False when an earlier option put a value where this one needs an
/// object, or the other way round (`option export '0'` with
/// `option export_table`).
fn insert(object: &mut Map<String, Value>, path: &[&str], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return true;
    };
    let mut at = object;
    for key in parents {
        let entry = at
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(next) = entry else {
            return false;
        };
        at = next;
    }
    match (at.get_mut(*last), value) {
        (Some(Value::Array(items)), Value::Array(more)) => items.extend(more),
        (Some(Value::Object(_)), _) => return false,
        (_, value) => {
            at.insert(last.to_string(), value);
        }
    }
    true
}

/// Fills `object` from `section`'s options by `rules`; `base` is the JSON
/// path of `object`. Records each value's place.
fn fill(
    section: &Section,
    rules: &[Rule],
    object: &mut Map<String, Value>,
    base: &[Step<'_>],
    places: &mut Places,
) -> Result<(), ConfigError> {
    for opt in &section.options {
        let fail = |message: String| ConfigError {
            line: Some(opt.line),
            message: format!("{}, option {}: {message}", section.label(), opt.name),
        };
        let Some(rule) = rules.iter().find(|r| r.option == opt.name) else {
            let known: Vec<&str> = rules.iter().map(|r| r.option).collect();
            return Err(fail(format!(
                "unknown option (known: {})",
                known.join(", ")
            )));
        };
        // `option` where a list is expected is a list of one, as OpenWrt's
        // shell helpers read it; `list` where one value is expected is not.
        if opt.list && !rule.list {
            return Err(fail(format!(
                "a single value: write `option {} '...'`",
                opt.name
            )));
        }
        let value = convert(rule.kind, &opt.value).map_err(fail)?;
        if rule.path.is_empty() {
            continue;
        }
        let mut path: Vec<Step<'_>> = base.to_vec();
        path.extend(rule.path.iter().map(|k| Step::Key(k)));
        let label = format!("{}, option {}", section.label(), opt.name);
        if rule.list {
            let count = object_list_len(object, rule.path);
            let mut item = path.clone();
            item.push(Step::Index(count));
            places.add(&item, opt.line, label.clone());
            // The list as a whole points at its first line.
            if count == 0 {
                places.add(&path, opt.line, label);
            }
            insert(object, rule.path, Value::Array(vec![value]));
        } else {
            places.add(&path, opt.line, label);
            if !insert(object, rule.path, value) {
                // The one such pair: `export` and `export_*`.
                return Err(fail(
                    "cannot go with the other export options of this section: `option export \
                     '0'` turns export off, export_table, export_what and export_metric set it"
                        .into(),
                ));
            }
        }
    }
    Ok(())
}

fn object_list_len(object: &Map<String, Value>, path: &[&str]) -> usize {
    let mut at = object;
    let Some((last, parents)) = path.split_last() else {
        return 0;
    };
    for key in parents {
        match at.get(*key) {
            Some(Value::Object(next)) => at = next,
            _ => return 0,
        }
    }
    at.get(*last).and_then(Value::as_array).map_or(0, Vec::len)
}

/// A `config service` section as the JSON of service number `index`.
fn service_json(
    section: &Section,
    index: usize,
    places: &mut Places,
) -> Result<Value, ConfigError> {
    let fail = |message: String| ConfigError {
        line: Some(section.line),
        message: format!("{}: {message}", section.label()),
    };
    let base = [Step::Key("services"), Step::Index(index)];
    places.add(&base, section.line, section.label());
    let mut service = Map::new();
    fill(section, SERVICE, &mut service, &base, places)?;
    match (&section.name, service.get("name")) {
        (Some(name), None) => {
            let mut name_path = base.to_vec();
            name_path.push(Step::Key("name"));
            places.add(&name_path, section.line, section.label());
            service.insert("name".into(), Value::String(name.clone()));
        }
        (None, None) => {
            return Err(fail(
                "a service needs a name: `config service 'NAME'` or `option name`".into(),
            ))
        }
        _ => {}
    }
    for required in ["ip", "interface"] {
        if !service.contains_key(required) {
            return Err(fail(format!("option {required} is missing")));
        }
    }
    Ok(Value::Object(service))
}

/// Reads UCI text into the JSON document of the same configuration, and
/// where each of its values came from.
pub fn to_json(text: &str) -> Result<(Value, Places), ConfigError> {
    let sections = parse_sections(text)?;
    let mut document = Map::new();
    let mut places = Places::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut services = Vec::new();
    for section in &sections {
        let fail = |message: String| ConfigError {
            line: Some(section.line),
            message: format!("{}: {message}", section.label()),
        };
        if section.kind == "service" {
            services.push(service_json(section, services.len(), &mut places)?);
            continue;
        }
        let Some((kind, key, rules)) = SECTIONS.iter().find(|(kind, _, _)| *kind == section.kind)
        else {
            let known: Vec<&str> = SECTIONS
                .iter()
                .map(|(kind, _, _)| *kind)
                .chain(["service"])
                .collect();
            return Err(fail(format!(
                "unknown section type (known: {})",
                known.join(", ")
            )));
        };
        if seen.contains(kind) {
            return Err(fail(format!(
                "a second `config {kind}` section; there is one"
            )));
        }
        seen.push(kind);
        match key {
            None => fill(section, rules, &mut document, &[], &mut places)?,
            Some(key) => {
                let base = [Step::Key(key)];
                places.add(&base, section.line, section.label());
                let mut object = Map::new();
                fill(section, rules, &mut object, &base, &mut places)?;
                document.insert(key.to_string(), Value::Object(object));
            }
        }
    }
    if !services.is_empty() {
        places.add(
            &[Step::Key("services")],
            sections
                .iter()
                .find(|s| s.kind == "service")
                .map_or(1, |s| s.line),
            "config service".into(),
        );
        document.insert("services".into(), Value::Array(services));
    }
    Ok((Value::Object(document), places))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_become_the_json_document() {
        let text = "\
package l2vip

config l2vip 'main'
\toption enabled '1'
\toption node 'r1'
\toption priority '150'
\toption preempt 'yes'
\toption state_file 'none'
\toption export_table '100'
\toption export_what 'eligible'

config heartbeat
\toption interval_ms 500
\tlist peer '192.0.2.12'
\tlist peer '192.0.2.13:7947'
\toption multicast_group '239.255.76.47'
\toption multicast_interface 'br-lan'

config service 'web'
\toption ip '192.0.2.200'
\toption interface 'br-lan'
\tlist node 'r1'
\toption health_tcp '127.0.0.1:80'
\toption health_fall '2'

config service 'far'
\toption ip '198.51.100.7'
\toption interface 'br-lan'
\toption answer '0'
\toption export_metric '20'
\toption export_table '1000'

config service 'lan'
\toption ip '192.0.2.201'
\toption interface 'br-lan'
\toption export '0'
";
        let (value, places) = to_json(text).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "node": "r1", "priority": 150, "preempt": true, "state_file": null,
                "export": {"table": 100, "what": "eligible"},
                "heartbeat": {"interval_ms": 500, "peers": ["192.0.2.12", "192.0.2.13:7947"],
                              "multicast": {"group": "239.255.76.47", "interface": "br-lan"}},
                "services": [{"name": "web", "ip": "192.0.2.200", "interface": "br-lan", "nodes": ["r1"],
                              "health": {"tcp": "127.0.0.1:80", "fall": 2}},
                             {"name": "far", "ip": "198.51.100.7", "interface": "br-lan", "answer": false,
                              "export": {"metric": 20, "table": 1000}},
                             {"name": "lan", "ip": "192.0.2.201", "interface": "br-lan", "export": false}]
            })
        );
        let error = places.fail(
            &[Step::Key("heartbeat"), Step::Key("peers"), Step::Index(1)],
            "heartbeat.peers[1]: bad".into(),
        );
        assert_eq!(error.line, Some(15));
        assert_eq!(error.message, "config heartbeat, option peer: bad");
    }

    #[test]
    fn mistakes_name_section_option_and_line() {
        let error = |text: &str| to_json(text).unwrap_err().to_string();
        assert_eq!(
            error("config heartbeat\n\toption intervall '5'\n"),
            "line 2: config heartbeat, option intervall: unknown option (known: port, bind, \
             interval_ms, lease_ms, peer, multicast_group, multicast_interface, key_file, \
             insecure)"
        );
        assert_eq!(
            error("config l2vip\n\toption priority 'high'\n"),
            "line 2: config l2vip, option priority: \"high\" is not a whole number"
        );
        assert_eq!(
            error("config heartbeat\n\tlist interval_ms '100'\n"),
            "line 2: config heartbeat, option interval_ms: a single value: write `option interval_ms '...'`"
        );
        assert_eq!(
            error("config service\n\toption ip '192.0.2.1'\n"),
            "line 1: config service: a service needs a name: `config service 'NAME'` or `option name`"
        );
        assert_eq!(
            error("config service 'x'\n\toption ip '192.0.2.1'\n"),
            "line 1: config service 'x': option interface is missing"
        );
        assert_eq!(
            error("config service 'x'\n\toption export_table '100'\n\toption export '0'\n"),
            "line 3: config service 'x', option export: cannot go with the other export options \
             of this section: `option export '0'` turns export off, export_table, export_what and \
             export_metric set it"
        );
        assert!(
            error("config service 'x'\n\toption export '0'\n\toption export_what 'owned'\n")
                .starts_with("line 3: config service 'x', option export_what: cannot go with")
        );
        assert_eq!(
            error("config vrrp\n"),
            "line 1: config vrrp: unknown section type (known: l2vip, heartbeat, announce, control, hooks, service)"
        );
        assert_eq!(
            error("option node 'a'\n"),
            "line 1: option/list command found before the first section (byte 0)"
        );
        assert_eq!(
            error("config l2vip\n\toption node 'a\n"),
            "line 2: EOF with unterminated ' (byte 16)"
        );
        assert_eq!(
            error("config service 'web-1'\n"),
            "line 1: invalid character in name field (byte 23)"
        );
        // Last wins, as in uci.
        let (value, _) = to_json("config l2vip\n\toption node 'a'\n\toption node 'b'\n").unwrap();
        assert_eq!(value["node"], "b");
        let (value, _) = to_json("config heartbeat\n\toption peer '192.0.2.1'\n").unwrap();
        assert_eq!(
            value["heartbeat"]["peers"],
            serde_json::json!(["192.0.2.1"])
        );
        assert_eq!(
            error("config l2vip\nconfig l2vip\n"),
            "line 2: config l2vip: a second `config l2vip` section; there is one"
        );
    }
}
