//! l2vip keeps virtual IPs alive on an Ethernet segment.
#![deny(unsafe_code)]

pub mod wire;
