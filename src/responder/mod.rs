//! The responder: answers ARP and Neighbor Solicitations for owned VIPs
//! and announces them. `logic` decides what to answer, `schedule` when to
//! announce, `conflicts` what other hosts' claims on owned VIPs are;
//! `thread` moves the frames.

pub(crate) mod conflicts;
pub mod logic;
pub(crate) mod schedule;
pub(crate) mod thread;
