//! Every message that crosses a channel between the daemon's threads.
//!
//! The thread modules import these, never each other: a thread knows what
//! it may say and hear, not who else is in the house. Which way each goes:
//!
//! | message | from | to |
//! |---|---|---|
//! | `ElectionCommand` | supervisor, control, link, actions | election |
//! | `ActionsCommand` | supervisor, control, election, link | actions |
//! | `ResponderCommand` | supervisor, control, actions, election, link | responder |
//! | `LinkCommand` | supervisor | link |
//! | `ControlEvent` | supervisor, election, responder | control |
//!
//! Ownership flows one way: election -> actions (routes first) ->
//! responder, as `Arc<Ownership>` snapshots.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::channel::Mailbox;
use crate::config::{Bind, Defaults, Hooks, Mode, Service};
pub use crate::counters::Counters as ResponderCounters;
use crate::ownership::{Ownership, Role};
use crate::wire::EthernetAddress;

/// What the other threads learn about one interface (the link thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Interface name.
    pub name: String,
    /// Its index (a re-created interface gets a new one).
    pub index: u32,
    /// False once the interface was deleted.
    pub present: bool,
    /// Administratively up with carrier.
    pub usable: bool,
    /// Its hardware address.
    pub mac: Option<EthernetAddress>,
}

/// A health check result, from the actions thread to the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// The service.
    pub service: String,
    /// `None` until the first result.
    pub healthy: Option<bool>,
    /// The last result, for people: "connected", "exit 1", "timed out".
    pub detail: String,
}

/// Messages to the election.
#[derive(Debug)]
pub enum ElectionCommand {
    /// Release everything, tell the peers we are leaving, and stop.
    Leave,
    /// Write the counters and peers to the log.
    LogCounters,
    /// An interface changed (the link thread).
    Link(LinkState),
    /// An address was added to or removed from an interface.
    Address {
        /// The address.
        ip: IpAddr,
        /// The interface's name, if known.
        interface: Option<String>,
        /// Added (true) or removed.
        added: bool,
    },
    /// A health check result (the actions thread).
    Health(HealthReport),
    /// The settings a reload changes without a restart (the catalogue).
    Tune(Box<Tuning>),
    /// The services in force, configured and runtime (the catalogue).
    SetServices {
        /// Every service, the file's first.
        services: Vec<Service>,
        /// The global settings services follow.
        defaults: Defaults,
    },
    /// A client's question or order; the answer goes to `reply_to`,
    /// tagged with `id`, after any change it makes is published.
    Ask {
        /// The control request id.
        id: u64,
        /// What is asked.
        ask: ElectionAsk,
        /// Where the answer goes.
        reply_to: Mailbox<ControlEvent>,
    },
}

/// The settings of the election that a reload applies at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// 1..=255, higher wins.
    pub priority: u8,
    /// Whether a better-ranked node takes VIPs back.
    pub preempt: bool,
    /// The heartbeat key, if any.
    pub key: Option<Vec<u8>>,
    /// How long a planned hand-over keeps the VIP's route here.
    pub linger: Duration,
    /// The services whose ownership makes this node primary (`hooks.group`;
    /// empty: every service).
    pub group: Vec<String>,
}

/// What a client may ask of the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionAsk {
    /// The node, its services and peers.
    Status,
    /// The services and their owners.
    Services,
    /// The election's counters and the VIPs owned.
    Metrics,
    /// Release every VIP and take none (true), or be a candidate again.
    Drain(bool),
    /// A planned move of one VIP, or of every owned one.
    Handover(Option<String>),
}

/// The election's answer to an `ElectionAsk`.
#[derive(Debug, Clone, PartialEq)]
pub enum ElectionAnswer {
    /// For `Status`.
    Status(Box<StatusSnapshot>),
    /// For `Services`.
    Services(Vec<ServiceView>),
    /// For `Metrics`.
    Metrics(Box<ElectionMetrics>),
    /// For `Drain`: whether the node is draining now.
    Draining(bool),
    /// For `Handover`: the services handed over.
    HandedOver(Vec<String>),
    /// For `Handover`: why nothing was handed over.
    Refused(Refusal),
}

/// Why a hand-over was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No service of that name.
    NotFound(String),
    /// This node does not own that VIP (`None`: owns none at all).
    NotOwner(Option<String>),
    /// No other node could take the VIP now.
    NoCandidate(String),
}

/// Why this node cannot serve a VIP now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unfit {
    /// The VIP's interface is down or has no carrier.
    #[serde(rename = "link down")]
    LinkDown,
    /// The VIP's interface does not exist.
    #[serde(rename = "interface gone")]
    InterfaceGone,
    /// The service's health check fails.
    #[serde(rename = "health check failing")]
    HealthFailing,
    /// The service's health check has no result yet.
    #[serde(rename = "health check pending")]
    HealthPending,
}

impl Unfit {
    /// The reason as `status` and the log write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unfit::LinkDown => "link down",
            Unfit::InterfaceGone => "interface gone",
            Unfit::HealthFailing => "health check failing",
            Unfit::HealthPending => "health check pending",
        }
    }
}

/// The node as `status` shows it. Field names are the control protocol's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusSnapshot {
    /// This node's name.
    pub node: String,
    /// The cluster it belongs to.
    pub cluster: String,
    /// Its priority.
    pub priority: u8,
    /// `single` or `spread`.
    pub mode: Mode,
    /// Whether it preempts.
    pub preempt: bool,
    /// The heartbeat interval.
    pub interval_ms: u64,
    /// The lease.
    pub lease_ms: u64,
    /// Whether it is draining.
    pub draining: bool,
    /// Its role for the node-level hooks.
    pub role: Role,
    /// Seconds since the election started.
    pub uptime_s: u64,
    /// The service-list digest, 16 hex digits.
    pub digest: String,
    /// Whether every alive peer has the same digest.
    pub digest_agreement: bool,
    /// Heartbeats go to peers without a key (`heartbeat.insecure`).
    pub insecure: bool,
    /// Every service.
    pub services: Vec<ServiceStatus>,
    /// Every remembered peer.
    pub peers: Vec<PeerStatus>,
}

/// Where a VIP stands, from this node's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VipState {
    /// This node owns it.
    Owner,
    /// Handed over recently; its traffic is still accepted here.
    Lingering,
    /// Another node owns it.
    Standby,
    /// Nobody owns it.
    #[serde(rename = "no owner")]
    NoOwner,
}

/// One service in `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceStatus {
    /// Its name.
    pub name: Arc<str>,
    /// The VIP.
    pub ip: IpAddr,
    /// Its interface.
    pub interface: Arc<str>,
    /// The MAC it is answered with, when it has one of its own.
    pub mac: Option<String>,
    /// The node that owns it, if any.
    pub owner: Option<String>,
    /// This node's view of it.
    pub state: VipState,
    /// Seconds since this node acquired it.
    pub since_s: Option<u64>,
    /// Why this node cannot serve it now.
    pub unfit: Option<Unfit>,
    /// Seconds of linger left.
    pub linger_left_s: Option<u64>,
    /// Its health check, if it has one.
    pub health: Option<HealthStatus>,
    /// The table this node routes it into for routing daemons now, if any.
    pub exported: Option<u32>,
}

/// A health check's state in `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthStatus {
    /// `passing`, `failing` or `pending`.
    pub state: &'static str,
    /// The last result, if any.
    pub last: Option<String>,
}

/// One peer in `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// Its name.
    pub node: String,
    /// Its priority.
    pub priority: u8,
    /// Whether its lease runs.
    pub alive: bool,
    /// Milliseconds since it was last heard.
    pub last_heard_ms: u64,
    /// Milliseconds of lease left.
    pub lease_left_ms: u64,
    /// Whether it drains.
    pub draining: bool,
    /// Whether it is still in its start-up hold.
    pub joining: bool,
    /// Whether it said it is leaving.
    pub leaving: bool,
    /// Whether its service list has our digest.
    pub same_services: bool,
}

/// One service in `services`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    /// Its name.
    pub name: Arc<str>,
    /// The VIP.
    pub ip: IpAddr,
    /// Its interface.
    pub interface: Arc<str>,
    /// The nodes that may own it (empty: all).
    pub nodes: Vec<String>,
    /// Whether this node owns it.
    pub owned: bool,
    /// The node that owns it, if any.
    pub owner: Option<String>,
}

/// The election's part of `metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionMetrics {
    /// This node's name.
    pub node: String,
    /// Heartbeats sent (one per destination).
    pub heartbeats_sent: u64,
    /// Heartbeats accepted.
    pub heartbeats_received: u64,
    /// Heartbeats the socket refused.
    pub heartbeat_send_errors: u64,
    /// VIPs acquired and released.
    pub ownership_changes: u64,
    /// Heartbeats dropped, by reason, every reason listed.
    pub rejected: Vec<(&'static str, u64)>,
    /// Every VIP and whether it is owned here: (service, ip, owned).
    pub vips: Vec<(Arc<str>, IpAddr, bool)>,
}

/// Messages to the actions thread.
#[derive(Debug)]
pub enum ActionsCommand {
    /// Apply this ownership (routes, hooks), then pass it to the responder.
    Own(Arc<Ownership>),
    /// The services (health checks, interfaces) and hooks in force.
    Configure {
        /// Every service.
        services: Vec<Service>,
        /// The hook commands.
        hooks: Hooks,
        /// The global `bind`.
        bind: Bind,
    },
    /// An interface changed.
    Link(LinkState),
    /// Remove every route, put the kernel settings back and stop.
    Shutdown,
}

/// Another host claiming a VIP this node owns, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConflictView {
    /// The VIP.
    pub ip: IpAddr,
    /// The claimant's MAC.
    pub mac: String,
    /// Claims seen.
    pub count: u64,
    /// Seconds since the last one.
    pub last_seen_s: u64,
}

/// Messages to the responder.
#[derive(Debug)]
pub enum ResponderCommand {
    /// Answer for exactly these VIPs from now on.
    Own(Arc<Ownership>),
    /// Announce these VIPs again (a conflicting claim was settled in our favour).
    Reannounce(Vec<IpAddr>),
    /// The owned VIPs another cluster node claims too (a split brain):
    /// claims for them from other MACs are not conflicts.
    Contested(Vec<IpAddr>),
    /// An interface changed: reopen sockets on a new index, take a new
    /// MAC, announce again when the link comes back.
    Link(LinkState),
    /// Write the counters to the log.
    LogCounters,
    /// Send the counters to the control thread, for request `id`.
    Counters {
        /// The control request being answered.
        id: u64,
        /// Where the answer goes.
        reply_to: Mailbox<ControlEvent>,
    },
    /// Stop the thread.
    Shutdown,
}

/// Messages to the link thread.
#[derive(Debug)]
pub enum LinkCommand {
    /// Stop the thread.
    Shutdown,
}

/// Messages to the control thread.
#[derive(Debug)]
pub enum ControlEvent {
    /// The election's answer to request `id`.
    Answer {
        /// The request it answers.
        id: u64,
        /// The answer.
        answer: ElectionAnswer,
    },
    /// The responder's counters for request `id`.
    Counters {
        /// The request it answers.
        id: u64,
        /// A copy of the counters.
        counters: Box<ResponderCounters>,
        /// The conflicts it keeps, the most recent last.
        conflicts: Vec<ConflictView>,
    },
    /// Re-read the configuration file (SIGHUP).
    Reload,
    /// Close every client, remove the socket file and end the thread.
    Stop,
}

/// A thread's end, reported to the supervisor.
#[derive(Debug)]
pub struct ThreadEnd {
    /// The thread's name.
    pub name: &'static str,
    /// How it ended.
    pub result: Result<(), String>,
}

/// Defines `Letter`, one variant per message type, and `Post` for each.
macro_rules! letters {
    ($($(#[$doc:meta])* $variant:ident($ty:ty)),+ $(,)?) => {
        /// Every message that crosses a channel, as one type: the channel's
        /// code is in the binary once instead of once per message type
        /// (about 21 KB of the armv7 router binary). A `Mailbox<T>` carries
        /// only `T`'s letters, so each inbox gets only its own kind.
        #[derive(Debug)]
        pub enum Letter {
            $($(#[$doc])* $variant($ty),)+
        }

        $(
            impl Post for $ty {
                fn into_letter(self) -> Letter {
                    Letter::$variant(self)
                }
                fn from_letter(letter: Letter) -> Option<Self> {
                    match letter {
                        Letter::$variant(message) => Some(message),
                        _ => None,
                    }
                }
            }
        )+
    };
}

/// A message type that goes in a `Letter`.
pub trait Post: Sized {
    /// The letter carrying this message.
    fn into_letter(self) -> Letter;
    /// The message a letter carries, if it is of this type.
    fn from_letter(letter: Letter) -> Option<Self>;
}

letters! {
    /// To the election.
    Election(ElectionCommand),
    /// To the actions thread.
    Actions(ActionsCommand),
    /// To the responder.
    Responder(ResponderCommand),
    /// To the control thread.
    Control(ControlEvent),
    /// To the link thread.
    Link(LinkCommand),
    /// To the supervisor.
    End(ThreadEnd),
}
