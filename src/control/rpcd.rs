//! OpenWrt's rpcd exec-plugin protocol, so `ubus call l2vip status` reaches
//! the daemon: rpcd runs its plugin `/usr/libexec/rpcd/l2vip` with `list`
//! (print the methods and their arguments) or `call METHOD` (arguments as
//! a JSON object on stdin, the answer as one JSON object on stdout). The
//! plugin hands both to `l2vip rpcd`.

use serde_json::{Map, Value};

use super::protocol::Request;

/// The longest argument object read from stdin.
pub const MAX_INPUT: u64 = 64 * 1024;

/// The methods offered over ubus, each with its optional arguments.
const METHODS: &[(&str, &[&str])] = &[
    ("status", &[]),
    ("services", &[]),
    ("metrics", &[]),
    ("drain", &[]),
    ("undrain", &[]),
    ("handover", &["service"]),
];

/// `list`'s answer: every method of `METHODS` with its arguments' types
/// (a unit test keeps the two the same).
pub const LIST: &str = r#"{"status":{},"services":{},"metrics":{},"drain":{},"undrain":{},"handover":{"service":"str"}}"#;

/// The control request for `call METHOD` with `input` (stdin; empty is no
/// arguments). An unknown method or argument, or input that is not a JSON
/// object, is an error that says so.
pub fn request(method: &str, input: &[u8]) -> Result<Request, String> {
    let Some((_, allowed)) = METHODS.iter().find(|(name, _)| *name == method) else {
        return Err(format!("unknown method {method:?}"));
    };
    let Ok(input) = std::str::from_utf8(input) else {
        return Err("the arguments are not UTF-8 text".into());
    };
    let mut arguments = if input.trim().is_empty() {
        Map::new()
    } else {
        // As text, with the parser the control socket uses.
        match serde_json::from_str(input) {
            Ok(Value::Object(arguments)) => arguments,
            Ok(_) => return Err("the arguments must be a JSON object".into()),
            Err(e) => return Err(format!("the arguments are not JSON: {e}")),
        }
    };
    if let Some(unknown) = arguments
        .keys()
        .find(|key| !allowed.contains(&key.as_str()))
    {
        return Err(format!("{method}: unknown argument {unknown:?}"));
    }
    arguments.insert("command".into(), Value::from(method));
    serde_json::from_value(Value::Object(arguments)).map_err(|e| format!("{method}: {e}"))
}

/// What `call` prints: the daemon's data when it is an object, else the
/// data under the method's name (ubus answers are objects); a refusal as
/// `{"error": CODE, "message": TEXT}`.
pub fn answer(method: &str, outcome: Result<Value, (String, String)>) -> Value {
    match outcome {
        Ok(Value::Object(data)) => Value::Object(data),
        Ok(data) => serde_json::json!({ method: data }),
        Err((code, message)) => error(&code, &message),
    }
}

/// An error in the shape `call` prints.
pub fn error(code: &str, message: &str) -> Value {
    serde_json::json!({"error": code, "message": message})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_every_method_with_its_arguments() {
        let list: Value = serde_json::from_str(LIST).unwrap();
        let methods: Map<String, Value> = METHODS
            .iter()
            .map(|(name, arguments)| {
                let arguments = arguments
                    .iter()
                    .map(|argument| (argument.to_string(), Value::from("str")))
                    .collect();
                (name.to_string(), Value::Object(arguments))
            })
            .collect();
        assert_eq!(list, Value::Object(methods));
        assert_eq!(
            list,
            serde_json::json!({
                "status": {}, "services": {}, "metrics": {}, "drain": {}, "undrain": {},
                "handover": {"service": "str"}
            })
        );
    }

    #[test]
    fn calls_become_control_requests() {
        assert_eq!(request("status", b""), Ok(Request::Status));
        assert_eq!(request("drain", b" {}\n"), Ok(Request::Drain));
        assert_eq!(
            request("handover", br#"{"service": "web"}"#),
            Ok(Request::Handover {
                service: Some("web".into())
            })
        );
        assert_eq!(
            request("handover", b"{}"),
            Ok(Request::Handover { service: None })
        );
    }

    #[test]
    fn bad_calls_are_refused_with_the_reason() {
        let refused = |method: &str, input: &[u8]| request(method, input).unwrap_err();
        assert_eq!(refused("reboot", b""), "unknown method \"reboot\"");
        // A control command that ubus does not offer.
        assert_eq!(refused("add", b""), "unknown method \"add\"");
        assert_eq!(
            refused("status", br#"{"service": "web"}"#),
            "status: unknown argument \"service\""
        );
        assert_eq!(
            refused("handover", b"[]"),
            "the arguments must be a JSON object"
        );
        assert!(refused("handover", b"{").starts_with("the arguments are not JSON"));
        assert!(refused("handover", br#"{"service": 7}"#).starts_with("handover: "));
        // Trying to smuggle another command in.
        assert_eq!(
            refused("status", br#"{"command": "drain"}"#),
            "status: unknown argument \"command\""
        );
    }

    #[test]
    fn answers_are_objects() {
        let data = serde_json::json!({"node": "n1"});
        assert_eq!(answer("status", Ok(data.clone())), data);
        assert_eq!(
            answer("services", Ok(serde_json::json!([1]))),
            serde_json::json!({"services": [1]})
        );
        assert_eq!(
            answer("drain", Err(("busy".into(), "later".into()))),
            serde_json::json!({"error": "busy", "message": "later"})
        );
    }
}
