//! The actions thread: applies ownership to the host (local routes, the
//! kernel's ARP settings) before the responder announces anything, runs
//! the hooks, and runs the health checks whose results decide, in the
//! election, whether this node may serve a VIP.
//!
//! Nothing here waits: commands are child processes read through pipes,
//! TCP checks are non-blocking connects, all bounded by timeouts in the
//! loop's own clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::children::{Child, Outcome};
use super::health::Health;
use super::hooks::{HookEvent, HookQueue, QueuedHook};
use super::roles::{self, RoleQueue, RoleRun};
use super::routes::{RouteSet, RouteTo, Routes};
use super::sysctl::ArpSettings;
use crate::channel::{mailbox, wait, Inbox, Mailbox};
use crate::config::{self, Bind, Check, Config, ExportWhat, Hooks, Service};
use crate::message::{
    ActionsCommand as Command, ElectionCommand, HealthReport, LinkState, ResponderCommand,
};
use crate::ownership::{Ownership, Vip};
use crate::wire::EthernetAddress;

const WAKER: Token = Token(0);
/// While children run, the loop looks for their exit this often.
const REAP_TICK: Duration = Duration::from_millis(20);
/// How long running hooks may finish at exit before they are killed.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1000);

/// What a child process is for.
#[derive(Debug)]
enum Purpose {
    Hook { service: String },
    Check { service: String },
    Role,
}

#[derive(Debug)]
struct Run {
    child: Child,
    purpose: Purpose,
}

/// One service's health check and its state.
#[derive(Debug)]
struct CheckState {
    spec: config::Health,
    service: Service,
    health: Health,
    next_at: Instant,
    probe: Option<Probe>,
}

#[derive(Debug)]
enum Probe {
    Tcp {
        stream: TcpStream,
        token: Token,
        deadline: Instant,
    },
    Exec {
        token: Token,
    },
}

/// The actions thread's state.
pub struct ActionsThread {
    poll: Poll,
    commands: Inbox<Command>,
    node: String,
    responder: Mailbox<ResponderCommand>,
    election: Option<Mailbox<ElectionCommand>>,
    routes: Routes,
    arp: ArpSettings,
    current: Arc<Ownership>,
    hooks: Hooks,
    /// `l2vip daemon --notify`: run on every acquire, release and role change, besides
    /// the configured hooks (packages use it for their event systems).
    notify: Option<String>,
    bind: Bind,
    /// The interfaces services live on.
    interfaces: BTreeSet<Arc<str>>,
    /// Interfaces by name: (index, usable), as last reported.
    links: HashMap<String, (u32, bool)>,
    checks: BTreeMap<Arc<str>, CheckState>,
    runs: HashMap<Token, Run>,
    /// Checks killed because their service went or changed, until reaped.
    killed: Vec<Child>,
    hook_queue: HookQueue,
    /// The node-level events (primary, backup, fault).
    roles: RoleQueue,
    next_token: usize,
}

impl ActionsThread {
    /// Opens the route socket and removes routes a crashed run left.
    /// The ARP settings are applied here, before any thread runs, so no
    /// ARP exchange of this node happens with the kernel's defaults.
    pub fn new(
        config: &Config,
        notify: Option<String>,
        responder: Mailbox<ResponderCommand>,
    ) -> io::Result<(ActionsThread, Mailbox<Command>)> {
        let poll = Poll::new()?;
        let (mailbox, commands) = mailbox(poll.registry(), WAKER)?;
        let mut routes = Routes::open()
            .map_err(|e| io::Error::new(e.kind(), format!("netlink route socket: {e}")))?;
        match routes.remove_stale() {
            Ok(0) => {}
            Ok(count) => info!("removed {count} l2vip routes left by an earlier run"),
            Err(e) => warn!("cannot look for stale l2vip routes: {e}"),
        }
        let parents: Vec<u32> = config
            .services
            .iter()
            .filter_map(|s| crate::sys::iface::index(&s.interface))
            .collect();
        if let Err(e) = routes.remove_stale_macvlans(&parents) {
            warn!("cannot look for stale l2vip macvlans: {e}");
        }
        let link_local: Vec<(Ipv6Addr, Arc<str>)> = config
            .services
            .iter()
            .filter(|s| s.bind.unwrap_or(config.bind) == Bind::Route)
            .filter_map(|s| Some((config::link_local(s.ip)?, Arc::clone(&s.interface))))
            .collect();
        routes.remove_stale_addresses(&link_local);
        // Beside the control socket: on a run directory that a reboot empties,
        // as it puts the kernel's settings back too.
        let record = std::path::PathBuf::from(format!("{}.arp", config.control.socket));
        let mut arp = ArpSettings::new(Some(record));
        if config
            .services
            .iter()
            .any(|s| s.bind.unwrap_or(config.bind) == Bind::Route)
        {
            arp.ensure("all");
        }
        Ok((
            ActionsThread {
                poll,
                commands,
                node: config.node.clone(),
                responder,
                election: None,
                routes,
                arp,
                current: Arc::new(Ownership::default()),
                hooks: config.hooks.clone(),
                notify,
                bind: config.bind,
                interfaces: BTreeSet::new(),
                links: HashMap::new(),
                checks: BTreeMap::new(),
                runs: HashMap::new(),
                killed: Vec::new(),
                hook_queue: HookQueue::default(),
                roles: RoleQueue::default(),
                next_token: 1,
            },
            mailbox,
        ))
    }

    /// Where health results go (the election is built after this thread).
    pub fn report_to(&mut self, election: Mailbox<ElectionCommand>) {
        self.election = Some(election);
    }

    fn token(&mut self) -> Token {
        self.next_token = self.next_token.wrapping_add(1).max(1);
        Token(self.next_token)
    }

    /// Runs until `Shutdown`.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(32);
        loop {
            let now = Instant::now();
            self.tick(now);
            let timeout = self
                .wake_at(now)
                .map(|at| at.saturating_duration_since(Instant::now()));
            wait(&mut self.poll, &mut events, timeout)?;
            for event in events.iter() {
                let token = event.token();
                if token != WAKER {
                    self.on_event(token);
                }
            }
            while let Some(command) = self.commands.try_recv() {
                match command {
                    Command::Own(ownership) => self.own(ownership),
                    Command::Configure {
                        services,
                        hooks,
                        bind,
                    } => self.configure(services, hooks, bind),
                    Command::Link(state) => self.link(state),
                    Command::Shutdown => {
                        self.shutdown();
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The next instant the loop has something to do, if any.
    fn wake_at(&self, now: Instant) -> Option<Instant> {
        let checks = self.checks.values().map(|c| match &c.probe {
            None => c.next_at,
            Some(Probe::Tcp { deadline, .. }) => *deadline,
            Some(Probe::Exec { .. }) => now + REAP_TICK,
        });
        let children = self
            .runs
            .values()
            .map(|run| run.child.deadline().min(now + REAP_TICK));
        let killed = self.killed.iter().map(|_| now + REAP_TICK);
        checks.chain(children).chain(killed).min()
    }

    fn on_event(&mut self, token: Token) {
        if let Some(run) = self.runs.get_mut(&token) {
            if run.child.read_output() {
                if let Some(output) = run.child.output_mut() {
                    let _ = self.poll.registry().deregister(output);
                }
            }
            return;
        }
        let finished = self
            .checks
            .iter()
            .find_map(|(name, check)| match &check.probe {
                Some(Probe::Tcp { token: t, .. }) if *t == token => Some(name.clone()),
                _ => None,
            });
        if let Some(name) = finished {
            self.finish_tcp(&name, Instant::now());
        }
    }

    /// Time-driven work: children that ended or overran, checks that are
    /// due or timed out.
    fn tick(&mut self, now: Instant) {
        self.killed.retain_mut(|child| child.poll(now).is_none());
        let ended: Vec<(Token, Outcome)> = self
            .runs
            .iter_mut()
            .filter_map(|(token, run)| run.child.poll(now).map(|outcome| (*token, outcome)))
            .collect();
        for (token, outcome) in ended {
            let Some(mut run) = self.runs.remove(&token) else {
                continue;
            };
            if let Some(output) = run.child.output_mut() {
                let _ = self.poll.registry().deregister(output);
            }
            match run.purpose {
                Purpose::Hook { service } => {
                    if !outcome.success() {
                        warn!("{}: {}", run.child.label(), outcome.describe());
                    }
                    self.hook_queue.finished(&service);
                    self.start_hooks(&service);
                }
                Purpose::Role => {
                    if !outcome.success() {
                        warn!("{}: {}", run.child.label(), outcome.describe());
                    }
                    let next = self.roles.finished(self.notify.is_some());
                    self.start_role(next);
                }
                Purpose::Check { service } => {
                    let ok = outcome.success();
                    self.record(&service, ok, outcome.describe(), now);
                }
            }
        }
        let overdue: Vec<Arc<str>> = self
            .checks
            .iter()
            .filter(
                |(_, c)| matches!(c.probe, Some(Probe::Tcp { deadline, .. }) if now >= deadline),
            )
            .map(|(name, _)| name.clone())
            .collect();
        for name in overdue {
            if let Some(check) = self.checks.get_mut(&*name) {
                if let Some(Probe::Tcp { mut stream, .. }) = check.probe.take() {
                    let _ = self.poll.registry().deregister(&mut stream);
                }
            }
            self.record(&name, false, "timed out".into(), now);
        }
        let due: Vec<Arc<str>> = self
            .checks
            .iter()
            .filter(|(_, c)| c.probe.is_none() && now >= c.next_at)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            self.start_check(&name, now);
        }
    }

    fn start_check(&mut self, name: &str, now: Instant) {
        let token = self.token();
        let Some(check) = self.checks.get_mut(name) else {
            return;
        };
        check.next_at = now + check.spec.interval();
        let timeout = check.spec.timeout();
        let started = match &check.spec.check {
            Check::Tcp(address) => TcpStream::connect(*address).and_then(|mut stream| {
                self.poll
                    .registry()
                    .register(&mut stream, token, Interest::WRITABLE)?;
                Ok(Probe::Tcp {
                    stream,
                    token,
                    deadline: now + timeout,
                })
            }),
            Check::Exec(command) => {
                let service = &check.service;
                let env = vip_env(&self.node, &service.name, service.ip, &service.interface);
                let label = format!("health check of {name}");
                Child::spawn(command, &env, label, timeout).and_then(|mut child| {
                    if let Some(output) = child.output_mut() {
                        self.poll
                            .registry()
                            .register(output, token, Interest::READABLE)?;
                    }
                    self.runs.insert(
                        token,
                        Run {
                            child,
                            purpose: Purpose::Check {
                                service: name.to_string(),
                            },
                        },
                    );
                    Ok(Probe::Exec { token })
                })
            }
        };
        match started {
            Ok(probe) => check.probe = Some(probe),
            Err(e) => self.record(name, false, format!("cannot start: {e}"), now),
        }
    }

    fn finish_tcp(&mut self, name: &str, now: Instant) {
        let Some(check) = self.checks.get_mut(name) else {
            return;
        };
        let Some(Probe::Tcp { mut stream, .. }) = check.probe.take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut stream);
        // A connect that finished: an error is waiting, or a peer exists.
        let (ok, detail) = match stream.take_error() {
            Ok(Some(e)) | Err(e) => (false, e.to_string()),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => (true, "connected".to_string()),
                Err(e) => (false, e.to_string()),
            },
        };
        self.record(name, ok, detail, now);
    }

    /// Takes one check result; the election hears about every result.
    fn record(&mut self, name: &str, ok: bool, detail: String, now: Instant) {
        let Some(check) = self.checks.get_mut(name) else {
            return;
        };
        check.probe = None;
        let (rise, fall) = (check.spec.rise, check.spec.fall);
        if let Some(healthy) = check.health.record(ok, detail.clone(), now, rise, fall) {
            if healthy {
                info!("{name}: health check passes ({detail})");
            } else {
                warn!("{name}: health check fails ({detail})");
            }
        }
        let report = HealthReport {
            service: name.to_string(),
            healthy: check.health.healthy,
            detail,
        };
        if let Some(election) = &self.election {
            let _ = election.send(ElectionCommand::Health(report));
        }
    }

    /// The routes `ownership` needs, (VIP, table) → (interface, metric):
    /// local routes for owned, lingering and eligible VIPs with `route`;
    /// exported routes for owned VIPs that export `owned` and for the
    /// eligible ones.
    fn wanted(ownership: &Ownership) -> RouteSet {
        let local = u32::from(crate::wire::netlink::TABLE_LOCAL);
        let to = |vip: &Vip, metric| RouteTo {
            interface: Arc::clone(&vip.interface),
            metric,
            ifindex: 0,
        };
        let mut wanted = RouteSet::new();
        let accepted = ownership
            .vips
            .iter()
            .chain(&ownership.lingering)
            .chain(&ownership.eligible);
        // A link-local VIP is an address instead (`wanted_addresses`).
        for vip in accepted.filter(|vip| vip.route && !config::is_link_local(vip.ip)) {
            wanted.insert((vip.ip, local), to(vip, 0));
        }
        let owned = ownership
            .vips
            .iter()
            .filter(|vip| vip.export.is_some_and(|e| e.what == ExportWhat::Owned));
        for vip in owned.chain(&ownership.eligible) {
            if let Some(export) = vip.export {
                wanted.insert((vip.ip, export.table), to(vip, export.metric));
            }
        }
        wanted
    }

    /// The addresses `ownership` needs: its owned link-local VIPs with
    /// `route` (lingering ones go at once: the kernel would answer for them).
    fn wanted_addresses(ownership: &Ownership) -> Vec<(Ipv6Addr, Arc<str>)> {
        ownership
            .vips
            .iter()
            .filter(|vip| vip.route)
            .filter_map(|vip| Some((config::link_local(vip.ip)?, Arc::clone(&vip.interface))))
            .collect()
    }

    /// The macvlans `ownership` needs: owned VIPs with a MAC of their own
    /// (never lingering ones: the MAC now answers at the new owner).
    fn wanted_macs(ownership: &Ownership) -> Vec<(EthernetAddress, Arc<str>)> {
        ownership
            .vips
            .iter()
            .filter_map(|vip| vip.mac.map(|mac| (mac, Arc::clone(&vip.interface))))
            .collect()
    }

    fn own(&mut self, ownership: Arc<Ownership>) {
        // Routes and MACs first, so the kernel accepts the traffic the
        // announcements bring; removals after the responder has stopped
        // answering.
        let wanted = Self::wanted(&ownership);
        let macs = Self::wanted_macs(&ownership);
        let addresses = Self::wanted_addresses(&ownership);
        self.routes.apply_macs(&macs, true);
        self.routes.apply(&wanted, true);
        self.routes.apply_addresses(&addresses, true);
        if self
            .responder
            .send(ResponderCommand::Own(Arc::clone(&ownership)))
            .is_err()
        {
            warn!("the responder is gone; ownership not applied");
        }
        self.routes.apply_addresses(&addresses, false);
        self.routes.apply(&wanted, false);
        self.routes.apply_macs(&macs, false);
        let key = |vip: &Vip| (vip.name.clone(), vip.ip);
        let before: Vec<_> = self.current.vips.iter().map(key).collect();
        let after: Vec<_> = ownership.vips.iter().map(key).collect();
        let released: Vec<Vip> = self
            .current
            .vips
            .iter()
            .filter(|vip| !after.contains(&key(vip)))
            .cloned()
            .collect();
        let acquired: Vec<Vip> = ownership
            .vips
            .iter()
            .filter(|vip| !before.contains(&key(vip)))
            .cloned()
            .collect();
        for vip in released {
            self.queue_hook(HookEvent::Release, vip);
        }
        for vip in acquired {
            self.queue_hook(HookEvent::Acquire, vip);
        }
        self.roles.set(ownership.role);
        self.current = ownership;
        self.start_role(None);
    }

    /// Starts `run`, else the next role event's first run, unless one
    /// runs; a run that cannot start counts as ended.
    fn start_role(&mut self, mut run: Option<RoleRun>) {
        let notify = self.notify.is_some();
        loop {
            let Some(now) = run.or_else(|| self.roles.next(&self.hooks, notify)) else {
                return;
            };
            if self.spawn_role(now) {
                return;
            }
            run = self.roles.finished(notify);
        }
    }

    /// Starts one process of a role event; false when it did not start.
    fn spawn_role(&mut self, run: RoleRun) -> bool {
        let (name, command) = if run.notify {
            ("--notify", self.notify.clone())
        } else {
            (
                roles::key(run.role),
                roles::command(run.role, &self.hooks).cloned(),
            )
        };
        let Some(command) = command else {
            return false;
        };
        let env = vec![
            ("L2VIP_NODE", self.node.clone()),
            ("L2VIP_EVENT", run.role.name().to_string()),
        ];
        let label = format!("hook {name} ({})", run.role.name());
        self.spawn(&command, &env, label, Purpose::Role)
    }

    /// Queues the hooks `event` on `vip` runs, and starts the first.
    fn queue_hook(&mut self, event: HookEvent, vip: Vip) {
        let configured = event.command(&self.hooks).is_some();
        let notify = self.notify.is_some();
        for dropped in self.hook_queue.push(event, &vip, configured, notify) {
            warn!(
                "{}: hooks are falling behind; the {} hook queued earlier is skipped",
                vip.name,
                dropped.name()
            );
        }
        self.start_hooks(&vip.name);
    }

    /// Starts the next queued hook of `service`, unless one runs: one at a
    /// time per service, in order. One that cannot start is skipped.
    fn start_hooks(&mut self, service: &str) {
        while let Some(hook) = self.hook_queue.next(service) {
            if self.spawn_hook(service, &hook) {
                return;
            }
            self.hook_queue.finished(service);
        }
    }

    /// Starts `hook` of `service`; false when it did not start (its command
    /// is no longer configured, or the process could not be made).
    fn spawn_hook(&mut self, service: &str, hook: &QueuedHook) -> bool {
        let (name, command) = if hook.notify {
            ("--notify", self.notify.clone())
        } else {
            (hook.event.key(), hook.event.command(&self.hooks).cloned())
        };
        let Some(command) = command else {
            return false;
        };
        let vip = &hook.vip;
        let mut env = vip_env(&self.node, &vip.name, vip.ip, &vip.interface);
        env.push(("L2VIP_EVENT", hook.event.name().to_string()));
        let label = format!("hook {name} for {service}");
        let purpose = Purpose::Hook {
            service: service.to_string(),
        };
        self.spawn(&command, &env, label, purpose)
    }

    /// Starts a hook's process, its output read by the loop; false when
    /// it could not be made.
    fn spawn(
        &mut self,
        command: &str,
        env: &[(&'static str, String)],
        label: String,
        purpose: Purpose,
    ) -> bool {
        let token = self.token();
        let spawned = Child::spawn(command, env, label.clone(), self.hooks.timeout()).and_then(
            |mut child| {
                if let Some(output) = child.output_mut() {
                    self.poll
                        .registry()
                        .register(output, token, Interest::READABLE)?;
                }
                Ok(child)
            },
        );
        match spawned {
            Ok(child) => {
                self.runs.insert(token, Run { child, purpose });
                true
            }
            Err(e) => {
                warn!("{label}: cannot start: {e}");
                false
            }
        }
    }

    fn configure(&mut self, services: Vec<Service>, hooks: Hooks, bind: Bind) {
        let now = Instant::now();
        self.bind = bind;
        if services.iter().any(|s| self.routes_for(s)) {
            self.arp.ensure("all");
        }
        // Checks whose service and settings are unchanged keep their state.
        let mut old = std::mem::take(&mut self.checks);
        for service in &services {
            let Some(spec) = &service.health else {
                continue;
            };
            let same = |c: &CheckState| {
                c.spec == **spec
                    && c.service.ip == service.ip
                    && c.service.interface == service.interface
            };
            let check = match old.remove(&*service.name) {
                Some(check) if same(&check) => check,
                other => {
                    if let Some(mut stale) = other {
                        self.drop_probe(&mut stale);
                    }
                    CheckState {
                        spec: (**spec).clone(),
                        service: service.clone(),
                        health: Health::new(),
                        next_at: now,
                        probe: None,
                    }
                }
            };
            self.checks.insert(Arc::clone(&service.name), check);
        }
        for (_, mut stale) in old {
            self.drop_probe(&mut stale);
        }
        self.interfaces = services.into_iter().map(|s| s.interface).collect();
        self.hooks = hooks;
    }

    /// Whether `service` gets a local route while owned.
    fn routes_for(&self, service: &Service) -> bool {
        service.bind.unwrap_or(self.bind) == Bind::Route
    }

    fn drop_probe(&mut self, check: &mut CheckState) {
        match check.probe.take() {
            Some(Probe::Tcp { mut stream, .. }) => {
                let _ = self.poll.registry().deregister(&mut stream);
            }
            Some(Probe::Exec { token }) => {
                if let Some(mut run) = self.runs.remove(&token) {
                    run.child.kill();
                    if let Some(output) = run.child.output_mut() {
                        let _ = self.poll.registry().deregister(output);
                    }
                    // Reaped in `tick` once it is gone, or it stays a zombie.
                    self.killed.push(run.child);
                }
            }
            None => {}
        }
    }

    fn link(&mut self, state: LinkState) {
        let managed = self.interfaces.contains(state.name.as_str());
        if !managed || !state.present {
            return;
        }
        let before = self
            .links
            .insert(state.name.clone(), (state.index, state.usable));
        let why = match before {
            // Re-created: the kernel dropped the routes on the old index.
            Some((index, _)) if index != state.index => "re-created",
            // Back up: the kernel flushed its IPv6 routes when it went down.
            Some((_, false)) if state.usable => "up again",
            _ => return,
        };
        let mine = self
            .routes
            .installed()
            .any(|(_, _, interface)| interface == state.name)
            || self
                .routes
                .macvlans()
                .any(|(_, parent, _)| parent == state.name)
            || self.routes.addresses().any(|(_, on)| on == state.name);
        if mine {
            info!(
                "{} {why} (index {}): adding its routes again",
                state.name, state.index
            );
            self.routes.forget_interface(&state.name);
            let macs = Self::wanted_macs(&self.current);
            self.routes.apply_macs(&macs, true);
            let wanted = Self::wanted(&self.current);
            self.routes.apply(&wanted, true);
            let addresses = Self::wanted_addresses(&self.current);
            self.routes.apply_addresses(&addresses, true);
        }
    }

    fn shutdown(&mut self) {
        self.routes.apply_addresses(&[], false);
        self.routes.apply(&RouteSet::new(), false);
        self.routes.apply_macs(&[], false);
        let left: Vec<String> = self
            .routes
            .installed()
            .map(|(ip, _, _)| ip.to_string())
            .collect();
        if !left.is_empty() {
            warn!("routes left in place: {}", left.join(", "));
        }
        self.arp.restore();
        let names: Vec<Arc<str>> = self.checks.keys().cloned().collect();
        for name in names {
            if let Some(mut check) = self.checks.remove(&name) {
                self.drop_probe(&mut check);
            }
        }
        // Release hooks started on the way out get a moment to finish.
        let deadline = Instant::now() + SHUTDOWN_GRACE.min(self.hooks.timeout());
        while !self.runs.is_empty() && Instant::now() < deadline {
            let now = Instant::now();
            self.runs.retain(|_, run| {
                run.child.read_output();
                run.child.poll(now).is_none()
            });
            std::thread::sleep(Duration::from_millis(10));
        }
        for run in self.runs.values_mut() {
            warn!("{}: still running at exit; killed", run.child.label());
            run.child.kill();
        }
        info!("actions stopping");
    }
}

/// What a hook or check learns about its VIP from the environment.
fn vip_env(node: &str, name: &str, ip: IpAddr, interface: &str) -> Vec<(&'static str, String)> {
    vec![
        ("L2VIP_NODE", node.to_string()),
        ("L2VIP_SERVICE", name.to_string()),
        ("L2VIP_VIP", ip.to_string()),
        ("L2VIP_INTERFACE", interface.to_string()),
    ]
}
