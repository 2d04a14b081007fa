//! The election thread: the UDP heartbeat socket around the `Policy`. It
//! takes typed commands (link, health, services, drain, hand-over,
//! questions) and publishes ownership snapshots to the actions thread; it
//! knows no clients and no file but its socket.

mod answers;
mod heartbeats;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::fitness::{self, Linger, Link};
use super::policy::{Outputs, Policy, Scratch, ServiceSpec, Settings};
use crate::channel::{mailbox, wait, Inbox, Mailbox};
use crate::config::{Bind, Config, Defaults, ExportWhat, MacChoice, Mode, Service};
use crate::message::{
    ActionsCommand, ControlEvent, ElectionCommand, HealthReport, LinkState, ResponderCommand,
    Tuning, Unfit,
};
use crate::ownership::{Ownership, Role, Vip};
use crate::sys::iface;
use crate::wire::heartbeat;
use heartbeats::{heard_from, open_socket, Counters};

const WAKER: Token = Token(0);
const SOCKET: Token = Token(1);
/// Datagrams read before the loop looks at timers and commands again.
const DATAGRAMS_PER_WAKE: usize = 64;
/// "Leaving" heartbeats sent on the way out (each its own sequence number),
/// so one lost datagram does not make the peers wait out the lease.
const LEAVING_COPIES: usize = 3;

/// The services in canonical (name) order, as the election and the
/// responder need them; `defaults` and `mac` are the global settings,
/// `cluster` names the cluster (virtual MACs are derived from it).
pub fn canonical(
    services: &[Service],
    defaults: Defaults,
    mac: MacChoice,
    cluster: &str,
) -> (Vec<ServiceSpec>, Vec<Vip>) {
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
            route: s.bind.unwrap_or(defaults.bind) == Bind::Route,
            // An unanswered VIP needs no MAC of its own.
            mac: s
                .mac_choice(mac)
                .resolve(cluster, &s.name)
                .filter(|_| s.answer),
            answer: s.answer,
            export: s.export(defaults.export),
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
    commands: Inbox<ElectionCommand>,
    socket: Option<UdpSocket>,
    destinations: Vec<SocketAddr>,
    /// Where heartbeats are heard from: the peers, or anyone (multicast).
    heard_from: Option<Vec<IpAddr>>,
    policy: Policy,
    identity: Identity,
    priority: u8,
    preempt: bool,
    vips: Vec<Vip>,
    defaults: Defaults,
    /// The global `mac` (a change waits for a restart).
    mac: MacChoice,
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
    /// The contested VIPs last told to the responder.
    contested: Vec<IpAddr>,
    /// The VIPs exported as eligible in the last published ownership.
    eligible: Vec<usize>,
    /// `hooks.group`: the services whose ownership makes this node primary
    /// (empty: every service).
    group: Vec<String>,
    /// The role in the last published ownership.
    role: Role,
    out: Vec<u8>,
}

/// What the policy needs of the configuration.
fn settings(config: &Config) -> Settings {
    let heartbeat = &config.heartbeat;
    Settings {
        node: config.node.clone(),
        cluster: config.cluster.clone(),
        priority: config.priority,
        mode: config.mode,
        preempt: config.preempt,
        interval: heartbeat.interval(),
        lease: heartbeat.lease(),
        alone: heartbeat.is_alone(),
    }
}

/// The start-up line: how this node talks to its peers, if it has any.
fn log_start(config: &Config, destinations: usize, authenticated: bool, incarnation: u64) {
    let heartbeat = &config.heartbeat;
    if heartbeat.is_alone() {
        info!("no peers configured: a one-node cluster owns every VIP it may");
        return;
    }
    info!(
        "heartbeats every {} ms to {destinations} destinations, lease {} ms, {} mode{}; incarnation {incarnation:016x}",
        heartbeat.interval_ms,
        heartbeat.lease_ms,
        match config.mode {
            Mode::Single => "single",
            Mode::Spread => "spread",
        },
        if authenticated { ", authenticated" } else { "" }
    );
}

impl ElectionThread {
    /// Opens the heartbeat socket (unless the node is alone) and returns the
    /// thread state and its mailbox. `services` is the catalogue's list;
    /// `incarnation` this start's (`incarnation::for_this_start`).
    pub fn new(
        config: &Config,
        services: &[Service],
        incarnation: u64,
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
        let (specs, vips) = canonical(services, config.defaults(), config.mac, &config.cluster);
        let policy = Policy::new(settings(config), specs, incarnation, Instant::now());
        log_start(config, destinations.len(), key.is_some(), incarnation);
        let mut thread = ElectionThread {
            poll,
            commands,
            socket,
            destinations,
            heard_from: heard_from(config),
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
            defaults: config.defaults(),
            mac: config.mac,
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
            contested: Vec::new(),
            eligible: Vec::new(),
            group: config.hooks.group.clone(),
            role: Role::Backup,
            out: vec![0u8; heartbeat::MAX_LEN],
        };
        thread.checked = thread.checks_of(services);
        thread.previous = with_checks(services.to_vec());
        if thread.insecure() {
            warn!(
                "heartbeats are not authenticated (heartbeat.insecure): anyone on the LAN can \
                 move the VIPs; give every node the same heartbeat.key_file"
            );
        }
        thread.startup = thread.refit(Instant::now());
        Ok((thread, mailbox))
    }

    /// Whether heartbeats go to peers unauthenticated.
    fn insecure(&self) -> bool {
        self.socket.is_some() && self.key.is_none()
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
    fn unfit_of(&mut self, index: usize) -> Option<Unfit> {
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
        // A link-local VIP is an address of its owner's: the actions
        // thread's doing.
        if added && !crate::config::is_link_local(ip) && self.vips.iter().any(|v| v.ip == ip) {
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
        // The first ownership, owning nothing: the node's first role (backup,
        // or fault) reaches the actions thread whatever follows.
        self.publish_ownership();
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
            while let Some(command) = self.commands.try_recv() {
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
                    ElectionCommand::SetServices { services, defaults } => {
                        self.defaults = defaults;
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

    /// Applies what a reload changes at once.
    fn tune(&mut self, now: Instant, tuning: Tuning) {
        self.key = tuning.key;
        self.priority = tuning.priority;
        self.preempt = tuning.preempt;
        self.linger_period = tuning.linger;
        self.group = tuning.group;
        let outputs = self
            .policy
            .set_priority(now, tuning.priority, tuning.preempt);
        self.carry_out(now, outputs);
    }

    /// Takes a new service list (add, remove, reload).
    fn apply_services(&mut self, now: Instant, all: Vec<Service>) {
        let (specs, vips) = canonical(&all, self.defaults, self.mac, &self.identity.cluster);
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

    /// Sends the current ownership on, changed or not: to the actions
    /// thread, which installs routes and then hands it to the responder.
    fn publish_ownership(&mut self) {
        self.eligible = self.eligible_now();
        let role = self.role_now();
        if role != self.role {
            info!("this node is now {}", role.name());
            self.role = role;
        }
        let mut ownership = Ownership {
            role,
            vips: self.policy.owned().map(|i| self.vips[i].clone()).collect(),
            lingering: self.linger.vips().cloned().collect(),
            eligible: self
                .eligible
                .iter()
                .map(|i| self.vips[*i].clone())
                .collect(),
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

    /// This node's role now: fault when it may serve no service of the
    /// group for want of a link or of health, else primary when it owns one
    /// of them. A node with no such service is a backup.
    fn role_now(&self) -> Role {
        let group: Vec<usize> = (0..self.vips.len())
            .filter(|i| {
                self.group.is_empty() || self.group.iter().any(|g| **g == *self.vips[*i].name)
            })
            .collect();
        let faulty = |i: &usize| {
            matches!(
                self.policy.unfit(*i),
                Some(Unfit::InterfaceGone | Unfit::LinkDown | Unfit::HealthFailing)
            )
        };
        if !group.is_empty() && group.iter().all(faulty) {
            Role::Fault
        } else if group.iter().any(|i| self.policy.owns(*i)) {
            Role::Primary
        } else {
            Role::Backup
        }
    }

    /// The VIPs exported as eligible that this node may serve now.
    fn eligible_now(&self) -> Vec<usize> {
        (0..self.vips.len())
            .filter(|i| {
                self.vips[*i]
                    .export
                    .is_some_and(|e| e.what == ExportWhat::Eligible)
                    && self.policy.may_serve(*i)
            })
            .collect()
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
        } else if self.eligible_now() != self.eligible || self.role_now() != self.role {
            // Fitness or draining changed what this node exports or its
            // role, not what it owns.
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
        // Claims from another node's MAC for these are a split brain, not a
        // conflict with a stranger: the responder needs to know which.
        let contested: Vec<IpAddr> = self.policy.contested().map(|i| self.vips[i].ip).collect();
        if contested != self.contested {
            let _ = self
                .responder
                .send(ResponderCommand::Contested(contested.clone()));
            self.contested = contested;
        }
        if send {
            self.send(now);
        }
    }
}
