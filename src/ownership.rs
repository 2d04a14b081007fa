//! Which VIPs this node answers for: the snapshot the election publishes,
//! the actions apply to the host and the responder follows.

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
    /// Whether the owner installs a local route for it (`bind: route`).
    pub route: bool,
}

/// Every VIP this node owns at one moment. Immutable; shared as `Arc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The owned VIPs: answered, announced, routed.
    pub vips: Vec<Vip>,
    /// VIPs handed over recently: still routed (traffic from clients with
    /// stale caches is accepted), never answered.
    pub lingering: Vec<Vip>,
}
