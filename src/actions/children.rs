//! Commands run for hooks and `exec` health checks: `/bin/sh -c` in their
//! own process group, stdout and stderr into the log line by line, killed
//! (the whole group) when they outlive their timeout. Nothing here blocks.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::unix::pipe;

/// Output kept per line; longer lines are cut.
const MAX_LINE: usize = 1024;
/// Output logged per run; the rest is counted, not logged.
const MAX_OUTPUT: usize = 64 * 1024;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It exited (or was killed by a signal).
    Exited(ExitStatus),
    /// It outlived its timeout and its process group was killed.
    TimedOut,
}

impl Outcome {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        matches!(self, Outcome::Exited(status) if status.success())
    }

    /// "exit 0", "exit 3", "killed by signal 9", "timed out".
    pub fn describe(&self) -> String {
        match self {
            Outcome::Exited(status) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit {code}"),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                (None, None) => "ended".into(),
            },
            Outcome::TimedOut => "timed out".into(),
        }
    }
}

/// A running command.
#[derive(Debug)]
pub struct Child {
    process: std::process::Child,
    output: Option<pipe::Receiver>,
    label: String,
    deadline: Instant,
    line: Vec<u8>,
    logged: usize,
    killed: bool,
}

impl Child {
    /// Starts `/bin/sh -c command` with `env` added to the daemon's
    /// environment (less its own `L2VIP_*` variables), stdin from /dev/null and both output streams into one
    /// pipe read by the caller's loop (`output_mut`).
    pub fn spawn(
        command: &str,
        env: &[(&str, String)],
        label: String,
        timeout: Duration,
    ) -> io::Result<Child> {
        let (sender, receiver) = pipe::new()?;
        // The child writes with ordinary blocking writes.
        sender.set_nonblocking(false)?;
        let stdout = OwnedFd::from(sender);
        let stderr = stdout.try_clone()?;
        let mut builder = Command::new("/bin/sh");
        builder
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0);
        // The L2VIP_* variables a child sees are the ones set here, never
        // leftovers from the daemon's own environment.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("L2VIP_") {
                builder.env_remove(key);
            }
        }
        for (key, value) in env {
            builder.env(key, value);
        }
        let process = builder.spawn()?;
        Ok(Child {
            process,
            output: Some(receiver),
            label,
            deadline: Instant::now() + timeout,
            line: Vec::new(),
            logged: 0,
            killed: false,
        })
    }

    /// The pipe to register with the loop (readable when output arrives).
    pub fn output_mut(&mut self) -> Option<&mut pipe::Receiver> {
        self.output.as_mut()
    }

    /// When the child is killed if still running.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// What the log calls this run.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Reads what the child wrote and logs complete lines. Returns true
    /// when the pipe is closed (every writer is gone).
    pub fn read_output(&mut self) -> bool {
        let Some(mut output) = self.output.take() else {
            return true;
        };
        let mut buffer = [0u8; 4096];
        loop {
            match output.read(&mut buffer) {
                Ok(0) => {
                    self.flush_line();
                    return true;
                }
                Ok(len) => {
                    for byte in &buffer[..len] {
                        if *byte == b'\n' {
                            self.flush_line();
                        } else if self.line.len() < MAX_LINE {
                            self.line.push(*byte);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.output = Some(output);
                    return false;
                }
                Err(e) => {
                    warn!("{}: reading its output: {e}", self.label);
                    return true;
                }
            }
        }
    }

    fn flush_line(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.line);
        if self.logged < MAX_OUTPUT {
            self.logged += line.len();
            info!("{}: {}", self.label, String::from_utf8_lossy(&line));
            if self.logged >= MAX_OUTPUT {
                info!(
                    "{}: more output than {MAX_OUTPUT} bytes; the rest is not logged",
                    self.label
                );
            }
        }
    }

    /// Checks, without waiting, whether the child ended; kills its group
    /// once the deadline has passed. `Some` once, when it is over.
    pub fn poll(&mut self, now: Instant) -> Option<Outcome> {
        match self.process.try_wait() {
            Ok(Some(status)) => {
                self.read_output();
                self.flush_line();
                return Some(if self.killed {
                    Outcome::TimedOut
                } else {
                    Outcome::Exited(status)
                });
            }
            Ok(None) => {}
            Err(e) => {
                warn!("{}: cannot wait for it: {e}", self.label);
                return Some(Outcome::TimedOut);
            }
        }
        if now >= self.deadline && !self.killed {
            self.kill();
        }
        None
    }

    /// Kills the child's whole process group.
    pub fn kill(&mut self) {
        self.killed = true;
        if let Err(e) = crate::sys::process::kill_group(self.process.id()) {
            warn!("{}: cannot kill it: {e}", self.label);
            let _ = self.process.kill();
        }
    }
}
