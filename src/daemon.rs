//! The supervisor: loads the configuration, starts the threads in order,
//! turns signals into messages and stops everything cleanly.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::os::fd::AsRawFd;

use crate::actions::thread::{ActionsThread, Command as ActionsCommand};
use crate::channel::{mailbox, Mailbox};
use crate::config::{self, Config};
use crate::control::server::{ControlServer, Event as ControlEvent};
use crate::election::thread::{Command as ElectionCommand, ElectionThread};
use crate::link::{Command as LinkCommand, LinkThread, Listeners};
use crate::responder::thread::{Command, ResponderThread};
use crate::sys::iface;
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

/// The hostname, which names the node when the config does not.
pub fn hostname() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Reads and validates the configuration at `path`, including that its
/// interfaces exist here. The error is one line naming file, line and key.
pub fn load_config(path: &Path) -> Result<Config, String> {
    let host = hostname();
    let (config, source) = config::load(path, host.as_deref())?;
    config::check_interfaces(&source, &config, |name| {
        if iface::index(name).is_none() {
            return Err(format!("no interface named {name:?} on this system"));
        }
        iface::lookup(name)
            .map(|_| ())
            .map_err(|e| format!("{name:?}: {e}"))
    })
    .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(user) = &config.user {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        if crate::sys::privilege::find_user(&passwd, user).is_none() {
            return Err(format!(
                "{}: user: no user named {user:?} in /etc/passwd",
                path.display()
            ));
        }
    }
    if let Some(multicast) = &config.heartbeat.multicast {
        if iface::index(&multicast.interface).is_none() {
            return Err(format!(
                "{}: heartbeat.multicast.interface: no interface named {:?} on this system",
                path.display(),
                multicast.interface
            ));
        }
    }
    Ok(config)
}

/// Shortest key accepted for HMAC-SHA256 heartbeats.
pub const MIN_KEY_LEN: usize = 16;

/// Reads the heartbeat key: the file must be readable by its owner only
/// (mode 0600 or stricter) and hold at least `MIN_KEY_LEN` bytes; trailing
/// white space (a newline from `echo`) is not part of the key.
pub fn load_key(config: &Config) -> Result<Option<Vec<u8>>, String> {
    use std::os::unix::fs::MetadataExt;
    let Some(path) = &config.heartbeat.key_file else {
        return Ok(None);
    };
    let fail = |why: String| format!("heartbeat.key_file: {path}: {why}");
    let metadata = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !metadata.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "mode {mode:04o} lets others read the key; chmod 600 {path}"
        )));
    }
    if metadata.len() > 4096 {
        return Err(fail("larger than 4096 bytes".into()));
    }
    let mut key = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    while key.last().is_some_and(|b| b.is_ascii_whitespace()) {
        key.pop();
    }
    if key.len() < MIN_KEY_LEN {
        return Err(fail(format!(
            "{} bytes; a key needs at least {MIN_KEY_LEN}",
            key.len()
        )));
    }
    Ok(Some(key))
}

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

/// Switches to `name`, keeping CAP_NET_RAW and CAP_NET_ADMIN only.
fn drop_privileges(name: &str) -> Result<(), String> {
    use crate::sys::privilege::{self, CAP_NET_ADMIN, CAP_NET_RAW};
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("user {name}: cannot read /etc/passwd: {e}"))?;
    let user = privilege::find_user(&passwd, name)
        .ok_or_else(|| format!("user {name}: no such user in /etc/passwd"))?;
    privilege::drop_to(&user, &[CAP_NET_RAW, CAP_NET_ADMIN])
        .map_err(|e| format!("user {name}: cannot switch to it: {e}"))?;
    info!(
        "running as {name} (uid {}, gid {}) with CAP_NET_RAW and CAP_NET_ADMIN only",
        user.uid, user.gid
    );
    Ok(())
}

/// A thread's end, reported to the supervisor.
#[derive(Debug)]
struct ThreadEnd {
    name: &'static str,
    result: Result<(), String>,
}

/// Runs the daemon in the foreground until SIGTERM or SIGINT; returns the
/// process exit status.
pub fn run(path: &Path) -> u8 {
    crate::sys::memory::one_arena();
    // Block the signals before any thread exists, so all inherit the mask.
    let signals = match SignalFd::new() {
        Ok(signals) => signals,
        Err(e) => {
            error!("cannot set up signal handling: {e}");
            return EXIT_FAILURE;
        }
    };
    let config = match load_config(path) {
        Ok(config) => config,
        Err(e) => {
            error!("{e}");
            return EXIT_CONFIG;
        }
    };
    let key = match load_key(&config) {
        Ok(key) => key,
        Err(e) => {
            error!("{}: {e}", path.display());
            return EXIT_CONFIG;
        }
    };
    match Supervisor::start(&config, path, key, signals) {
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
    ends: crossbeam_channel::Receiver<ThreadEnd>,
    responder: Mailbox<Command>,
    election: Mailbox<ElectionCommand>,
    actions: Mailbox<ActionsCommand>,
    link: Mailbox<LinkCommand>,
    control: Mailbox<ControlEvent>,
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl Supervisor {
    fn start(
        config: &Config,
        path: &Path,
        key: Option<Vec<u8>>,
        signals: SignalFd,
    ) -> Result<Supervisor, String> {
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
        let (responder, responder_mailbox) =
            ResponderThread::new(&interfaces, config.announce).map_err(|e| e.to_string())?;
        let (mut actions, actions_mailbox) =
            ActionsThread::new(config, responder_mailbox.clone()).map_err(|e| e.to_string())?;
        let (election, election_mailbox) = ElectionThread::new(
            config,
            path,
            key,
            responder_mailbox.clone(),
            actions_mailbox.clone(),
        )
        .map_err(|e| e.to_string())?;
        actions.report_to(election_mailbox.clone());
        let (link, link_mailbox) = LinkThread::new(Listeners {
            election: election_mailbox.clone(),
            responder: responder_mailbox.clone(),
            actions: actions_mailbox.clone(),
        })
        .map_err(|e| format!("netlink link events: {e}"))?;
        let (control, control_mailbox) = ControlServer::new(
            &config.control,
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
        if let Some(user) = &config.user {
            drop_privileges(user)?;
        }
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
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                error!("poll: {e}");
                break EXIT_FAILURE;
            }
            if let Ok(end) = self.ends.try_recv() {
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
                        let _ = self.election.send(ElectionCommand::Reload);
                    }
                    Signal::User1 => {
                        let _ = self.election.send(ElectionCommand::LogCounters);
                        let _ = self.responder.send(Command::LogCounters);
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
                    let _ = self.responder.send(Command::Shutdown);
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
