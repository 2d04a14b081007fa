//! The supervisor: loads the configuration, starts the threads in order,
//! turns signals into messages and stops everything cleanly.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::os::fd::AsRawFd;

use crate::actions::thread::ActionsThread;
use crate::catalogue::Catalogue;
use crate::channel::{mailbox, wait, Inbox, Mailbox};
use crate::config::{self, Config};
use crate::control::catalogue::Keeper;
use crate::control::server::ControlServer;
use crate::election::incarnation;
use crate::election::thread::ElectionThread;
use crate::link::{LinkThread, Listeners};
use crate::message::{
    ActionsCommand, ControlEvent, ElectionCommand, LinkCommand, ResponderCommand, ThreadEnd,
};
use crate::responder::thread::ResponderThread;
use crate::sys::sched;
use crate::sys::signal::{Signal, SignalFd};

/// Exit status: the configuration is unusable.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status: the daemon could not start or a thread failed.
pub const EXIT_FAILURE: u8 = 1;

const SIGNALS: Token = Token(0);
const THREADS: Token = Token(1);
/// How long a thread may take to stop before the daemon exits anyway.
/// Release hooks get up to a second of it.
const STOP_TIMEOUT: Duration = Duration::from_millis(2000);
/// When free memory first goes back to the system, and how often after.
const TRIM_FIRST: Duration = Duration::from_secs(5);
const TRIM_PERIOD: Duration = Duration::from_secs(60);

/// Sets this thread's niceness to `nice` (lower than now); false, with a
/// warning, when that is not permitted.
fn raise_priority(nice: i32) -> bool {
    match sched::set_thread_nice(nice) {
        Ok(()) => {
            info!("responder and election threads at nice {nice}");
            true
        }
        Err(e) => {
            warn!("cannot run the responder and election threads at nice {nice}: {e}");
            false
        }
    }
}

/// Gives up what the daemon no longer needs once its sockets are open:
/// with `user`, switches to it keeping CAP_NET_RAW and CAP_NET_ADMIN only.
/// Started as that user already, or as any user but root (systemd's
/// `User=` with `AmbientCapabilities=`), it keeps those two of what it was
/// given. Root without `user` stays root. In every case programs it runs
/// (hooks, checks) inherit no capabilities.
fn drop_privileges(user: Option<&str>) -> Result<(), String> {
    use crate::sys::privilege::{self, CAP_NET_ADMIN, CAP_NET_RAW};
    const KEEP: [u32; 2] = [CAP_NET_RAW, CAP_NET_ADMIN];
    let (uid, gid) = privilege::ids();
    let Some(name) = user else {
        if uid == 0 {
            return privilege::clear_ambient()
                .map_err(|e| format!("cannot clear the ambient capabilities: {e}"));
        }
        privilege::keep_only(&KEEP).map_err(|e| format!("cannot give up capabilities: {e}"))?;
        info!("running as uid {uid}, gid {gid} with CAP_NET_RAW and CAP_NET_ADMIN only");
        return Ok(());
    };
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("user {name}: cannot read /etc/passwd: {e}"))?;
    let user = privilege::find_user(&passwd, name)
        .ok_or_else(|| format!("user {name}: no such user in /etc/passwd"))?;
    if (user.uid, user.gid) == (uid, gid) {
        privilege::keep_only(&KEEP).map_err(|e| format!("cannot give up capabilities: {e}"))?;
    } else {
        privilege::drop_to(&user, &KEEP)
            .map_err(|e| format!("user {name}: cannot switch to it: {e}"))?;
    }
    info!(
        "running as {name} (uid {}, gid {}) with CAP_NET_RAW and CAP_NET_ADMIN only",
        user.uid, user.gid
    );
    Ok(())
}

/// One daemon per network namespace: two would each remove the other's
/// macvlans and routes at start as left over from a crash, and restore
/// the ARP sysctls under the other's VIPs. The daemon holds an abstract
/// Unix socket for its life: the kernel scopes abstract names to the
/// network namespace and frees the name when the process ends, however
/// it ends, so there is no file to go stale. A second daemon finds the
/// name taken and says which process holds it.
fn one_per_namespace() -> Result<UnixListener, String> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    let name = SocketAddr::from_abstract_name(INSTANCE_NAME).map_err(|e| e.to_string())?;
    let error = match UnixListener::bind_addr(&name) {
        Ok(listener) => return Ok(listener),
        Err(e) => e,
    };
    if error.kind() != std::io::ErrorKind::AddrInUse {
        return Err(format!("cannot hold this host's l2vip name: {error}"));
    }
    let holder = UnixStream::connect_addr(&name)
        .and_then(|stream| crate::sys::cred::peer(&stream))
        .map(|c| format!(" (pid {}, uid {})", c.pid, c.uid))
        .unwrap_or_default();
    Err(format!(
        "another l2vip runs on this host (in this network namespace){holder}: \
         one daemon serves every interface's services; stop that one first"
    ))
}

/// The abstract socket name `one_per_namespace` holds.
const INSTANCE_NAME: &[u8] = b"l2vip";

/// The catalogue at start: the file's services and those the state file
/// kept from an earlier run.
fn restore(config: &Config) -> Catalogue {
    let mut catalogue = Catalogue::new(config.services.clone());
    let Some(path) = &config.state_file else {
        return catalogue;
    };
    let loaded = crate::state::load(Path::new(path));
    for warning in loaded.warnings {
        warn!("{warning}");
    }
    for warning in catalogue.restore(loaded.services) {
        warn!("{warning}");
    }
    if !catalogue.runtime().is_empty() {
        info!(
            "{} services added at runtime restored from {path}",
            catalogue.runtime().len()
        );
    }
    catalogue
}

/// Runs the daemon in the foreground until SIGTERM or SIGINT; returns the
/// process exit status.
pub fn run(path: &Path, notify: Option<String>) -> u8 {
    crate::sys::memory::one_arena();
    // Block the signals before any thread exists, so all inherit the mask.
    let signals = match SignalFd::new() {
        Ok(signals) => signals,
        Err(e) => {
            error!("cannot set up signal handling: {e}");
            return EXIT_FAILURE;
        }
    };
    let config = match config::load_config(path) {
        Ok(config) => config,
        Err(e) => {
            error!("{e}");
            return EXIT_CONFIG;
        }
    };
    let key = match config::load_key(&config) {
        Ok(key) => key,
        Err(e) => {
            error!("{}: {e}", path.display());
            return EXIT_CONFIG;
        }
    };
    match Supervisor::start(&config, path, key, notify, signals) {
        Ok(supervisor) => {
            // The threads hold what they need of it.
            drop(config);
            supervisor.run()
        }
        Err(e) => {
            error!("cannot start: {e}");
            EXIT_FAILURE
        }
    }
}

struct Supervisor {
    poll: Poll,
    signals: SignalFd,
    ends: Inbox<ThreadEnd>,
    responder: Mailbox<ResponderCommand>,
    election: Mailbox<ElectionCommand>,
    actions: Mailbox<ActionsCommand>,
    link: Mailbox<LinkCommand>,
    control: Mailbox<ControlEvent>,
    handles: Vec<(&'static str, JoinHandle<()>)>,
    /// Held until the process ends: see `one_per_namespace`.
    _instance: UnixListener,
}

impl Supervisor {
    fn start(
        config: &Config,
        path: &Path,
        key: Option<Vec<u8>>,
        notify: Option<String>,
        signals: SignalFd,
    ) -> Result<Supervisor, String> {
        let instance = one_per_namespace()?;
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        poll.registry()
            .register(
                &mut SourceFd(&signals.as_raw_fd()),
                SIGNALS,
                Interest::READABLE,
            )
            .map_err(|e| format!("poll: {e}"))?;
        let (end_mailbox, ends) =
            mailbox::<ThreadEnd>(poll.registry(), THREADS).map_err(|e| format!("poll: {e}"))?;

        let mut interfaces: Vec<String> = config
            .services
            .iter()
            .map(|s| s.interface.to_string())
            .collect();
        interfaces.sort();
        interfaces.dedup();
        let catalogue = restore(config);
        let services = catalogue.all();
        let (responder, responder_mailbox) = ResponderThread::new(
            &interfaces,
            config.announce,
            config.heartbeat.interval() * 2,
        )
        .map_err(|e| e.to_string())?;
        let (mut actions, actions_mailbox) =
            ActionsThread::new(config, notify, responder_mailbox.clone())
                .map_err(|e| e.to_string())?;
        let counter =
            incarnation::counter_path(config.state_file.as_deref(), &config.control.socket);
        let (incarnation, warnings) = incarnation::for_this_start(&counter);
        for warning in warnings {
            warn!("{warning}");
        }
        let (election, election_mailbox) = ElectionThread::new(
            config,
            &services,
            incarnation,
            key,
            responder_mailbox.clone(),
            actions_mailbox.clone(),
        )
        .map_err(|e| e.to_string())?;
        drop(services);
        actions.report_to(election_mailbox.clone());
        let (link, link_mailbox) = LinkThread::new(Listeners {
            election: election_mailbox.clone(),
            responder: responder_mailbox.clone(),
            actions: actions_mailbox.clone(),
        })
        .map_err(|e| format!("netlink link events: {e}"))?;
        let keeper = Keeper::new(
            catalogue,
            config.clone(),
            path,
            election_mailbox.clone(),
            actions_mailbox.clone(),
        );
        // The actions thread starts with the catalogue's services.
        keeper.configure_actions();
        let (control, control_mailbox) = ControlServer::new(
            &config.control,
            keeper,
            election_mailbox.clone(),
            responder_mailbox.clone(),
        )
        .map_err(|e| format!("control socket: {e}"))?;
        // Answers and heartbeats come first: this thread takes `nice` while
        // it may (before root goes), the responder and election threads
        // inherit it, then this thread goes back for the others.
        let base = sched::thread_nice().unwrap_or(0);
        let boosted = config.nice < base && raise_priority(config.nice);
        // Every socket is open: give up root before any thread exists.
        drop_privileges(config.user.as_deref())?;
        let responder_handle = spawn("responder", end_mailbox.clone(), move || responder.run())
            .map_err(|e| format!("cannot start the responder thread: {e}"))?;
        let election_handle = spawn("election", end_mailbox.clone(), move || election.run())
            .map_err(|e| format!("cannot start the election thread: {e}"))?;
        if boosted {
            if let Err(e) = sched::set_thread_nice(base) {
                warn!("cannot return to nice {base} for the other threads: {e}");
            }
        }
        let actions_handle = spawn("actions", end_mailbox.clone(), move || actions.run())
            .map_err(|e| format!("cannot start the actions thread: {e}"))?;
        let link_handle = spawn("link", end_mailbox.clone(), move || link.run())
            .map_err(|e| format!("cannot start the link thread: {e}"))?;
        let control_handle = spawn("control", end_mailbox, move || control.run())
            .map_err(|e| format!("cannot start the control thread: {e}"))?;
        // Stopping goes in this order: the election releases and says goodbye,
        // the actions remove the routes, the responder stops answering, the
        // link thread stops listening.
        let handles = vec![
            ("control", control_handle),
            ("election", election_handle),
            ("actions", actions_handle),
            ("responder", responder_handle),
            ("link", link_handle),
        ];
        info!(
            "node {} (priority {}) started: {} services on {} interfaces",
            config.node,
            config.priority,
            config.services.len(),
            interfaces.len()
        );
        Ok(Supervisor {
            _instance: instance,
            poll,
            signals,
            ends,
            responder: responder_mailbox,
            election: election_mailbox,
            actions: actions_mailbox,
            link: link_mailbox,
            control: control_mailbox,
            handles,
        })
    }

    fn run(mut self) -> u8 {
        let mut events = Events::with_capacity(8);
        // Memory freed by start-up (the parsed file), reloads and control
        // clients goes back to the system soon after, then once a period.
        let mut next_trim = Instant::now() + TRIM_FIRST;
        let status = loop {
            let now = Instant::now();
            if now >= next_trim {
                crate::sys::memory::release_free();
                next_trim = now + TRIM_PERIOD;
            }
            let timeout = next_trim.saturating_duration_since(now);
            if let Err(e) = wait(&mut self.poll, &mut events, Some(timeout)) {
                error!("poll: {e}");
                break EXIT_FAILURE;
            }
            if let Some(end) = self.ends.try_recv() {
                match end.result {
                    Ok(()) => error!("the {} thread stopped unexpectedly", end.name),
                    Err(e) => error!("the {} thread failed: {e}", end.name),
                }
                break EXIT_FAILURE;
            }
            // The signalfd is edge-triggered: read every pending signal.
            let mut stop = false;
            while let Some(signal) = self.next_signal() {
                match signal {
                    Signal::Terminate | Signal::Interrupt => stop = true,
                    Signal::Hangup => {
                        let _ = self.control.send(ControlEvent::Reload);
                    }
                    Signal::User1 => {
                        let _ = self.election.send(ElectionCommand::LogCounters);
                        let _ = self.responder.send(ResponderCommand::LogCounters);
                    }
                }
            }
            if stop {
                break 0;
            }
        };
        self.stop();
        status
    }

    fn next_signal(&self) -> Option<Signal> {
        match self.signals.read() {
            Ok(Some(signal)) => {
                info!("{} received", signal.name());
                Some(signal)
            }
            Ok(None) => None,
            Err(e) => {
                warn!("reading signals: {e}");
                None
            }
        }
    }

    /// Asks every thread to stop, in order, and waits a bounded time.
    fn stop(self) {
        // Order: no new control requests, then the election releases and
        // says goodbye, the actions remove routes, the responder stops
        // answering.
        let _ = self.control.send(ControlEvent::Stop);
        let deadline = Instant::now() + STOP_TIMEOUT;
        for (name, handle) in self.handles {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if name == "control" {
                let _ = self.election.send(ElectionCommand::Leave);
            }
            match name {
                "election" => {
                    let _ = self.actions.send(ActionsCommand::Shutdown);
                }
                "actions" => {
                    let _ = self.responder.send(ResponderCommand::Shutdown);
                }
                "responder" => {
                    let _ = self.link.send(LinkCommand::Shutdown);
                }
                _ => {}
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                warn!("the {name} thread did not stop in time");
            }
        }
        info!("stopped");
    }
}

/// Starts a named thread whose end (return, error or panic) is reported.
fn spawn(
    name: &'static str,
    ends: Mailbox<ThreadEnd>,
    body: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let result = match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("panicked".to_string()),
            };
            let _ = ends.send(ThreadEnd { name, result });
        })
}
