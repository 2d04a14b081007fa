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

/// What this node is for the services of `hooks.group` (every service
/// unless given), as keepalived's sync groups are: what the node-level
/// hooks (`on_primary`, `on_backup`, `on_fault`) follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// It owns at least one VIP of the group.
    Primary,
    /// It owns none (standing by, draining, or still starting).
    #[default]
    Backup,
    /// It may serve none of them: for each, its link is down or gone, or
    /// its health check fails.
    Fault,
}

impl Role {
    /// Its name: `L2VIP_EVENT`'s value, the status field's.
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Backup => "backup",
            Role::Fault => "fault",
        }
    }
}

/// Every VIP this node owns at one moment. Immutable; shared as `Arc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The node's role that follows from it.
    pub role: Role,
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
