//! Control socket request lines: any bytes get a request or an error
//! response, never a panic; an `add` request's service goes through the
//! same checks as the configuration file's.
#![no_main]

use l2vip::control::protocol::{parse_request, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Request::Add { service }) = parse_request(data) {
        let _ = l2vip::config::service_from_json(service);
    }
});
