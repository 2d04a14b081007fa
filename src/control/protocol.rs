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

/// Why a request failed; `code` is stable, `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// Error codes.
pub mod code {
    /// The line is not a JSON object (or not UTF-8).
    pub const PARSE: &str = "parse_error";
    /// No such command.
    pub const UNKNOWN_COMMAND: &str = "unknown_command";
    /// A field is missing, unknown or of the wrong type.
    pub const BAD_REQUEST: &str = "bad_request";
    /// The line is longer than `MAX_LINE`; the connection is closed.
    pub const TOO_LONG: &str = "too_long";
    /// The client may not use this command.
    pub const FORBIDDEN: &str = "forbidden";
    /// Too many clients are connected; the connection is closed.
    pub const BUSY: &str = "busy";
    /// No service of that name.
    pub const NOT_FOUND: &str = "not_found";
    /// This node does not own that VIP.
    pub const NOT_OWNER: &str = "not_owner";
    /// No other node could take the VIP.
    pub const NO_CANDIDATE: &str = "no_candidate";
    /// The daemon could not answer (a thread is gone).
    pub const INTERNAL: &str = "internal";
    /// A service of that name or address exists already.
    pub const EXISTS: &str = "exists";
    /// The service comes from the configuration file: edit it and reload.
    pub const CONFIGURED: &str = "configured";
    /// The service's interface cannot carry VIPs here.
    pub const BAD_INTERFACE: &str = "bad_interface";
    /// The configuration file is invalid; the running one stays in force.
    pub const INVALID_CONFIG: &str = "invalid_config";
    /// The state file could not be written; nothing was changed.
    pub const STATE_FILE: &str = "state_file";
    /// A limit would be passed (1024 services).
    pub const TOO_MANY: &str = "too_many";
}

/// A response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Success or not.
    pub ok: bool,
    /// The result, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The error, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    /// A success carrying `data`.
    pub fn ok(data: Value) -> Response {
        Response {
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    /// A failure.
    pub fn error(code: &str, message: impl Into<String>) -> Response {
        Response {
            ok: false,
            data: None,
            error: Some(ErrorBody {
                code: code.to_string(),
                message: message.into(),
            }),
        }
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

/// Reads a request line (without its newline), or the error response.
pub fn parse_request(line: &[u8]) -> Result<Request, Response> {
    let text = std::str::from_utf8(line)
        .map_err(|_| Response::error(code::PARSE, "the request is not UTF-8 text"))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Response::error(code::PARSE, format!("the request is not JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(Response::error(
            code::PARSE,
            "the request must be a JSON object",
        ));
    };
    let command = match object.get("command") {
        Some(Value::String(command)) => command.clone(),
        Some(_) => {
            return Err(Response::error(
                code::BAD_REQUEST,
                "\"command\" must be a string",
            ))
        }
        None => {
            return Err(Response::error(
                code::BAD_REQUEST,
                "missing field \"command\"",
            ))
        }
    };
    const KNOWN: [&str; 9] = [
        "status", "services", "metrics", "drain", "undrain", "handover", "add", "remove", "reload",
    ];
    if !KNOWN.contains(&command.as_str()) {
        return Err(Response::error(
            code::UNKNOWN_COMMAND,
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
            code::BAD_REQUEST,
            format!("{command}: unknown field {field:?}"),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| Response::error(code::BAD_REQUEST, format!("{command}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(line: &[u8]) -> String {
        parse_request(line).unwrap_err().error.unwrap().code
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
        assert_eq!(code_of(b"\xff\xfe"), code::PARSE);
        assert_eq!(code_of(b"not json"), code::PARSE);
        assert_eq!(code_of(b"[1,2]"), code::PARSE);
        assert_eq!(code_of(br#"{"cmd":"status"}"#), code::BAD_REQUEST);
        assert_eq!(code_of(br#"{"command":7}"#), code::BAD_REQUEST);
        assert_eq!(code_of(br#"{"command":"reboot"}"#), code::UNKNOWN_COMMAND);
        assert_eq!(
            code_of(br#"{"command":"status","extra":1}"#),
            code::BAD_REQUEST
        );
        assert_eq!(
            code_of(br#"{"command":"handover","service":5}"#),
            code::BAD_REQUEST
        );
    }

    #[test]
    fn response_lines() {
        let line = Response::error(code::FORBIDDEN, "no").to_line();
        assert_eq!(
            line,
            b"{\"ok\":false,\"error\":{\"code\":\"forbidden\",\"message\":\"no\"}}\n"
        );
        let ok = Response::ok(serde_json::json!({"a": 1})).to_line();
        assert_eq!(ok, b"{\"ok\":true,\"data\":{\"a\":1}}\n");
    }
}
