//! The election thread: the UDP heartbeat socket, the `Policy`, and the
//! ownership snapshots it publishes to the responder.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use log::{debug, info, warn};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use serde_json::{json, Value};

use super::policy::{HandoverError, Policy, Reject, Scratch, ServiceSpec, Settings};
use crate::actions::thread::{Command as ActionsCommand, HealthReport};
use crate::channel::{mailbox, Mailbox};
use crate::config::{self, Bind, Config, Service};
use crate::control::protocol::{code, Request, Response};
use crate::control::server::Event as ControlEvent;
use crate::link::LinkState;
use crate::ownership::{Ownership, Vip};
use crate::responder::thread::Command as ResponderCommand;
use crate::sys::{iface, udp};
use crate::wire::heartbeat::{self, Repr};
use crate::wire::Error as WireError;
use std::path::{Path, PathBuf};

/// Messages to the election.
#[derive(Debug)]
pub enum Command {
    /// Release everything, tell the peers we are leaving, and stop.
    Leave,
    /// Write the counters and peers to the log.
    LogCounters,
    /// Re-read the configuration file (SIGHUP).
    Reload,
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
    /// A control request; the answer goes to `reply_to` tagged with `id`.
    Control {
        /// The control request id.
        id: u64,
        /// What is asked.
        request: Request,
        /// Where the answer goes.
        reply_to: Mailbox<ControlEvent>,
    },
}

const WAKER: Token = Token(0);
const SOCKET: Token = Token(1);
/// Datagrams read before the loop looks at timers and commands again.
const DATAGRAMS_PER_WAKE: usize = 64;
/// "Leaving" heartbeats sent on the way out (each its own sequence number),
/// so one lost datagram does not make the peers wait out the lease.
const LEAVING_COPIES: usize = 3;

/// Why a received datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drop {
    Wire(WireError),
    Oversized,
    Unauthenticated,
    BadMac,
    UnexpectedMac,
    Policy(Reject),
}

impl Drop {
    fn name(self) -> &'static str {
        match self {
            Drop::Wire(WireError::Truncated) => "truncated",
            Drop::Wire(WireError::Unsupported) => "version",
            Drop::Wire(WireError::Malformed) | Drop::Wire(WireError::Checksum) => "malformed",
            Drop::Oversized => "oversized",
            Drop::Unauthenticated => "unauthenticated",
            Drop::BadMac => "bad_mac",
            Drop::UnexpectedMac => "unexpected_mac",
            Drop::Policy(reject) => reject.name(),
        }
    }

    const NAMES: [&'static str; 13] = [
        "truncated",
        "version",
        "malformed",
        "oversized",
        "unauthenticated",
        "bad_mac",
        "unexpected_mac",
        "other_cluster",
        "own",
        "duplicate_node",
        "replay",
        "inconsistent",
        "too_many_peers",
    ];
}

/// The election's counters (plain u64s owned by its thread).
#[derive(Debug, Default)]
struct Counters {
    sent: u64,
    received: u64,
    send_errors: u64,
    ownership_changes: u64,
    rejected: [u64; Drop::NAMES.len()],
}

impl Counters {
    fn reject(&mut self, drop: Drop) {
        if let Some(index) = Drop::NAMES.iter().position(|n| *n == drop.name()) {
            self.rejected[index] += 1;
        }
    }
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "heartbeats_sent={} heartbeats_received={} heartbeat_send_errors={} ownership_changes={}",
            self.sent, self.received, self.send_errors, self.ownership_changes
        )?;
        for (name, count) in Drop::NAMES.iter().zip(self.rejected) {
            write!(f, " heartbeat_rejected.{name}={count}")?;
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

/// The services that have a health check: all a reload needs to remember
/// of the list it replaces.
fn with_checks(services: Vec<Service>) -> Vec<Service> {
    let mut checked: Vec<Service> = services
        .into_iter()
        .filter(|s| s.health.is_some())
        .collect();
    // Collected in place: without this the whole list's capacity stays.
    checked.shrink_to_fit();
    checked
}

/// The election thread's state, built before it runs.
pub struct ElectionThread {
    poll: Poll,
    commands: Receiver<Command>,
    socket: Option<UdpSocket>,
    destinations: Vec<SocketAddr>,
    policy: Policy,
    vips: Vec<Vip>,
    /// Per canonical service: whether it has a health check.
    checked: Vec<bool>,
    key: Option<Vec<u8>>,
    responder: Mailbox<ResponderCommand>,
    actions: Mailbox<ActionsCommand>,
    /// Interfaces by name: (present, usable), as the link thread reports.
    links: HashMap<String, (bool, bool)>,
    /// The last health report per service.
    health: HashMap<String, HealthReport>,
    /// Services handed over recently, still routed here until the instant.
    linger: BTreeMap<Arc<str>, (Vip, Instant)>,
    counters: Counters,
    mismatched: BTreeSet<String>,
    last_log: Option<Instant>,
    suppressed: u64,
    started: Instant,
    summary: Value,
    config_path: PathBuf,
    running: Config,
    runtime: Vec<Service>,
    /// The services with health checks of the list last applied (to see
    /// which checks changed).
    previous: Vec<Service>,
}

impl ElectionThread {
    /// Opens the heartbeat socket (unless the node is alone) and returns the
    /// thread state and its mailbox.
    pub fn new(
        config: &Config,
        config_path: &Path,
        key: Option<Vec<u8>>,
        responder: Mailbox<ResponderCommand>,
        actions: Mailbox<ActionsCommand>,
    ) -> io::Result<(ElectionThread, Mailbox<Command>)> {
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
        let mut runtime = Vec::new();
        if let Some(path) = &config.state_file {
            let loaded = crate::state::load(Path::new(path));
            for warning in loaded.warnings {
                warn!("{warning}");
            }
            for service in loaded.services {
                let clash = config
                    .services
                    .iter()
                    .chain(&runtime)
                    .any(|s| s.name == service.name || s.ip == service.ip);
                if clash {
                    warn!(
                        "state file: {} ({}) clashes with another service; skipped",
                        service.name, service.ip
                    );
                } else if config.services.len() + runtime.len() >= config::MAX_SERVICES {
                    warn!(
                        "state file: {} ({}) skipped: already {} services",
                        service.name,
                        service.ip,
                        config::MAX_SERVICES
                    );
                } else {
                    runtime.push(service);
                }
            }
            if !runtime.is_empty() {
                info!(
                    "{} services added at runtime restored from {path}",
                    runtime.len()
                );
            }
        }
        let all: Vec<Service> = config.services.iter().chain(&runtime).cloned().collect();
        let (specs, vips) = canonical(&all, config.bind);
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
                    crate::config::Mode::Single => "single",
                    crate::config::Mode::Spread => "spread",
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
            vips,
            checked: Vec::new(),
            key,
            responder,
            actions,
            links: HashMap::new(),
            health: HashMap::new(),
            linger: BTreeMap::new(),
            counters: Counters::default(),
            mismatched: BTreeSet::new(),
            last_log: None,
            suppressed: 0,
            started: Instant::now(),
            config_path: config_path.to_path_buf(),
            running: config.clone(),
            runtime,
            previous: Vec::new(),
            summary: json!({
                "node": config.node,
                "cluster": config.cluster,
                "priority": config.priority,
                "mode": config.mode,
                "preempt": config.preempt,
                "interval_ms": heartbeat.interval_ms,
                "lease_ms": heartbeat.lease_ms,
            }),
        };
        thread.checked = thread.checks_of(&all);
        thread.previous = with_checks(all);
        let now = Instant::now();
        for index in 0..thread.vips.len() {
            let unfit = thread.unfit_of(index);
            thread.policy.set_unfit(now, index, unfit);
        }
        thread.configure_actions();
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

    /// Why this node cannot serve canonical service `index` now, if so.
    fn unfit_of(&mut self, index: usize) -> Option<&'static str> {
        let vip = &self.vips[index];
        let (present, usable) = match self.links.get(&*vip.interface) {
            Some(link) => *link,
            None => {
                let link = match iface::lookup(&vip.interface) {
                    Ok(info) => (true, info.up && info.running),
                    Err(_) => (false, false),
                };
                self.links.insert(vip.interface.to_string(), link);
                link
            }
        };
        if !present {
            return Some("interface gone");
        }
        if !usable {
            return Some("link down");
        }
        if self.checked.get(index).copied().unwrap_or(false) {
            return match self.health.get(&*vip.name).and_then(|r| r.healthy) {
                Some(true) => None,
                Some(false) => Some("health check failing"),
                None => Some("health check pending"),
            };
        }
        None
    }

    /// Re-evaluates every service's fitness (after a link or health change).
    fn refresh_unfit(&mut self, now: Instant) {
        for index in 0..self.vips.len() {
            let unfit = self.unfit_of(index);
            self.policy.set_unfit(now, index, unfit);
        }
        self.publish(now);
    }

    /// Tells the actions thread the services and hooks in force.
    fn configure_actions(&self) {
        let _ = self.actions.send(ActionsCommand::Configure {
            services: self.all_services(),
            hooks: self.running.hooks.clone(),
            bind: self.running.bind,
        });
    }

    fn on_link(&mut self, now: Instant, state: LinkState) {
        let link = (state.present, state.usable);
        let before = self.links.insert(state.name.clone(), link);
        let managed = self.vips.iter().any(|v| *v.interface == *state.name);
        if managed && before != Some(link) {
            let what = match link {
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
        let before = self.linger.len();
        self.linger.retain(|name, (_, until)| {
            let keep = now < *until;
            if !keep {
                info!("{name}: linger over; no longer accepting its traffic here");
            }
            keep
        });
        if self.linger.len() != before {
            self.publish_ownership();
        }
        self.linger.values().map(|(_, until)| *until).min()
    }

    /// Runs until `Leave`.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(16);
        let mut scratch = Scratch::default();
        let mut buffer = vec![0u8; heartbeat::MAX_LEN + 1];
        let mut out = vec![0u8; heartbeat::MAX_LEN];
        // The socket may hold more than one wake-up's share (edge-triggered).
        let mut pending = false;
        loop {
            let now = Instant::now();
            self.policy.on_tick(now);
            self.publish(now);
            if self.policy.wants_send(now) {
                self.send(now, &mut scratch, &mut out);
            }
            let linger_ends = self.expire_linger(now);
            let timeout = if pending {
                Duration::ZERO
            } else {
                let at = self.policy.poll_at(now);
                linger_ends
                    .map_or(at, |end| at.min(end))
                    .saturating_duration_since(Instant::now())
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            while let Ok(command) = self.commands.try_recv() {
                match command {
                    Command::Leave => {
                        let now = Instant::now();
                        // Nothing of l2vip stays behind: no linger at exit.
                        self.linger.clear();
                        self.policy.leave(now);
                        self.publish(now);
                        for _ in 0..LEAVING_COPIES {
                            self.send(now, &mut scratch, &mut out);
                        }
                        info!("election stopping; {}", self.counters);
                        return Ok(());
                    }
                    Command::LogCounters => self.log_state(),
                    Command::Link(state) => self.on_link(Instant::now(), state),
                    Command::Address {
                        ip,
                        interface,
                        added,
                    } => self.on_address(ip, interface, added),
                    Command::Health(report) => self.on_health(Instant::now(), report),
                    Command::Reload => {
                        let response = self.reload(Instant::now());
                        match (&response.data, &response.error) {
                            (_, Some(error)) => warn!("reload refused: {}", error.message),
                            (Some(data), _) => info!("reloaded: {data}"),
                            _ => {}
                        }
                    }
                    Command::Control {
                        id,
                        request,
                        reply_to,
                    } => {
                        let response = self.control(request);
                        let _ = reply_to.send(ControlEvent::Reply { id, response });
                    }
                }
            }
            if pending || events.iter().any(|e| e.token() == SOCKET) {
                pending = !self.receive(&mut buffer);
            }
        }
    }

    /// Answers a control request; changes take effect (and are published)
    /// before the answer goes out.
    fn control(&mut self, request: Request) -> Response {
        let now = Instant::now();
        let response = match request {
            Request::Status => Response::ok(self.status(now)),
            Request::Services => Response::ok(self.services(now)),
            Request::Metrics => Response::ok(self.metrics(now)),
            Request::Drain => {
                self.policy.set_draining(now, true);
                Response::ok(json!({"draining": true}))
            }
            Request::Undrain => {
                self.policy.set_draining(now, false);
                Response::ok(json!({"draining": false}))
            }
            Request::Handover { service } => self.handover(now, service.as_deref()),
            Request::Add { service } => self.add(now, service),
            Request::Remove { service } => self.remove(now, &service),
            Request::Reload => self.reload(now),
        };
        self.publish(now);
        response
    }

    /// Every service: the configuration's, then those added at runtime.
    fn all_services(&self) -> Vec<Service> {
        self.running
            .services
            .iter()
            .chain(&self.runtime)
            .cloned()
            .collect()
    }

    /// Hands the current service list to the election and the responder.
    fn apply_services(&mut self, now: Instant) {
        let all = self.all_services();
        let (specs, vips) = canonical(&all, self.running.bind);
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
        let vips = &self.vips;
        self.linger
            .retain(|name, (vip, _)| vips.iter().any(|v| &v.name == name && v == vip && v.route));
        let unfit = (0..self.vips.len()).map(|i| self.unfit_of(i)).collect();
        self.policy.set_services(now, specs, unfit);
        self.configure_actions();
        for name in self.policy.take_removed() {
            info!("released {name}: removed");
        }
        self.publish(now);
        self.publish_ownership();
    }

    fn save_runtime(&self) -> Result<(), Response> {
        let Some(path) = &self.running.state_file else {
            return Ok(());
        };
        crate::state::save(Path::new(path), &self.runtime).map_err(|e| {
            Response::error(
                code::STATE_FILE,
                format!("cannot write the state file {path}: {e}"),
            )
        })
    }

    fn add(&mut self, now: Instant, value: Value) -> Response {
        let service = match config::service_from_json(value) {
            Ok(service) => service,
            Err(e) => return Response::error(code::BAD_REQUEST, format!("add: {e}")),
        };
        if let Some(other) = self
            .all_services()
            .iter()
            .find(|s| s.name == service.name || s.ip == service.ip)
        {
            return Response::error(
                code::EXISTS,
                format!("{} ({}) exists already", other.name, other.ip),
            );
        }
        if let Err(e) = iface::lookup(&service.interface) {
            return Response::error(code::BAD_INTERFACE, format!("{}: {e}", service.interface));
        }
        if self.all_services().len() >= config::MAX_SERVICES {
            return Response::error(
                code::TOO_MANY,
                format!(
                    "already {} services, the most a node serves",
                    config::MAX_SERVICES
                ),
            );
        }
        self.runtime.push(service.clone());
        if let Err(response) = self.save_runtime() {
            self.runtime.pop();
            return response;
        }
        info!(
            "added {} ({} on {}) at runtime",
            service.name, service.ip, service.interface
        );
        self.apply_services(now);
        Response::ok(json!({ "added": service.name }))
    }

    fn remove(&mut self, now: Instant, name: &str) -> Response {
        let Some(index) = self.runtime.iter().position(|s| *s.name == *name) else {
            if self.running.services.iter().any(|s| *s.name == *name) {
                return Response::error(
                    code::CONFIGURED,
                    format!("{name} is in the configuration file: remove it there and reload"),
                );
            }
            return Response::error(code::NOT_FOUND, format!("no service named {name:?}"));
        };
        let removed = self.runtime.remove(index);
        if let Err(response) = self.save_runtime() {
            self.runtime.insert(index, removed);
            return response;
        }
        info!("removed {} ({}) at runtime", removed.name, removed.ip);
        self.apply_services(now);
        Response::ok(json!({ "removed": name }))
    }

    /// Re-reads the configuration and applies what can change without a
    /// restart: services, priority, preempt, the heartbeat key. Anything
    /// else is reported as needing a restart and keeps its running value.
    fn reload(&mut self, now: Instant) -> Response {
        let new = match crate::daemon::load_config(&self.config_path) {
            Ok(config) => config,
            Err(e) => return Response::error(code::INVALID_CONFIG, e),
        };
        let key = match crate::daemon::load_key(&new) {
            Ok(key) => key,
            Err(e) => return Response::error(code::INVALID_CONFIG, e),
        };
        let old = &self.running;
        let mut restart = Vec::new();
        let differs = |name: &'static str, changed: bool, list: &mut Vec<&'static str>| {
            if changed {
                list.push(name);
            }
        };
        differs("node", old.node != new.node, &mut restart);
        differs("cluster", old.cluster != new.cluster, &mut restart);
        differs("mode", old.mode != new.mode, &mut restart);
        let heartbeat_changed = (
            &old.heartbeat.port,
            &old.heartbeat.bind,
            old.heartbeat.interval_ms,
            old.heartbeat.lease_ms,
            &old.heartbeat.peers,
            &old.heartbeat.multicast,
        ) != (
            &new.heartbeat.port,
            &new.heartbeat.bind,
            new.heartbeat.interval_ms,
            new.heartbeat.lease_ms,
            &new.heartbeat.peers,
            &new.heartbeat.multicast,
        );
        differs("heartbeat", heartbeat_changed, &mut restart);
        differs("announce", old.announce != new.announce, &mut restart);
        differs("control", old.control != new.control, &mut restart);
        differs("state_file", old.state_file != new.state_file, &mut restart);
        differs("user", old.user != new.user, &mut restart);
        differs("nice", old.nice != new.nice, &mut restart);
        for name in &restart {
            warn!("reload: {name} changed; it takes effect at the next restart");
        }
        // Runtime services that the file now defines itself give way to it.
        let before = self.runtime.len();
        self.runtime.retain(|r| {
            !new.services
                .iter()
                .any(|s| s.name == r.name || s.ip == r.ip)
        });
        let dropped = before - self.runtime.len();
        let services_changed = old.services != new.services || dropped > 0 || old.bind != new.bind;
        let (old_bind, old_hooks) = (old.bind, old.hooks.clone());
        self.key = key;
        self.policy.set_priority(now, new.priority, new.preempt);
        self.running.services = new.services;
        self.running.priority = new.priority;
        self.running.preempt = new.preempt;
        self.running.heartbeat.key_file = new.heartbeat.key_file;
        let actions_changed = (old_bind, &old_hooks) != (new.bind, &new.hooks);
        self.running.bind = new.bind;
        self.running.linger_s = new.linger_s;
        self.running.hooks = new.hooks;
        if let Value::Object(summary) = &mut self.summary {
            summary.insert("priority".into(), new.priority.into());
            summary.insert("preempt".into(), new.preempt.into());
        }
        if dropped > 0 {
            if let Err(response) = self.save_runtime() {
                warn!(
                    "reload: {}",
                    response.error.map(|e| e.message).unwrap_or_default()
                );
            }
        }
        if services_changed {
            self.apply_services(now);
        } else if actions_changed {
            self.configure_actions();
        }
        Response::ok(json!({
            "services": self.vips.len(),
            "services_changed": services_changed,
            "restart_needed": restart,
        }))
    }

    fn handover(&mut self, now: Instant, service: Option<&str>) -> Response {
        let indices: Vec<usize> = match service {
            Some(name) => match self.vips.iter().position(|v| &*v.name == name) {
                Some(index) => vec![index],
                None => {
                    return Response::error(code::NOT_FOUND, format!("no service named {name:?}"))
                }
            },
            None => self.policy.owned().collect(),
        };
        if indices.is_empty() {
            return Response::error(code::NOT_OWNER, "this node owns no VIP");
        }
        let mut moved = Vec::new();
        for index in indices {
            let name = &self.vips[index].name;
            match self.policy.handover(now, index) {
                Ok(()) => moved.push(name.to_string()),
                Err(HandoverError::NotOwner) => {
                    return Response::error(
                        code::NOT_OWNER,
                        format!("this node does not own {name}"),
                    )
                }
                Err(HandoverError::NoCandidate) => {
                    return Response::error(
                        code::NO_CANDIDATE,
                        format!("no other node can take {name} now"),
                    )
                }
            }
        }
        Response::ok(json!({ "handed_over": moved }))
    }

    fn status(&self, now: Instant) -> Value {
        let services: Vec<Value> = self
            .vips
            .iter()
            .enumerate()
            .map(|(index, vip)| {
                let owner = self.policy.owner(index, now);
                let linger_left = self
                    .linger
                    .get(&vip.name)
                    .map(|(_, until)| until.saturating_duration_since(now).as_secs());
                let state = match (owner, linger_left) {
                    (Some(node), _) if node == self.policy_node() => "owner",
                    (_, Some(_)) => "lingering",
                    (Some(_), None) => "standby",
                    (None, None) => "no owner",
                };
                let health = self.checked[index].then(|| {
                    let report = self.health.get(&*vip.name);
                    json!({
                        "state": match report.and_then(|r| r.healthy) {
                            Some(true) => "passing",
                            Some(false) => "failing",
                            None => "pending",
                        },
                        "last": report.map(|r| r.detail.as_str()),
                    })
                });
                json!({
                    "name": &*vip.name,
                    "ip": vip.ip,
                    "interface": &*vip.interface,
                    "owner": owner,
                    "state": state,
                    "since_s": self.policy.acquired_at(index).map(|at| now.saturating_duration_since(at).as_secs()),
                    "unfit": self.policy.unfit(index),
                    "linger_left_s": linger_left,
                    "health": health,
                })
            })
            .collect();
        let peers: Vec<Value> = self
            .policy
            .peer_states(now)
            .into_iter()
            .map(|p| {
                json!({
                    "node": p.node,
                    "priority": p.priority,
                    "alive": p.alive,
                    "last_heard_ms": p.last_heard.as_millis() as u64,
                    "lease_left_ms": p.lease_left.as_millis() as u64,
                    "draining": p.draining,
                    "joining": p.joining,
                    "leaving": p.leaving,
                    "same_services": p.same_services,
                })
            })
            .collect();
        let mut status = self.summary.clone();
        if let Value::Object(map) = &mut status {
            map.insert("draining".into(), self.policy.draining().into());
            map.insert(
                "uptime_s".into(),
                now.saturating_duration_since(self.started).as_secs().into(),
            );
            map.insert(
                "digest".into(),
                format!("{:016x}", self.policy.digest()).into(),
            );
            map.insert("digest_agreement".into(), self.mismatched.is_empty().into());
            map.insert("services".into(), services.into());
            map.insert("peers".into(), peers.into());
        }
        status
    }

    fn policy_node(&self) -> &str {
        self.summary["node"].as_str().unwrap_or_default()
    }

    fn services(&self, now: Instant) -> Value {
        let services: Vec<Value> = self
            .vips
            .iter()
            .zip(self.policy.services())
            .enumerate()
            .map(|(index, (vip, spec))| {
                json!({
                    "name": &*vip.name,
                    "ip": vip.ip,
                    "interface": &*vip.interface,
                    "nodes": spec.nodes,
                    "owned": self.policy.owns(index),
                    "owner": self.policy.owner(index, now),
                })
            })
            .collect();
        json!({ "services": services })
    }

    fn metrics(&self, _now: Instant) -> Value {
        let rejected: serde_json::Map<String, Value> = Drop::NAMES
            .iter()
            .zip(self.counters.rejected)
            .map(|(name, count)| (name.to_string(), count.into()))
            .collect();
        let vips: Vec<Value> = self
            .vips
            .iter()
            .enumerate()
            .map(|(index, vip)| json!({"service": &*vip.name, "ip": vip.ip, "owned": self.policy.owns(index)}))
            .collect();
        json!({
            "node": self.policy_node(),
            "election": {
                "heartbeats_sent": self.counters.sent,
                "heartbeats_received": self.counters.received,
                "heartbeat_send_errors": self.counters.send_errors,
                "ownership_changes": self.counters.ownership_changes,
                "heartbeats_rejected": rejected,
            },
            "vips": vips,
        })
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
        let drained = self.receive_from(&socket, buffer);
        self.socket = Some(socket);
        let now = Instant::now();
        self.publish(now);
        drained
    }

    fn receive_from(&mut self, socket: &UdpSocket, buffer: &mut [u8]) -> bool {
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
                Err(Drop::Oversized)
            } else {
                self.accept(&buffer[..len])
            };
            match verdict {
                Ok(()) => self.counters.received += 1,
                Err(drop) => {
                    self.counters.reject(drop);
                    if !matches!(drop, Drop::Policy(Reject::Own)) {
                        self.log_drop(from, drop);
                    }
                }
            }
        }
        false
    }

    fn accept(&mut self, datagram: &[u8]) -> Result<(), Drop> {
        let beat = Repr::parse(datagram).map_err(Drop::Wire)?;
        match &self.key {
            Some(key) if !heartbeat::is_authenticated(datagram) => {
                return Err(Drop::Unauthenticated)
            }
            Some(key) if !heartbeat::verify(datagram, key) => return Err(Drop::BadMac),
            None if heartbeat::is_authenticated(datagram) => return Err(Drop::UnexpectedMac),
            _ => {}
        }
        let now = Instant::now();
        self.policy.on_heartbeat(now, &beat).map_err(Drop::Policy)?;
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
        Ok(())
    }

    fn log_drop(&mut self, from: SocketAddr, drop: Drop) {
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
                warn!("dropped a heartbeat from {from}: {}{more}", drop.name());
                self.last_log = Some(now);
            }
        }
    }

    fn send(&mut self, now: Instant, scratch: &mut Scratch, out: &mut [u8]) {
        let key = self.key.as_deref();
        let beat = self.policy.heartbeat(now, scratch);
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

    /// Sends the current ownership to the responder, changed or not.
    /// The snapshot goes to the actions thread, which installs routes and
    /// then hands it to the responder.
    fn publish_ownership(&mut self) {
        let mut ownership = Ownership {
            vips: self.policy.owned().map(|i| self.vips[i].clone()).collect(),
            lingering: self.linger.values().map(|(vip, _)| vip.clone()).collect(),
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

    /// Publishes ownership changes to the responder and logs them.
    fn publish(&mut self, now: Instant) {
        let changes = self.policy.take_changes();
        let reannounce = self.policy.take_reannounce();
        if !changes.is_empty() {
            let linger = Duration::from_secs(self.running.linger_s);
            for change in &changes {
                let vip = &self.vips[change.service];
                if change.acquired {
                    self.linger.remove(&vip.name);
                } else if change.planned && vip.route && !linger.is_zero() {
                    info!(
                        "{}: still accepting its traffic here for {} s (linger) for clients \
                         with stale caches",
                        vip.name,
                        linger.as_secs()
                    );
                    self.linger
                        .insert(vip.name.clone(), (vip.clone(), now + linger));
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
