//! l2vip keeps virtual IPs alive on an Ethernet segment.
#![deny(unsafe_code)]

pub mod config;
#[allow(unsafe_code)]
pub mod sys;
pub mod wire;
