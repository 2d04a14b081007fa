//! Signals as a readable descriptor (signalfd), so the supervisor handles
//! them in its poll loop and no handler runs in signal context.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::syscall;

/// The signals the daemon acts on. Named, never numbered: the numbers
/// differ between architectures (MIPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: stop, handing over.
    Terminate,
    /// SIGINT: as SIGTERM (Ctrl-C in a terminal).
    Interrupt,
    /// SIGHUP: reload the configuration.
    Hangup,
    /// SIGUSR1: log the counters.
    User1,
}

impl Signal {
    const ALL: [Signal; 4] = [
        Signal::Terminate,
        Signal::Interrupt,
        Signal::Hangup,
        Signal::User1,
    ];

    fn number(self) -> libc::c_int {
        match self {
            Signal::Terminate => libc::SIGTERM,
            Signal::Interrupt => libc::SIGINT,
            Signal::Hangup => libc::SIGHUP,
            Signal::User1 => libc::SIGUSR1,
        }
    }

    /// The conventional name, e.g. "SIGTERM".
    pub fn name(self) -> &'static str {
        match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
            Signal::Hangup => "SIGHUP",
            Signal::User1 => "SIGUSR1",
        }
    }
}

/// A signalfd for all of `Signal`'s signals, which it blocks.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

fn mask() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it below.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a live sigset_t.
    syscall!(unsafe { libc::sigemptyset(&mut set) })?;
    for signal in Signal::ALL {
        // SAFETY: `set` is a live, initialised sigset_t.
        syscall!(unsafe { libc::sigaddset(&mut set, signal.number()) })?;
    }
    Ok(set)
}

impl SignalFd {
    /// Blocks the signals in the calling thread (threads spawned later
    /// inherit the mask) and opens a descriptor that reads them. Call it
    /// before starting any thread.
    pub fn new() -> io::Result<SignalFd> {
        // A shell starts background jobs with SIGINT ignored, and an ignored
        // signal never reaches a signalfd: restore the default first (it
        // cannot fire, the signals are blocked right after).
        for signal in Signal::ALL {
            // SAFETY: SIG_DFL is a valid disposition for these signals.
            if unsafe { libc::signal(signal.number(), libc::SIG_DFL) } == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
        }
        let set = mask()?;
        // SAFETY: `set` is a live, initialised sigset_t; the old mask is not wanted.
        let error = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if error != 0 {
            return Err(io::Error::from_raw_os_error(error));
        }
        let flags = libc::SFD_NONBLOCK | libc::SFD_CLOEXEC;
        // SAFETY: `set` is a live, initialised sigset_t.
        let raw = syscall!(unsafe { libc::signalfd(-1, &set, flags) })?;
        // SAFETY: `raw` is a descriptor signalfd() just returned; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(SignalFd { fd })
    }

    /// Reads one pending signal; `None` when none is pending.
    pub fn read(&self) -> io::Result<Option<Signal>> {
        // SAFETY: signalfd_siginfo is plain data; all zeros is a valid value.
        let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
        let size = mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: `info` is live and writable for `size` bytes.
            let result = syscall!(unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            });
            return match result {
                Ok(n) if n as usize == size => {
                    let number = info.ssi_signo as libc::c_int;
                    match Signal::ALL.into_iter().find(|s| s.number() == number) {
                        Some(signal) => Ok(Some(signal)),
                        // Only our signals are in the mask; skip anything else.
                        None => continue,
                    }
                }
                Ok(_) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "short signalfd read",
                )),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(e),
            };
        }
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
