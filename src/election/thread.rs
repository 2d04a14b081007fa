//! The election thread: the UDP heartbeat socket around the `Policy`. It
//! takes typed commands (link, health, services, drain, hand-over,
//! questions) and publishes ownership snapshots to the actions thread; it
//! knows no clients and no file but its socket.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use log::{debug, info, warn};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::fitness::{self, Linger, Link};
use super::policy::{HandoverError, Outputs, Policy, Reject, Scratch, ServiceSpec, Settings};
use crate::channel::{mailbox, wait, Mailbox};
use crate::config::{Bind, Config, Mode, Service};
use crate::message::{
    ActionsCommand, ControlEvent, ElectionAnswer, ElectionAsk, ElectionCommand, ElectionMetrics,
    HealthReport, HealthStatus, LinkState, PeerStatus, Refusal, ResponderCommand, ServiceStatus,
    ServiceView, StatusSnapshot, Tuning, VipState,
};
use crate::ownership::{Ownership, Vip};
use crate::sys::{iface, udp};
use crate::wire::heartbeat::{self, Repr};
use crate::wire::Error as WireError;

const WAKER: Token = Token(0);
const SOCKET: Token = Token(1);
/// Datagrams read before the loop looks at timers and commands again.
const DATAGRAMS_PER_WAKE: usize = 64;
/// "Leaving" heartbeats sent on the way out (each its own sequence number),
/// so one lost datagram does not make the peers wait out the lease.
const LEAVING_COPIES: usize = 3;

reasons! {
    /// Why a received heartbeat was dropped.
    pub enum Rejection {
        /// Shorter than its headers say.
        Truncated = "truncated",
        /// A version this node does not speak.
        Version = "version",
        /// A field out of its range.
        Malformed = "malformed",
        /// Longer than any heartbeat.
        Oversized = "oversized",
        /// No MAC, though a key is configured.
        Unauthenticated = "unauthenticated",
        /// A MAC that does not verify.
        BadMac = "bad_mac",
        /// A MAC, though no key is configured.
        UnexpectedMac = "unexpected_mac",
        /// From another cluster.
        OtherCluster = "other_cluster",
        /// Our own (multicast loopback).
        Own = "own",
        /// Another process uses our node name.
        DuplicateNode = "duplicate_node",
        /// Not newer than what its sender sent before.
        Replay = "replay",
        /// Its digest matches ours but its service count does not.
        Inconsistent = "inconsistent",
        /// A new node while the peer table is full of live ones.
        TooManyPeers = "too_many_peers",
    }
}

impl From<WireError> for Rejection {
    fn from(error: WireError) -> Rejection {
        match error {
            WireError::Truncated => Rejection::Truncated,
            WireError::Unsupported => Rejection::Version,
            WireError::Malformed | WireError::Checksum => Rejection::Malformed,
        }
    }
}

impl From<Reject> for Rejection {
    fn from(reject: Reject) -> Rejection {
        match reject {
            Reject::Cluster => Rejection::OtherCluster,
            Reject::Own => Rejection::Own,
            Reject::DuplicateNode => Rejection::DuplicateNode,
            Reject::Replay => Rejection::Replay,
            Reject::Inconsistent => Rejection::Inconsistent,
            Reject::TooManyPeers => Rejection::TooManyPeers,
        }
    }
}

/// The election's counters (plain u64s owned by its thread).
#[derive(Debug, Default)]
struct Counters {
    sent: u64,
    received: u64,
    send_errors: u64,
    ownership_changes: u64,
    rejected: [u64; Rejection::COUNT],
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "heartbeats_sent={} heartbeats_received={} heartbeat_send_errors={} ownership_changes={}",
            self.sent, self.received, self.send_errors, self.ownership_changes
        )?;
        for (reason, count) in Rejection::ALL.iter().zip(self.rejected) {
            write!(f, " heartbeat_rejected.{}={count}", reason.name())?;
        }
        Ok(())
    }
}

/// A random incarnation: a fresh one each process start.
fn random_incarnation() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let from_kernel =
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if from_kernel.is_ok() {
        return u64::from_ne_bytes(bytes);
    }
    // No /dev/urandom: mix the clock and the PID; still differs per start.
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    clock ^ (u64::from(std::process::id()) << 32)
}

/// The services in canonical (name) order, as the election and the
/// responder need them; `bind` is the global default.
pub fn canonical(services: &[Service], bind: Bind) -> (Vec<ServiceSpec>, Vec<Vip>) {
    let mut services: Vec<&Service> = services.iter().collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let mut specs = Vec::with_capacity(services.len());
    let mut vips = Vec::with_capacity(services.len());
    for s in services {
        // The names are shared with the configuration's, not copied.
        let name = Arc::clone(&s.name);
        let interface = Arc::clone(&s.interface);
        specs.push(ServiceSpec {
            name: Arc::clone(&name),
            ip: s.ip,
            nodes: s.nodes.clone(),
        });
        vips.push(Vip {
            name,
            ip: s.ip,
            interface,
            route: s.bind.unwrap_or(bind) == Bind::Route,
        });
    }
    (specs, vips)
}

/// The services that have a health check: all a new list needs to be
/// compared with (to see which checks changed).
fn with_checks(services: Vec<Service>) -> Vec<Service> {
    let mut checked: Vec<Service> = services
        .into_iter()
        .filter(|s| s.health.is_some())
        .collect();
    // Collected in place: without this the whole list's capacity stays.
    checked.shrink_to_fit();
    checked
}

/// What `status` says of the node itself, fixed until a restart apart
/// from priority and preempt (which the policy holds).
#[derive(Debug)]
struct Identity {
    node: String,
    cluster: String,
    mode: Mode,
    interval_ms: u64,
    lease_ms: u64,
}

/// The election thread's state, built before it runs.
pub struct ElectionThread {
    poll: Poll,
    commands: Receiver<ElectionCommand>,
    socket: Option<UdpSocket>,
    destinations: Vec<SocketAddr>,
    policy: Policy,
    identity: Identity,
    priority: u8,
    preempt: bool,
    vips: Vec<Vip>,
    bind: Bind,
    /// Per canonical service: whether it has a health check.
    checked: Vec<bool>,
    key: Option<Vec<u8>>,
    responder: Mailbox<ResponderCommand>,
    actions: Mailbox<ActionsCommand>,
    /// Interfaces by name, as the link thread reports.
    links: HashMap<String, Link>,
    /// The last health report per service.
    health: HashMap<String, HealthReport>,
    /// Services handed over recently, still routed here for a while.
    linger: Linger,
    linger_period: Duration,
    counters: Counters,
    mismatched: BTreeSet<String>,
    last_log: Option<Instant>,
    suppressed: u64,
    started: Instant,
    /// The services with health checks of the list last applied.
    previous: Vec<Service>,
    /// What building the thread asked of it, carried out when it runs.
    startup: Outputs,
    /// Buffers for building heartbeats.
    scratch: Scratch,
    out: Vec<u8>,
}

impl ElectionThread {
    /// Opens the heartbeat socket (unless the node is alone) and returns the
    /// thread state and its mailbox. `services` is the catalogue's list.
    pub fn new(
        config: &Config,
        services: &[Service],
        key: Option<Vec<u8>>,
        responder: Mailbox<ResponderCommand>,
        actions: Mailbox<ActionsCommand>,
    ) -> io::Result<(ElectionThread, Mailbox<ElectionCommand>)> {
        let poll = Poll::new()?;
        let (mailbox, commands) = mailbox(poll.registry(), WAKER)?;
        let heartbeat = &config.heartbeat;
        let (mut socket, destinations) = if heartbeat.is_alone() {
            (None, Vec::new())
        } else {
            let (socket, destinations) = open_socket(config)?;
            (Some(UdpSocket::from_std(socket)), destinations)
        };
        if let Some(socket) = socket.as_mut() {
            poll.registry()
                .register(socket, SOCKET, Interest::READABLE)?;
        }
        let (specs, vips) = canonical(services, config.bind);
        let settings = Settings {
            node: config.node.clone(),
            cluster: config.cluster.clone(),
            priority: config.priority,
            mode: config.mode,
            preempt: config.preempt,
            interval: heartbeat.interval(),
            lease: heartbeat.lease(),
            alone: heartbeat.is_alone(),
        };
        let incarnation = random_incarnation();
        let policy = Policy::new(settings, specs, incarnation, Instant::now());
        if heartbeat.is_alone() {
            info!("no peers configured: a one-node cluster owns every VIP it may");
        } else {
            info!(
                "heartbeats every {} ms to {} destinations, lease {} ms, {} mode{}; incarnation {incarnation:016x}",
                heartbeat.interval_ms,
                destinations.len(),
                heartbeat.lease_ms,
                match config.mode {
                    Mode::Single => "single",
                    Mode::Spread => "spread",
                },
                if key.is_some() { ", authenticated" } else { "" }
            );
        }
        let mut thread = ElectionThread {
            poll,
            commands,
            socket,
            destinations,
            policy,
            identity: Identity {
                node: config.node.clone(),
                cluster: config.cluster.clone(),
                mode: config.mode,
                interval_ms: heartbeat.interval_ms,
                lease_ms: heartbeat.lease_ms,
            },
            priority: config.priority,
            preempt: config.preempt,
            vips,
            bind: config.bind,
            checked: Vec::new(),
            key,
            responder,
            actions,
            links: HashMap::new(),
            health: HashMap::new(),
            linger: Linger::default(),
            linger_period: Duration::from_secs(config.linger_s),
            counters: Counters::default(),
            mismatched: BTreeSet::new(),
            last_log: None,
            suppressed: 0,
            started: Instant::now(),
            previous: Vec::new(),
            startup: Outputs::default(),
            scratch: Scratch::default(),
            out: vec![0u8; heartbeat::MAX_LEN],
        };
        thread.checked = thread.checks_of(services);
        thread.previous = with_checks(services.to_vec());
        thread.startup = thread.refit(Instant::now());
        Ok((thread, mailbox))
    }

    /// Per canonical service, whether it has a health check.
    fn checks_of(&self, services: &[Service]) -> Vec<bool> {
        let checked: HashSet<&str> = services
            .iter()
            .filter(|s| s.health.is_some())
            .map(|s| &*s.name)
            .collect();
        self.vips
            .iter()
            .map(|vip| checked.contains(&*vip.name))
            .collect()
    }

    /// The link of `interface`: as last reported, or looked up once.
    fn link(&mut self, interface: &str) -> Link {
        if let Some(link) = self.links.get(interface) {
            return *link;
        }
        let link = match iface::lookup(interface) {
            Ok(info) => Link {
                present: true,
                usable: info.up && info.running,
            },
            Err(_) => Link {
                present: false,
                usable: false,
            },
        };
        self.links.insert(interface.to_string(), link);
        link
    }

    /// Why this node cannot serve canonical service `index` now, if so.
    fn unfit_of(&mut self, index: usize) -> Option<crate::message::Unfit> {
        let interface = Arc::clone(&self.vips[index].interface);
        let link = self.link(&interface);
        let health = self.checked.get(index).copied().unwrap_or(false).then(|| {
            self.health
                .get(&*self.vips[index].name)
                .and_then(|r| r.healthy)
        });
        fitness::unfit(link, health)
    }

    /// Tells the policy every service's fitness; what it does about them.
    fn refit(&mut self, now: Instant) -> Outputs {
        let mut outputs = Outputs::default();
        for index in 0..self.vips.len() {
            let unfit = self.unfit_of(index);
            outputs.absorb(self.policy.set_unfit(now, index, unfit));
        }
        outputs
    }

    /// Re-evaluates every service's fitness (after a link or health change).
    fn refresh_unfit(&mut self, now: Instant) {
        let outputs = self.refit(now);
        self.carry_out(now, outputs);
    }

    fn on_link(&mut self, now: Instant, state: LinkState) {
        let link = Link {
            present: state.present,
            usable: state.usable,
        };
        let before = self.links.insert(state.name.clone(), link);
        let managed = self.vips.iter().any(|v| *v.interface == *state.name);
        if managed && before != Some(link) {
            let what = match (link.present, link.usable) {
                (false, _) => "deleted",
                (true, false) => "down (no VIPs here until it is up)",
                (true, true) => "up",
            };
            info!("{}: {what}", state.name);
            self.refresh_unfit(now);
        }
    }

    fn on_address(&self, ip: IpAddr, interface: Option<String>, added: bool) {
        if added && self.vips.iter().any(|v| v.ip == ip) {
            warn!(
                "{ip} was configured as an address on {}: the kernel now answers ARP/NS for it \
                 itself, whoever owns it; remove it (ip address del {ip} dev ...)",
                interface.as_deref().unwrap_or("an interface")
            );
        }
    }

    fn on_health(&mut self, now: Instant, report: HealthReport) {
        let Some(index) = self.vips.iter().position(|v| *v.name == *report.service) else {
            return;
        };
        let before = self.health.insert(report.service.clone(), report);
        let after = self
            .health
            .get(&*self.vips[index].name)
            .and_then(|r| r.healthy);
        if before.and_then(|r| r.healthy) != after {
            self.refresh_unfit(now);
        }
    }

    /// Ends lingers whose time is up; the next instant one ends.
    fn expire_linger(&mut self, now: Instant) -> Option<Instant> {
        let ended = self.linger.expire(now);
        for name in &ended {
            info!("{name}: linger over; no longer accepting its traffic here");
        }
        if !ended.is_empty() {
            self.publish_ownership();
        }
        self.linger.next_end()
    }

    /// Runs until `Leave`.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(16);
        let mut buffer = vec![0u8; heartbeat::MAX_LEN + 1];
        let startup = std::mem::take(&mut self.startup);
        self.carry_out(Instant::now(), startup);
        // The socket may hold more than one wake-up's share (edge-triggered).
        let mut pending = false;
        loop {
            let now = Instant::now();
            let outputs = self.policy.on_tick(now);
            self.carry_out(now, outputs);
            let linger_ends = self.expire_linger(now);
            let timeout = if pending {
                Duration::ZERO
            } else {
                let at = self.policy.poll_at(now);
                linger_ends
                    .map_or(at, |end| at.min(end))
                    .saturating_duration_since(Instant::now())
            };
            wait(&mut self.poll, &mut events, Some(timeout))?;
            while let Ok(command) = self.commands.try_recv() {
                match command {
                    ElectionCommand::Leave => {
                        let now = Instant::now();
                        // Nothing of l2vip stays behind: no linger at exit.
                        self.linger.clear();
                        let mut outputs = self.policy.leave(now);
                        // Sent below, each "leaving" heartbeat once.
                        outputs.send = false;
                        self.carry_out(now, outputs);
                        for _ in 0..LEAVING_COPIES {
                            self.send(now);
                        }
                        info!("election stopping; {}", self.counters);
                        return Ok(());
                    }
                    ElectionCommand::LogCounters => self.log_state(),
                    ElectionCommand::Link(state) => self.on_link(Instant::now(), state),
                    ElectionCommand::Address {
                        ip,
                        interface,
                        added,
                    } => self.on_address(ip, interface, added),
                    ElectionCommand::Health(report) => self.on_health(Instant::now(), report),
                    ElectionCommand::Tune(tuning) => self.tune(Instant::now(), *tuning),
                    ElectionCommand::SetServices { services, bind } => {
                        self.bind = bind;
                        self.apply_services(Instant::now(), services);
                    }
                    ElectionCommand::Ask { id, ask, reply_to } => {
                        // Changes take effect before the answer goes out.
                        let answer = self.answer(Instant::now(), ask);
                        let _ = reply_to.send(ControlEvent::Answer { id, answer });
                    }
                }
            }
            if pending || events.iter().any(|e| e.token() == SOCKET) {
                pending = !self.receive(&mut buffer);
            }
        }
    }

    /// Answers a client's question or carries out its order.
    fn answer(&mut self, now: Instant, ask: ElectionAsk) -> ElectionAnswer {
        match ask {
            ElectionAsk::Status => ElectionAnswer::Status(Box::new(self.status(now))),
            ElectionAsk::Services => ElectionAnswer::Services(self.services(now)),
            ElectionAsk::Metrics => ElectionAnswer::Metrics(Box::new(self.metrics())),
            ElectionAsk::Drain(draining) => {
                let outputs = self.policy.set_draining(now, draining);
                self.carry_out(now, outputs);
                ElectionAnswer::Draining(draining)
            }
            ElectionAsk::Handover(service) => match self.handover(now, service.as_deref()) {
                Ok(moved) => ElectionAnswer::HandedOver(moved),
                Err(refusal) => ElectionAnswer::Refused(refusal),
            },
        }
    }

    /// Applies what a reload changes at once.
    fn tune(&mut self, now: Instant, tuning: Tuning) {
        self.key = tuning.key;
        self.priority = tuning.priority;
        self.preempt = tuning.preempt;
        self.linger_period = tuning.linger;
        let outputs = self
            .policy
            .set_priority(now, tuning.priority, tuning.preempt);
        self.carry_out(now, outputs);
    }

    /// Takes a new service list (add, remove, reload).
    fn apply_services(&mut self, now: Instant, all: Vec<Service>) {
        let (specs, vips) = canonical(&all, self.bind);
        self.vips = vips;
        self.checked = self.checks_of(&all);
        // Health reports of services that are gone or whose check changed
        // no longer count: the actions thread starts those checks afresh.
        let old: Vec<Service> = std::mem::take(&mut self.previous);
        self.health.retain(|name, _| {
            let now_ = all.iter().find(|s| *s.name == **name);
            let then = old.iter().find(|s| *s.name == **name);
            matches!((now_, then), (Some(a), Some(b)) if a.health == b.health && a.ip == b.ip && a.interface == b.interface)
        });
        self.previous = with_checks(all);
        // A lingering service that is gone or changed stops lingering.
        self.linger.keep_current(&self.vips);
        let unfit = (0..self.vips.len()).map(|i| self.unfit_of(i)).collect();
        let outputs = self.policy.set_services(now, specs, unfit);
        self.carry_out(now, outputs);
        self.publish_ownership();
    }

    fn handover(&mut self, now: Instant, service: Option<&str>) -> Result<Vec<String>, Refusal> {
        let indices: Vec<usize> = match service {
            Some(name) => match self.vips.iter().position(|v| &*v.name == name) {
                Some(index) => vec![index],
                None => return Err(Refusal::NotFound(name.to_string())),
            },
            None => self.policy.owned().collect(),
        };
        if indices.is_empty() {
            return Err(Refusal::NotOwner(None));
        }
        let mut moved = Vec::new();
        for index in indices {
            let name = self.vips[index].name.to_string();
            match self.policy.handover(now, index) {
                Ok(outputs) => {
                    self.carry_out(now, outputs);
                    moved.push(name);
                }
                Err(HandoverError::NotOwner) => return Err(Refusal::NotOwner(Some(name))),
                Err(HandoverError::NoCandidate) => return Err(Refusal::NoCandidate(name)),
            }
        }
        Ok(moved)
    }

    fn status(&self, now: Instant) -> StatusSnapshot {
        let services = self
            .vips
            .iter()
            .enumerate()
            .map(|(index, vip)| {
                let owner = self.policy.owner(index, now);
                let linger_left = self.linger.left(&vip.name, now).map(|d| d.as_secs());
                let state = match (owner, linger_left) {
                    (Some(node), _) if node == self.identity.node => VipState::Owner,
                    (_, Some(_)) => VipState::Lingering,
                    (Some(_), None) => VipState::Standby,
                    (None, None) => VipState::NoOwner,
                };
                let health = self.checked[index].then(|| {
                    let report = self.health.get(&*vip.name);
                    HealthStatus {
                        state: match report.and_then(|r| r.healthy) {
                            Some(true) => "passing",
                            Some(false) => "failing",
                            None => "pending",
                        },
                        last: report.map(|r| r.detail.clone()),
                    }
                });
                ServiceStatus {
                    name: Arc::clone(&vip.name),
                    ip: vip.ip,
                    interface: Arc::clone(&vip.interface),
                    owner: owner.map(str::to_string),
                    state,
                    since_s: self
                        .policy
                        .acquired_at(index)
                        .map(|at| now.saturating_duration_since(at).as_secs()),
                    unfit: self.policy.unfit(index),
                    linger_left_s: linger_left,
                    health,
                }
            })
            .collect();
        let peers = self
            .policy
            .peer_states(now)
            .into_iter()
            .map(|p| PeerStatus {
                node: p.node,
                priority: p.priority,
                alive: p.alive,
                last_heard_ms: p.last_heard.as_millis() as u64,
                lease_left_ms: p.lease_left.as_millis() as u64,
                draining: p.draining,
                joining: p.joining,
                leaving: p.leaving,
                same_services: p.same_services,
            })
            .collect();
        StatusSnapshot {
            node: self.identity.node.clone(),
            cluster: self.identity.cluster.clone(),
            priority: self.priority,
            mode: self.identity.mode,
            preempt: self.preempt,
            interval_ms: self.identity.interval_ms,
            lease_ms: self.identity.lease_ms,
            draining: self.policy.draining(),
            uptime_s: now.saturating_duration_since(self.started).as_secs(),
            digest: format!("{:016x}", self.policy.digest()),
            digest_agreement: self.mismatched.is_empty(),
            services,
            peers,
        }
    }

    fn services(&self, now: Instant) -> Vec<ServiceView> {
        self.vips
            .iter()
            .zip(self.policy.services())
            .enumerate()
            .map(|(index, (vip, spec))| ServiceView {
                name: Arc::clone(&vip.name),
                ip: vip.ip,
                interface: Arc::clone(&vip.interface),
                nodes: spec.nodes.clone(),
                owned: self.policy.owns(index),
                owner: self.policy.owner(index, now).map(str::to_string),
            })
            .collect()
    }

    fn metrics(&self) -> ElectionMetrics {
        ElectionMetrics {
            node: self.identity.node.clone(),
            heartbeats_sent: self.counters.sent,
            heartbeats_received: self.counters.received,
            heartbeat_send_errors: self.counters.send_errors,
            ownership_changes: self.counters.ownership_changes,
            rejected: Rejection::ALL
                .iter()
                .map(|reason| reason.name())
                .zip(self.counters.rejected)
                .collect(),
            vips: self
                .vips
                .iter()
                .enumerate()
                .map(|(index, vip)| (Arc::clone(&vip.name), vip.ip, self.policy.owns(index)))
                .collect(),
        }
    }

    fn log_state(&self) {
        let now = Instant::now();
        let peers: Vec<String> = self
            .policy
            .alive_peers(now)
            .map(|(name, age)| format!("{name} ({} ms ago)", age.as_millis()))
            .collect();
        let owned: Vec<&str> = self.policy.owned().map(|i| &*self.vips[i].name).collect();
        let mismatched: Vec<&str> = self.mismatched.iter().map(String::as_str).collect();
        info!(
            "election: owns [{}]; alive peers [{}]; other service lists [{}]; counters: {}",
            owned.join(", "),
            peers.join(", "),
            mismatched.join(", "),
            self.counters
        );
    }

    /// Reads up to the per-wake cap; true when the socket is empty.
    fn receive(&mut self, buffer: &mut [u8]) -> bool {
        let Some(socket) = self.socket.take() else {
            return true;
        };
        let mut outputs = Outputs::default();
        let drained = self.receive_from(&socket, buffer, &mut outputs);
        self.socket = Some(socket);
        self.carry_out(Instant::now(), outputs);
        drained
    }

    fn receive_from(
        &mut self,
        socket: &UdpSocket,
        buffer: &mut [u8],
        outputs: &mut Outputs,
    ) -> bool {
        for _ in 0..DATAGRAMS_PER_WAKE {
            let (len, from) = match socket.recv_from(buffer) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("heartbeat receive failed: {e}");
                    return true;
                }
            };
            let verdict = if len >= buffer.len() {
                Err(Rejection::Oversized)
            } else {
                self.accept(&buffer[..len])
            };
            match verdict {
                Ok(accepted) => {
                    self.counters.received += 1;
                    outputs.absorb(accepted);
                }
                Err(rejection) => {
                    self.counters.rejected[rejection.index()] += 1;
                    if rejection != Rejection::Own {
                        self.log_rejection(from, rejection);
                    }
                }
            }
        }
        false
    }

    fn accept(&mut self, datagram: &[u8]) -> Result<Outputs, Rejection> {
        let beat = Repr::parse(datagram)?;
        match &self.key {
            Some(_) if !heartbeat::is_authenticated(datagram) => {
                return Err(Rejection::Unauthenticated)
            }
            Some(key) if !heartbeat::verify(datagram, key) => return Err(Rejection::BadMac),
            None if heartbeat::is_authenticated(datagram) => return Err(Rejection::UnexpectedMac),
            _ => {}
        }
        let now = Instant::now();
        let outputs = self.policy.on_heartbeat(now, &beat)?;
        let mismatched: BTreeSet<String> = self
            .policy
            .digest_mismatches()
            .map(str::to_string)
            .collect();
        for peer in mismatched.difference(&self.mismatched) {
            warn!(
                "{peer}: its service list differs from ours (digest); no new claims while it is alive: \
                 give every node the same services"
            );
        }
        self.mismatched = mismatched;
        Ok(outputs)
    }

    fn log_rejection(&mut self, from: SocketAddr, rejection: Rejection) {
        let now = Instant::now();
        match self.last_log {
            Some(last) if now.saturating_duration_since(last) < Duration::from_secs(10) => {
                self.suppressed += 1
            }
            _ => {
                let more = std::mem::take(&mut self.suppressed);
                let more = if more > 0 {
                    format!(" ({more} more drops since the last report)")
                } else {
                    String::new()
                };
                warn!(
                    "dropped a heartbeat from {from}: {}{more}",
                    rejection.name()
                );
                self.last_log = Some(now);
            }
        }
    }

    fn send(&mut self, now: Instant) {
        let key = self.key.as_deref();
        let beat = self.policy.heartbeat(now, &mut self.scratch);
        let out = &mut self.out;
        let len = match beat.emit(out, key) {
            Ok(len) => len,
            Err(e) => {
                warn!("cannot build a heartbeat: {e}");
                return;
            }
        };
        let Some(socket) = self.socket.as_ref() else {
            return;
        };
        for destination in &self.destinations {
            match socket.send_to(&out[..len], *destination) {
                Ok(_) => self.counters.sent += 1,
                Err(e) => {
                    self.counters.send_errors += 1;
                    debug!("heartbeat to {destination} failed: {e}");
                }
            }
        }
    }

    /// Sends the current ownership on, changed or not: to the actions
    /// thread, which installs routes and then hands it to the responder.
    fn publish_ownership(&mut self) {
        let mut ownership = Ownership {
            vips: self.policy.owned().map(|i| self.vips[i].clone()).collect(),
            lingering: self.linger.vips().cloned().collect(),
        };
        // Kept until the next change by two threads: no spare capacity.
        ownership.vips.shrink_to_fit();
        if self
            .actions
            .send(ActionsCommand::Own(Arc::new(ownership)))
            .is_err()
        {
            warn!("the actions thread is gone; ownership not applied");
        }
    }

    /// Carries out what a call into the policy returned: logs removed
    /// services, follows and publishes ownership changes, asks the responder
    /// to announce again, sends the heartbeat that is due.
    fn carry_out(&mut self, now: Instant, outputs: Outputs) {
        let Outputs {
            changes,
            reannounce,
            removed,
            send,
        } = outputs;
        for name in removed {
            info!("released {name}: removed");
        }
        if !changes.is_empty() {
            for change in &changes {
                let vip = &self.vips[change.service];
                let lingers = self.linger.follow(
                    vip,
                    change.acquired,
                    change.planned,
                    now,
                    self.linger_period,
                );
                if lingers {
                    info!(
                        "{}: still accepting its traffic here for {} s (linger) for clients \
                         with stale caches",
                        vip.name,
                        self.linger_period.as_secs()
                    );
                }
                let verb = if change.acquired {
                    "acquired"
                } else {
                    "released"
                };
                info!(
                    "{verb} {} ({} on {}): {}",
                    vip.name, vip.ip, vip.interface, change.reason
                );
            }
            self.counters.ownership_changes += changes.len() as u64;
            self.publish_ownership();
        }
        if !reannounce.is_empty() {
            let ips: Vec<IpAddr> = reannounce.iter().map(|(i, _)| self.vips[*i].ip).collect();
            for (i, why) in &reannounce {
                info!(
                    "{}: {why}; keeping it and announcing again",
                    self.vips[*i].name
                );
            }
            let _ = self.responder.send(ResponderCommand::Reannounce(ips));
        }
        if send {
            self.send(now);
        }
    }
}

/// Opens the heartbeat socket: bound to the port, joined to the group if
/// any. Returns it with the destinations of every heartbeat.
fn open_socket(config: &Config) -> io::Result<(StdUdpSocket, Vec<SocketAddr>)> {
    let heartbeat = &config.heartbeat;
    let context = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("heartbeat socket: {what}: {e}"))
    };
    let v6 = match (&heartbeat.multicast, heartbeat.bind) {
        (_, Some(bind)) => bind.is_ipv6(),
        (Some(multicast), None) => multicast.group.is_ipv6(),
        (None, None) => heartbeat.peers.iter().any(|p| p.is_ipv6()),
    };
    let bind = heartbeat.bind.unwrap_or(if v6 {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    });
    let socket = StdUdpSocket::bind(SocketAddr::new(bind, heartbeat.port))
        .map_err(|e| context("bind", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| context("non-blocking", e))?;
    let mut destinations = Vec::new();
    for peer in &heartbeat.peers {
        destinations.push(match (v6, peer) {
            (true, SocketAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
            (false, SocketAddr::V6(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("heartbeat peer {peer}: IPv6 peer on an IPv4 socket; set heartbeat.bind to an IPv6 address"),
                ))
            }
            _ => *peer,
        });
    }
    if let Some(multicast) = &heartbeat.multicast {
        let ifindex = iface::index(&multicast.interface).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface named {:?}", multicast.interface),
            )
        })?;
        match multicast.group {
            IpAddr::V4(group) => {
                udp::join_v4(&socket, group, ifindex).map_err(|e| context("join group", e))?;
                udp::multicast_interface_v4(&socket, ifindex)
                    .map_err(|e| context("multicast interface", e))?;
                socket
                    .set_multicast_ttl_v4(1)
                    .map_err(|e| context("multicast TTL", e))?;
                socket
                    .set_multicast_loop_v4(false)
                    .map_err(|e| context("multicast loop", e))?;
            }
            IpAddr::V6(group) => {
                socket
                    .join_multicast_v6(&group, ifindex)
                    .map_err(|e| context("join group", e))?;
                udp::multicast_interface_v6(&socket, ifindex)
                    .map_err(|e| context("multicast interface", e))?;
                udp::multicast_hops_v6(&socket, 1).map_err(|e| context("multicast hops", e))?;
                socket
                    .set_multicast_loop_v6(false)
                    .map_err(|e| context("multicast loop", e))?;
            }
        }
        destinations.push(SocketAddr::new(multicast.group, heartbeat.port));
    }
    Ok((socket, destinations))
}
