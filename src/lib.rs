//! l2vip keeps virtual IPs alive on an Ethernet segment.
#![deny(unsafe_code)]

#[macro_use]
mod macros;

pub mod actions;
pub mod catalogue;
pub mod channel;
pub mod config;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod election;
pub mod files;
pub mod link;
pub mod message;
pub mod ownership;
pub mod responder;
pub mod state;
#[allow(unsafe_code)]
pub mod sys;
pub mod syslog;
pub mod wire;
