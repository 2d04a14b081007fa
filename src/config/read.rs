//! Reading a configuration: text (JSON, or UCI turned into the same JSON)
//! into a value, the value into the schema, and an error traced to the key
//! at fault and its line.

use std::path::Path;

use serde_json::Value;

use super::build::build;
use super::locate::{line_of, Step};
use super::schema::{RawConfig, RawService};
use super::uci;
use super::{Config, ConfigError, LoadError, MAX_FILE_LEN, MAX_SERVICES};

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
    // Comments (`#` or `//` to the end of a line, outside strings) become
    // spaces, so lines and columns stay where the file has them.
    let json = blank_comments(text);
    let start = json.trim_start();
    // Text to a value, then the value to the model: one deserializer for
    // the model, shared with UCI files, `add` and the state file (a second,
    // from text, costs ~18 KB of router binary). Syntax errors carry their
    // line from the first step; errors of the second are traced to their key.
    let (value, source) = if start.starts_with('{') {
        let value = serde_json::from_str::<Value>(&json).map_err(|e| {
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
        (value, Source::Json(json))
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
    // Tracing an error to its key parses the whole value once per trial:
    // a big file (a reload of it blocks the control thread) is not traced.
    let trace = text.len() <= MAX_TRACED_LEN;
    let raw: RawConfig = from_value_traced(&value, &[], &source, trace)?;
    let services = read_services(&raw.services, &source, trace)?;
    let fail = |path: &[Step<'_>], message| source.fail(path, message);
    let config = build(&raw, &services, hostname, &fail)?;
    Ok((config, source))
}

/// `text` with every comment (`#` or `//` to the end of the line, outside
/// a string) turned into spaces: JSON has no comments, but a file in
/// `/etc` is read by people, and keepalived's has them.
fn blank_comments(text: &str) -> String {
    let mut out = text.as_bytes().to_vec();
    let (mut string, mut escaped, mut comment) = (false, false, false);
    for i in 0..out.len() {
        let byte = out[i];
        if comment {
            comment = byte != b'\n';
            if comment {
                out[i] = b' ';
            }
        } else if string {
            string = escaped || byte != b'"';
            escaped = !escaped && byte == b'\\';
        } else if byte == b'"' {
            string = true;
        } else if byte == b'#' || (byte == b'/' && out.get(i + 1) == Some(&b'/')) {
            comment = true;
            out[i] = b' ';
        }
    }
    // Only whole UTF-8 sequences were replaced, each byte by a space.
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// `value` (at `base` in the file) as a `T`; an error names the key at
/// fault and its line (unless `trace` is false: then it says why not).
fn from_value_traced<'v, T: serde::de::DeserializeOwned>(
    value: &'v Value,
    base: &[Step<'v>],
    source: &Source,
    trace: bool,
) -> Result<T, ConfigError> {
    // From owned values, as `add` and the state file read theirs: one
    // deserializer in the binary, not two.
    let parses = |v: &Value| {
        T::deserialize(v.clone())
            .map(drop)
            .map_err(|e| e.to_string())
    };
    T::deserialize(value.clone()).map_err(|e| {
        let mut path = base.to_vec();
        let mut message = e.to_string();
        if trace {
            path.extend(culprit(value, &parses));
        } else {
            message.push_str(UNTRACED);
        }
        if path.is_empty() {
            source.fail(&path, message)
        } else {
            source.fail(&path, format!("{}: {message}", dotted(&path)))
        }
    })
}

/// Each of the file's services, read as `add` and the state file read one;
/// at most `MAX_SERVICES`.
fn read_services(
    values: &[Value],
    source: &Source,
    trace: bool,
) -> Result<Vec<RawService>, ConfigError> {
    if values.len() > MAX_SERVICES {
        return Err(source.fail(
            &[Step::Key("services")],
            format!(
                "services: {} services, at most {MAX_SERVICES}",
                values.len()
            ),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let base = [Step::Key("services"), Step::Index(index)];
            from_value_traced(value, &base, source, trace)
        })
        .collect()
}

/// Files larger than this are not searched for the key at fault.
const MAX_TRACED_LEN: usize = 64 * 1024;

/// What an error of such a file says instead of the key.
const UNTRACED: &str = " (the file is over 64 KiB: the key at fault was not searched for)";

/// The most trial parses `culprit` makes: each costs a copy and a parse
/// of the whole value.
const CULPRIT_TRIALS: usize = 256;

/// The steps leading to the member of `value` at fault for the error
/// `parses` gives it. At each level, the first member (object key or
/// array element) whose removal lets `value` parse or changes the error is
/// followed down. A removal that only leaves that member itself missing
/// counts too (the member was there, with a bad value), unless the error
/// already is a missing member: then no member present is at fault, and
/// the path ends at the object that lacks one. Shorter when
/// `CULPRIT_TRIALS` run out first.
fn culprit<'v>(value: &'v Value, parses: &dyn Fn(&Value) -> Result<(), String>) -> Vec<Step<'v>> {
    let mut path: Vec<Step<'v>> = Vec::new();
    let Err(error) = parses(value) else {
        return path;
    };
    let missing = error.starts_with("missing field");
    let mut trials = 0;
    loop {
        let members: Vec<Step<'v>> = match get(value, &path) {
            Some(Value::Object(object)) => object.keys().map(|k| Step::Key(k)).collect(),
            Some(Value::Array(items)) => (0..items.len()).map(Step::Index).collect(),
            _ => return path,
        };
        let found = members.into_iter().find(|member| {
            trials += 1;
            if trials > CULPRIT_TRIALS {
                return false;
            }
            let mut trial = value.clone();
            remove(&mut trial, &path, *member);
            match parses(&trial) {
                Ok(()) => true,
                Err(now) if now == error => false,
                Err(now) => match member {
                    Step::Key(key) => !missing || now != format!("missing field `{key}`"),
                    Step::Index(_) => true,
                },
            }
        });
        match found {
            Some(member) => path.push(member),
            None => return path,
        }
    }
}

/// The value at `path` in `value`.
fn get<'v>(value: &'v Value, path: &[Step<'_>]) -> Option<&'v Value> {
    path.iter().try_fold(value, |at, step| match step {
        Step::Key(key) => at.get(*key),
        Step::Index(index) => at.get(*index),
    })
}

/// Removes `member` of the object or array at `path` in `value`.
fn remove(value: &mut Value, path: &[Step<'_>], member: Step<'_>) {
    let mut at = Some(value);
    for step in path {
        at = at.and_then(|v| match step {
            Step::Key(key) => v.get_mut(*key),
            Step::Index(index) => v.get_mut(*index),
        });
    }
    match (at, member) {
        (Some(Value::Object(object)), Step::Key(key)) => {
            object.remove(key);
        }
        (Some(Value::Array(items)), Step::Index(index)) if index < items.len() => {
            items.remove(index);
        }
        _ => {}
    }
}

/// "health.tcp", "nodes[1]": a path below a service, as people write it.
pub(super) fn dotted(path: &[Step<'_>]) -> String {
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

#[cfg(test)]
/// The error parsing `text` gives, for tests.
pub(super) fn parse_error(text: &str) -> ConfigError {
    parse(text, Some("host")).expect_err("the text is refused")
}

#[cfg(test)]
mod tests {

    use super::parse_error as error;
    use super::*;
    use crate::config::*;

    #[test]
    fn tracing_an_error_in_a_file_of_many_keys_is_bounded() {
        // Each trial copies and parses the whole file: a megabyte of keys
        // must not cost one trial per key.
        let mut object = serde_json::Map::new();
        for i in 0..5000 {
            object.insert(format!("k{i}"), Value::from(i));
        }
        let value = Value::Object(object);
        // The first parse, of the whole value, counts as a trial too.
        let trials = std::cell::Cell::new(0);
        let path = culprit(&value, &|_| {
            trials.set(trials.get() + 1);
            Err("refused".into())
        });
        trials.set(trials.get() - 1);
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
    fn comments_are_read_as_spaces_and_errors_keep_their_lines() {
        let text = "# l2vip\n{\n  // who\n  \"node\": \"a\", # this node\n  \
                    \"hooks\": {\"on_acquire\": \"logger '#1' http://x\\\" //\"},\n  \
                    \"services\": []\n}\n# end";
        let config = parse(text, None).expect("a commented configuration");
        assert_eq!(config.node, "a");
        assert_eq!(
            config.hooks.on_acquire.as_deref(),
            Some("logger '#1' http://x\" //")
        );
        let bad = error("// one\n{\"node\": \"a\", # two\n \"colour\": 1}");
        assert_eq!(bad.line, Some(3));
        assert!(bad.message.contains("unknown field `colour`"), "{bad}");
        // A UCI file's comments are its own.
        let uci = parse("# router\nconfig l2vip 'main'\n\toption node 'r1'\n", None);
        assert_eq!(uci.expect("UCI").node, "r1");
        assert_eq!(error("# only a comment\n").message, NOT_A_CONFIG);
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
\toption on_primary '/usr/libexec/l2vip/conntrackd'
\tlist group 'web'

config service 'web'
\toption ip '192.0.2.200'
\toption interface 'eth0'
\toption health_exec 'true'
";
        let json = r#"{"node": "r1", "priority": 150, "linger_s": 30, "nice": -5,
            "heartbeat": {"interval_ms": 500, "peers": ["192.0.2.12"], "insecure": true},
            "hooks": {"on_acquire": "logger acquired",
                      "on_primary": "/usr/libexec/l2vip/conntrackd", "group": ["web"]},
            "services": [{"name": "web", "ip": "192.0.2.200", "interface": "eth0",
                          "health": {"exec": "true"}}]}"#;
        assert_eq!(parse(uci, None).unwrap(), parse(json, None).unwrap());

        let bad_ip = uci.replace("192.0.2.200", "192.0.2.300");
        assert_eq!(
            parse(&bad_ip, None).unwrap_err().to_string(),
            "line 18: config service 'web', option ip: \"192.0.2.300\" is not an IPv4 or IPv6 address"
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
            "line 22: config service 'web2', option ip: 192.0.2.200 is already the address of services[0]"
        );
        let (config, source) = parse_source(uci, None).unwrap();
        let missing = check_interfaces(&source, &config, |_| Err("no such interface".into()));
        assert_eq!(
            missing.unwrap_err().to_string(),
            "line 19: config service 'web', option interface: no such interface"
        );
        for text in ["", "  \n", "[1]", "hello"] {
            assert!(parse(text, None).is_err(), "{text:?}");
        }
    }

    /// Each case: the file, and the line and message of its error.
    fn assert_errors(cases: &[(&str, usize, &str)]) {
        for (text, line, message) in cases {
            let e = error(text);
            assert_eq!(
                (e.line, e.message.as_str()),
                (Some(*line), *message),
                "{text}"
            );
        }
    }

    #[test]
    fn a_bad_or_mistyped_member_of_a_service_is_named() {
        assert_errors(&[
            (
                "{\"node\": \"a\", \"services\": [\n {\"interface\": \"e\", \"ip\": \"192.0.2.1\",\n  \"name\": 5}]}",
                3,
                "services[0].name: invalid type: integer `5`, expected a string",
            ),
            (
                "{\"node\": \"a\", \"services\": [\n {\"interface\": \"e\", \"ip\": \"192.0.2.1\",\n  \"nmae\": \"w\"}]}",
                3,
                "services[0].nmae: unknown field `nmae`, expected one of `name`, `ip`, `interface`, \
                 `nodes`, `bind`, `mac`, `answer`, `export`, `health`",
            ),
        ]);
    }

    #[test]
    fn of_two_bad_members_the_one_the_message_is_about_is_named() {
        assert_errors(&[(
            "{\"node\": \"a\", \"heartbeat\": {\n \"port\": \"x\",\n \"interval_ms\": \"y\"}}",
            3,
            "heartbeat.interval_ms: invalid type: string \"y\", expected u64",
        )]);
    }

    #[test]
    fn an_element_of_a_list_is_named_with_its_index() {
        assert_errors(&[(
            "{\"node\": \"a\", \"heartbeat\": {\"peers\": [\n \"192.0.2.1\",\n 5]}}",
            3,
            "heartbeat.peers[1]: invalid type: integer `5`, expected a string",
        )]);
    }

    #[test]
    fn a_bad_member_of_a_nested_object_is_named_down_to_it() {
        assert_errors(&[(
            "{\"node\": \"a\", \"heartbeat\": {\"multicast\": {\n \"interface\": \"eth0\",\n \"group\": 5}}}",
            3,
            "heartbeat.multicast.group: invalid type: integer `5`, expected a string",
        )]);
    }

    #[test]
    fn a_missing_member_names_the_object_that_lacks_it() {
        assert_errors(&[(
            "{\"node\": \"a\", \"heartbeat\": {\n \"multicast\": {\"interface\": \"eth0\"}}}",
            2,
            "heartbeat.multicast: missing field `group`",
        )]);
    }

    #[test]
    fn a_key_written_twice_is_found_where_its_value_is_kept() {
        // serde keeps the last value, and so does the line.
        assert_errors(&[
            (
                "{\"node\": \"a\",\n \"priority\": 5,\n \"priority\": 300}",
                3,
                "priority: 300 is outside 1..255",
            ),
            (
                "{\"node\": \"a\",\n \"announce\": {\"count\": 1},\n \"announce\": {\"count\": \"x\"}}",
                3,
                "announce.count: invalid type: string \"x\", expected u32",
            ),
        ]);
    }

    #[test]
    fn a_file_over_64_kib_is_not_searched_and_says_so() {
        let mut text = String::from("{\"node\": \"a\",\n \"heartbeat\": {\"port\": \"x\"}");
        while text.len() <= MAX_TRACED_LEN {
            text.push_str(",\n \"cluster\": \"lan\"");
        }
        text.push('}');
        let e = error(&text);
        // The line of the whole value: the key is not known.
        assert_eq!(e.line, Some(1), "{}", e.message);
        assert_eq!(
            e.message,
            format!("invalid type: string \"x\", expected u16{UNTRACED}")
        );
        // Just under the size, the same error is traced to its key.
        let small = error("{\"node\": \"a\",\n \"heartbeat\": {\"port\": \"x\"}}");
        assert_eq!(small.line, Some(2));
        assert!(
            small.message.starts_with("heartbeat.port: "),
            "{}",
            small.message
        );
    }
}
