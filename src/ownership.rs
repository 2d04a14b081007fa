//! Which VIPs this node answers for: the snapshot the election publishes,
//! the actions apply to the host and the responder follows.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::Export;
use crate::wire::EthernetAddress;

/// One VIP this node owns. The strings are shared: every snapshot and
/// every thread holding this VIP points at the same name and interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    /// Service name.
    pub name: Arc<str>,
    /// The address.
    pub ip: IpAddr,
    /// The interface it is answered on.
    pub interface: Arc<str>,
    /// Whether the owner installs a local route for it (`bind: route`).
    pub route: bool,
    /// The MAC it is answered with; `None`: the interface's.
    pub mac: Option<EthernetAddress>,
    /// Whether ARP and NS for it are answered (false: routed only).
    pub answer: bool,
    /// The route for routing daemons, if it is exported.
    pub export: Option<Export>,
}

/// Every VIP this node owns at one moment. Immutable; shared as `Arc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The owned VIPs: answered, announced, routed.
    pub vips: Vec<Vip>,
    /// VIPs handed over recently: still routed (traffic from clients with
    /// stale caches is accepted), never answered.
    pub lingering: Vec<Vip>,
    /// VIPs exported with `"what": "eligible"` that this node may serve
    /// now (healthy, link up, not draining), owned or not: exported and
    /// routed, answered only when also owned.
    pub eligible: Vec<Vip>,
}
