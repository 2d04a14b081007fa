//! The validated configuration of one node: the model every other part of
//! the daemon reads, with its defaults and bounds.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::wire::EthernetAddress;
use serde::{Deserialize, Serialize};

/// Where the daemon looks for its configuration by default.
pub const DEFAULT_PATH: &str = "/etc/l2vip/config.json";
/// A configuration file larger than this is refused.
pub const MAX_FILE_LEN: u64 = 1 << 20;
/// The most services one node serves (the heartbeat format's bound).
pub const MAX_SERVICES: usize = 1024;
/// Linux's IFNAMSIZ less the terminating NUL.
pub const MAX_INTERFACE_NAME: usize = 15;
/// Names of nodes and services: 1 to 64 of `[A-Za-z0-9._-]`.
pub const MAX_NAME: usize = 64;
/// The most unicast peers a node sends heartbeats to (a cluster is ~16).
pub const MAX_PEERS: usize = 64;
/// Where services added at runtime are kept by default.
pub const DEFAULT_STATE_FILE: &str = "/etc/l2vip/runtime.json";
/// Where the control socket lives by default.
pub const DEFAULT_SOCKET: &str = "/var/run/l2vip/control.sock";
/// The default heartbeat UDP port.
pub const DEFAULT_PORT: u16 = 7947;
/// The most services with a MAC of their own on one interface: each is a
/// unicast address in the NIC's filter, and past the filter's size
/// (commonly 16 to 32 entries, fewer on router SoCs) the NIC goes
/// promiscuous.
pub const MAX_VIRTUAL_MACS: usize = 16;

/// The validated configuration of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// This node's name, unique in the cluster.
    pub node: String,
    /// Heartbeats of other clusters are ignored.
    pub cluster: String,
    /// 1..=255, higher wins.
    pub priority: u8,
    /// How VIPs are spread over the nodes.
    pub mode: Mode,
    /// Whether a better-ranked node takes VIPs back from their holder.
    pub preempt: bool,
    /// The heartbeat protocol.
    pub heartbeat: Heartbeat,
    /// Gratuitous ARP / unsolicited NA settings.
    pub announce: Announce,
    /// The control socket.
    pub control: Control,
    /// Where services added at runtime persist; `None`: they do not.
    pub state_file: Option<String>,
    /// How an owner accepts a VIP's traffic, unless a service says otherwise.
    pub bind: Bind,
    /// The MAC that answers for a VIP, unless a service says otherwise.
    pub mac: MacChoice,
    /// Routes for routing daemons (BIRD, FRR), unless a service says
    /// otherwise; `None`: none.
    pub export: Option<Export>,
    /// Seconds the old owner keeps accepting a VIP's traffic after a
    /// planned hand-over (clients with stale caches).
    pub linger_s: u64,
    /// Commands run when this node acquires or releases a VIP.
    pub hooks: Hooks,
    /// The user the daemon switches to after start-up (keeping only
    /// CAP_NET_RAW and CAP_NET_ADMIN); `None`: it stays who started it.
    pub user: Option<String>,
    /// Niceness of the responder and election threads (-20..=0): answers
    /// and heartbeats win the CPU over the daemon's other work and the
    /// host's ordinary processes.
    pub nice: i32,
    /// The VIPs, in file order.
    pub services: Vec<Service>,
}

/// The default `nice` of the responder and election threads.
pub const DEFAULT_NICE: i32 = -10;

/// The longest `linger_s`.
pub const MAX_LINGER_S: u64 = 3600;
/// The default `linger_s`: MetalLB's advice for clients with buggy caches.
pub const DEFAULT_LINGER_S: u64 = 120;

/// How the owner of a VIP makes its own kernel accept the VIP's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bind {
    /// A `local` route in the `local` table while the VIP is owned.
    Route,
    /// Nothing: something else (a proxy bound to the address, nftables)
    /// takes the traffic.
    None,
}

/// The MAC that answers for a VIP: in ARP replies and NAs, in
/// announcements, as the Ethernet source of both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacChoice {
    /// The interface's own MAC.
    Interface,
    /// A MAC of the service's own, the same on every node: derived from
    /// the cluster and service names (`virtual_mac`).
    Virtual,
    /// A MAC of the service's own, given.
    Fixed(EthernetAddress),
}

impl MacChoice {
    /// Reads "interface", "virtual" or a unicast MAC ("02:00:5e:10:00:01").
    pub fn parse(text: &str) -> Result<MacChoice, String> {
        match text {
            "interface" => return Ok(MacChoice::Interface),
            "virtual" => return Ok(MacChoice::Virtual),
            _ => {}
        }
        let mut mac = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut mac {
            *byte = parts
                .next()
                .filter(|p| p.len() == 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "{text:?} is not \"interface\", \"virtual\" or a MAC (02:00:5e:10:00:01)"
                    )
                })?;
        }
        if parts.next().is_some() {
            return Err(format!(
                "{text:?} is not \"interface\", \"virtual\" or a MAC (02:00:5e:10:00:01)"
            ));
        }
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(format!("{text:?} is not a unicast MAC"));
        }
        Ok(MacChoice::Fixed(EthernetAddress(mac)))
    }

    /// The MAC of service `name` in `cluster`; `None`: the interface's.
    pub fn resolve(self, cluster: &str, name: &str) -> Option<EthernetAddress> {
        match self {
            MacChoice::Interface => None,
            MacChoice::Virtual => Some(virtual_mac(cluster, name)),
            MacChoice::Fixed(mac) => Some(mac),
        }
    }
}

/// The MAC every node gives service `name` of `cluster` with `"mac":
/// "virtual"`: the first six bytes of SHA-256("l2vip virtual MAC\0" cluster
/// "\0" name), made unicast and locally administered (the first byte's low
/// two bits 10). Part of the protocol: it never changes between versions.
pub fn virtual_mac(cluster: &str, name: &str) -> EthernetAddress {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"l2vip virtual MAC\0");
    hash.update(cluster.as_bytes());
    hash.update(b"\0");
    hash.update(name.as_bytes());
    let digest = hash.finalize();
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    mac[0] = (mac[0] & 0xfc) | 0x02;
    EthernetAddress(mac)
}

impl Serialize for MacChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MacChoice::Interface => serializer.serialize_str("interface"),
            MacChoice::Virtual => serializer.serialize_str("virtual"),
            MacChoice::Fixed(mac) => serializer.collect_str(mac),
        }
    }
}

/// VIPs handed to a routing daemon (BIRD, FRR) as routes in a kernel
/// table it learns from, for BGP beyond the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Export {
    /// The kernel routing table (not 0, 253 default, 254 main, 255 local).
    pub table: u32,
    /// Which VIPs go there.
    pub what: ExportWhat,
    /// The routes' metric (the kernel's priority; BIRD's `krt_metric`).
    pub metric: u32,
}

/// Which VIPs a node exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportWhat {
    /// Those it owns: one node attracts a VIP's traffic.
    Owned,
    /// Those it may serve (healthy, not draining): every such node
    /// attracts traffic, which the router spreads (ECMP).
    Eligible,
}

/// A service's own `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportChoice {
    /// `false`: not exported, whatever the global setting.
    Off,
    /// Exported so.
    On(Export),
}

impl Serialize for ExportChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ExportChoice::Off => serializer.serialize_bool(false),
            ExportChoice::On(export) => export.serialize(serializer),
        }
    }
}

/// The global settings each service follows unless it says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// The global `bind`.
    pub bind: Bind,
    /// The global `export`.
    pub export: Option<Export>,
}

impl Config {
    /// The global settings services follow.
    pub fn defaults(&self) -> Defaults {
        Defaults {
            bind: self.bind,
            export: self.export,
        }
    }
}

/// Commands run on ownership changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hooks {
    /// Run (by `/bin/sh -c`) after this node acquires a VIP.
    pub on_acquire: Option<String>,
    /// Run after this node releases a VIP.
    pub on_release: Option<String>,
    /// Run when this node becomes primary (see `Role`).
    pub on_primary: Option<String>,
    /// Run when it becomes a backup.
    pub on_backup: Option<String>,
    /// Run when it enters fault.
    pub on_fault: Option<String>,
    /// The services whose ownership makes the node primary (empty: every
    /// service).
    pub group: Vec<String>,
    /// A hook still running after this long is killed.
    pub timeout_ms: u64,
}

impl Hooks {
    /// The time a hook may run.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// A health check: while it fails, this node is no candidate for the VIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// What is checked.
    #[serde(flatten)]
    pub check: Check,
    /// Time between checks.
    pub interval_ms: u64,
    /// A check taking longer fails.
    pub timeout_ms: u64,
    /// Successes in a row that make a failing service healthy.
    pub rise: u32,
    /// Failures in a row that make a healthy service failing.
    pub fall: u32,
}

impl Health {
    /// Time between checks.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// Time one check may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The kind of health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// A TCP connection to this address succeeds.
    Tcp(SocketAddr),
    /// This command (by `/bin/sh -c`) exits with status 0.
    Exec(String),
}

/// How owners are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One leader, ranked by (priority, name), owns every VIP.
    Single,
    /// Each VIP goes to the top of a priority-weighted rendezvous hash.
    Spread,
}

/// The heartbeat protocol between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heartbeat {
    /// UDP port, the same on every node.
    pub port: u16,
    /// Local address to bind, if not the wildcard.
    pub bind: Option<IpAddr>,
    /// Time between heartbeats.
    pub interval_ms: u64,
    /// A peer is alive while its last heartbeat is younger than this.
    pub lease_ms: u64,
    /// Unicast peers.
    pub peers: Vec<SocketAddr>,
    /// A multicast group to send to and listen on.
    pub multicast: Option<Multicast>,
    /// File holding the HMAC-SHA256 key (mode 0600).
    pub key_file: Option<String>,
    /// Peers or a group may go without a key (the file says so): then
    /// heartbeats are not authenticated, and anyone on the LAN can move
    /// the VIPs.
    pub insecure: bool,
}

impl Heartbeat {
    /// Time between heartbeats.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// How long a heartbeat keeps its sender alive.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// True when this node has nobody to talk to: a one-node cluster.
    pub fn is_alone(&self) -> bool {
        self.peers.is_empty() && self.multicast.is_none()
    }
}

/// A multicast group for heartbeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Multicast {
    /// The group address.
    pub group: IpAddr,
    /// The interface to send and join on.
    pub interface: String,
}

/// The control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Control {
    /// Path of the Unix socket.
    pub socket: String,
    /// A group whose members may use the read-only commands.
    pub group: Option<String>,
    /// A client silent this long is disconnected.
    pub idle_s: u64,
}

impl Control {
    /// How long a client may stay silent.
    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_s)
    }
}

/// How a new owner makes the segment learn where a VIP lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Announce {
    /// Rounds in the burst sent on acquiring a VIP.
    pub count: u32,
    /// Time between rounds; over 1 s so Linux's ARP locktime keeps none.
    pub interval_ms: u64,
    /// Period of a refresh round while owning a VIP; 0 turns it off.
    pub refresh_s: u64,
}

impl Announce {
    /// Time between rounds of a burst.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// Period of the refresh round, if enabled.
    pub fn refresh(&self) -> Option<Duration> {
        (self.refresh_s > 0).then(|| Duration::from_secs(self.refresh_s))
    }
}

impl Default for Announce {
    fn default() -> Self {
        Announce {
            count: 5,
            interval_ms: 1100,
            refresh_s: 60,
        }
    }
}

/// One virtual IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// Unique name. Shared (with the election's and the responder's
    /// forms of the service), as is the interface name.
    pub name: Arc<str>,
    /// The address answered for.
    pub ip: IpAddr,
    /// The interface it lives on.
    pub interface: Arc<str>,
    /// The nodes that may own it; empty: every node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Overrides the global `bind`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<Bind>,
    /// Overrides the global `mac`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacChoice>,
    /// Whether ARP and Neighbor Solicitations for the VIP are answered;
    /// false: it is only routed (exported), for VIPs beyond the segment.
    #[serde(skip_serializing_if = "is_true")]
    pub answer: bool,
    /// Overrides the global `export`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportChoice>,
    /// An optional health check (boxed: most services have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Box<Health>>,
}

impl Service {
    /// Where the service's routes for routing daemons go, if anywhere (a
    /// link-local VIP means nothing beyond its link: nowhere).
    pub fn export(&self, default: Option<Export>) -> Option<Export> {
        if self.link_local() {
            return None;
        }
        match self.export {
            None => default,
            Some(ExportChoice::Off) => None,
            Some(ExportChoice::On(export)) => Some(export),
        }
    }

    /// Whether the VIP is an IPv6 link-local address (fe80::/10): one per
    /// interface, the owner's own address on it while owned.
    pub fn link_local(&self) -> bool {
        is_link_local(self.ip)
    }

    /// The MAC it is answered with (`default` unless it names one); a
    /// link-local VIP always with its interface's.
    pub fn mac_choice(&self, default: MacChoice) -> MacChoice {
        if self.link_local() {
            return MacChoice::Interface;
        }
        self.mac.unwrap_or(default)
    }
}

/// Whether `ip` is an IPv6 link-local address (fe80::/10).
pub fn is_link_local(ip: IpAddr) -> bool {
    link_local(ip).is_some()
}

/// `ip` as an IPv6 link-local address (fe80::/10), if it is one.
pub fn link_local(ip: IpAddr) -> Option<Ipv6Addr> {
    match ip {
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some(v6),
        _ => None,
    }
}

fn is_true(value: &bool) -> bool {
    *value
}
