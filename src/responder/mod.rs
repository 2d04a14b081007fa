//! The responder: answers ARP and Neighbor Solicitations for owned VIPs
//! and announces them. `logic` decides; `thread` moves the frames.

pub mod counters;
pub mod logic;
pub mod thread;
