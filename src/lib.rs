//! l2vip keeps virtual IPs alive on an Ethernet segment.
#![deny(unsafe_code)]

#[macro_use]
mod macros;

// The surface is what the binary, `tests/` and `fuzz/` use; everything
// else is the crate's own, so rustc reports what nothing calls.
pub(crate) mod actions;
pub(crate) mod catalogue;
pub(crate) mod channel;
pub mod config;
pub mod control;
pub(crate) mod counters;
pub mod daemon;
pub mod election;
pub(crate) mod files;
pub(crate) mod link;
pub(crate) mod message;
pub(crate) mod ownership;
pub mod responder;
pub(crate) mod state;
#[allow(unsafe_code)]
pub(crate) mod sys;
pub mod syslog;
pub mod wire;
