//! Which VIPs this node answers for: the snapshot the election publishes
//! and the responder follows.

use std::net::IpAddr;

/// One VIP this node owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// Service name.
    pub name: String,
    /// The address.
    pub ip: IpAddr,
    /// The interface it is answered on.
    pub interface: String,
}

/// Every VIP this node owns at one moment. Immutable; shared as `Arc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The owned VIPs.
    pub vips: Vec<Vip>,
}
