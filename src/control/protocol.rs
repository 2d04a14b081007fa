//! The control protocol, shared by the server and the CLI: one JSON object
//! per line each way. Requests are `{"command": "...", ...}`; responses
//! are `{"ok": true, "data": ...}` or
//! `{"ok": false, "error": {"code": "...", "message": "..."}}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest request line accepted, newline included.
pub const MAX_LINE: usize = 64 * 1024;

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Node, VIPs with their owners, peers.
    Status,
    /// The configured services.
    Services,
    /// Every counter.
    Metrics,
    /// Give up every VIP and stay a non-candidate.
    Drain,
    /// Be a candidate again (ownership stays where it is: sticky).
    Undrain,
    /// Move one VIP (`service`) or all this node owns to the next candidate now.
    Handover {
        /// The service to move; all owned ones when absent.
        #[serde(default)]
        service: Option<String>,
    },
    /// Add a service at runtime: `{"name", "ip", "interface", "nodes"?}`.
    Add {
        /// The service, as in the configuration file.
        service: serde_json::Value,
    },
    /// Remove a service added at runtime, by name.
    Remove {
        /// Its name.
        service: String,
    },
    /// Re-read the configuration file and apply the difference.
    Reload,
}

impl Request {
    /// Whether the request changes anything (refused to read-only clients).
    pub fn is_mutating(&self) -> bool {
        !matches!(self, Request::Status | Request::Services | Request::Metrics)
    }
}

/// Why a request failed: stable, machine-readable codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The line is not a JSON object (or not UTF-8).
    #[serde(rename = "parse_error")]
    Parse,
    /// No such command.
    UnknownCommand,
    /// A field is missing, unknown or of the wrong type.
    BadRequest,
    /// The line is longer than `MAX_LINE`; the connection is closed.
    TooLong,
    /// The client may not use this command.
    Forbidden,
    /// Too many clients are connected; the connection is closed.
    Busy,
    /// No service of that name.
    NotFound,
    /// This node does not own that VIP.
    NotOwner,
    /// No other node could take the VIP.
    NoCandidate,
    /// The daemon could not answer (a thread is gone).
    Internal,
    /// A service of that name or address exists already.
    Exists,
    /// The service comes from the configuration file: edit it and reload.
    Configured,
    /// The service's interface cannot carry VIPs here.
    BadInterface,
    /// The configuration file is invalid; the running one stays in force.
    InvalidConfig,
    /// The state file could not be written; nothing was changed.
    StateFile,
    /// A limit would be passed (1024 services).
    TooMany,
}

/// Why a request failed; `code` is stable, `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: Code,
    /// What went wrong.
    pub message: String,
}

/// A response: data on success, or an error, never both. On the wire
/// `{"ok":true,"data":...}` or `{"ok":false,"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Success, with its data.
    Ok(Value),
    /// Failure.
    Error(ErrorBody),
}

/// A response as it is written.
#[derive(Serialize)]
struct Line<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorBody>,
}

impl Serialize for Response {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let line = match self {
            Response::Ok(data) => Line {
                ok: true,
                data: Some(data),
                error: None,
            },
            Response::Error(error) => Line {
                ok: false,
                data: None,
                error: Some(error),
            },
        };
        line.serialize(serializer)
    }
}

impl Response {
    /// A success carrying `data`.
    pub fn ok(data: Value) -> Response {
        Response::Ok(data)
    }

    /// A failure.
    pub fn error(code: Code, message: impl Into<String>) -> Response {
        Response::Error(ErrorBody {
            code,
            message: message.into(),
        })
    }

    /// The response as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"ok":false,"error":{"code":"internal","message":"unserializable response"}}"#
                .to_vec()
        });
        line.push(b'\n');
        line
    }
}

/// A response as the CLI reads it: the line as sent (for `--json`), and
/// what it says. A daemon of another version may send codes this one does
/// not know, so the code stays text here.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The response line's JSON, unchanged.
    pub line: Value,
    /// Its data, or its error's code and message.
    pub outcome: Result<Value, (String, String)>,
}

impl Reply {
    /// Reads a response line; one that is not a response in either form
    /// (or claims both) is an error naming what is wrong.
    pub fn parse(text: &str) -> Result<Reply, String> {
        let line: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let outcome = match (line.get("ok"), line.get("data"), line.get("error")) {
            (Some(Value::Bool(true)), Some(data), None) => Ok(data.clone()),
            (Some(Value::Bool(false)), None, Some(error)) => {
                let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_string);
                match (text("code"), text("message")) {
                    (Some(code), Some(message)) => Err((code, message)),
                    _ => return Err("an error without a code and a message".into()),
                }
            }
            _ => return Err("neither data with ok, nor an error without".into()),
        };
        Ok(Reply { line, outcome })
    }
}

/// Reads a request line (without its newline), or the error response.
pub fn parse_request(line: &[u8]) -> Result<Request, Response> {
    let text = std::str::from_utf8(line)
        .map_err(|_| Response::error(Code::Parse, "the request is not UTF-8 text"))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Response::error(Code::Parse, format!("the request is not JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(Response::error(
            Code::Parse,
            "the request must be a JSON object",
        ));
    };
    let command = match object.get("command") {
        Some(Value::String(command)) => command.clone(),
        Some(_) => {
            return Err(Response::error(
                Code::BadRequest,
                "\"command\" must be a string",
            ))
        }
        None => {
            return Err(Response::error(
                Code::BadRequest,
                "missing field \"command\"",
            ))
        }
    };
    const KNOWN: [&str; 9] = [
        "status", "services", "metrics", "drain", "undrain", "handover", "add", "remove", "reload",
    ];
    if !KNOWN.contains(&command.as_str()) {
        return Err(Response::error(
            Code::UnknownCommand,
            format!("unknown command {command:?}; known: {}", KNOWN.join(", ")),
        ));
    }
    // serde ignores unknown fields of unit variants: check them here.
    let allowed: &[&str] = if matches!(command.as_str(), "handover" | "add" | "remove") {
        &["command", "service"]
    } else {
        &["command"]
    };
    if let Some(field) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(Response::error(
            Code::BadRequest,
            format!("{command}: unknown field {field:?}"),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| Response::error(Code::BadRequest, format!("{command}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(line: &[u8]) -> Code {
        match parse_request(line) {
            Err(Response::Error(error)) => error.code,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn requests() {
        assert_eq!(
            parse_request(br#"{"command":"status"}"#),
            Ok(Request::Status)
        );
        assert_eq!(
            parse_request(br#"{"command":"handover","service":"web"}"#),
            Ok(Request::Handover {
                service: Some("web".into())
            })
        );
        assert_eq!(
            parse_request(br#"{"command":"handover"}"#),
            Ok(Request::Handover { service: None })
        );
        assert!(Request::Drain.is_mutating() && !Request::Metrics.is_mutating());
    }

    #[test]
    fn errors() {
        assert_eq!(code_of(b"\xff\xfe"), Code::Parse);
        assert_eq!(code_of(b"not json"), Code::Parse);
        assert_eq!(code_of(b"[1,2]"), Code::Parse);
        assert_eq!(code_of(br#"{"cmd":"status"}"#), Code::BadRequest);
        assert_eq!(code_of(br#"{"command":7}"#), Code::BadRequest);
        assert_eq!(code_of(br#"{"command":"reboot"}"#), Code::UnknownCommand);
        assert_eq!(
            code_of(br#"{"command":"status","extra":1}"#),
            Code::BadRequest
        );
        assert_eq!(
            code_of(br#"{"command":"handover","service":5}"#),
            Code::BadRequest
        );
    }

    #[test]
    fn response_lines() {
        let line = Response::error(Code::Forbidden, "no").to_line();
        assert_eq!(
            line,
            b"{\"ok\":false,\"error\":{\"code\":\"forbidden\",\"message\":\"no\"}}\n"
        );
        let ok = Response::ok(serde_json::json!({"a": 1})).to_line();
        assert_eq!(ok, b"{\"ok\":true,\"data\":{\"a\":1}}\n");
        let parse = Response::error(Code::Parse, "x").to_line();
        assert!(parse.starts_with(b"{\"ok\":false,\"error\":{\"code\":\"parse_error\""));
    }

    #[test]
    fn replies_are_data_or_an_error_never_both() {
        let ok = Reply::parse(r#"{"ok":true,"data":{"a":1}}"#).unwrap();
        assert_eq!(ok.outcome, Ok(serde_json::json!({"a": 1})));
        let error =
            Reply::parse(r#"{"ok":false,"error":{"code":"new_code","message":"m"}}"#).unwrap();
        assert_eq!(error.outcome, Err(("new_code".into(), "m".into())));
        for bad in [
            r#"{"ok":true}"#,
            r#"{"ok":true,"data":1,"error":{"code":"x","message":"y"}}"#,
            r#"{"ok":false,"error":{"code":"x"}}"#,
            r#"{"ok":false,"data":1}"#,
            r#"{"ok":"yes","data":1}"#,
            r#"[]"#,
        ] {
            assert!(Reply::parse(bad).is_err(), "{bad}");
        }
    }
}
