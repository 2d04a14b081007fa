//! Logging to the local syslog daemon (`--syslog`): one RFC 3164 datagram
//! per line to `/dev/log`, facility daemon, where init systems (BusyBox,
//! SysV) drop stderr. OpenWrt's logd and BusyBox syslogd add the time.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;

/// The syslog socket.
pub const PATH: &str = "/dev/log";
/// Facility `daemon` (3), shifted as RFC 3164 wants.
const FACILITY: u8 = 3 << 3;
/// A datagram longer than this is cut (syslogd limits vary; 1 KiB is safe).
const MAX_DATAGRAM: usize = 1024;

/// The `<PRI>` value for a log level.
pub fn priority(level: log::Level) -> u8 {
    FACILITY
        + match level {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        }
}

/// A `Write` that sends each complete line as one datagram.
pub struct Syslog {
    socket: UnixDatagram,
    path: std::path::PathBuf,
    line: Vec<u8>,
}

impl Syslog {
    /// Connects to `/dev/log`.
    pub fn connect() -> io::Result<Syslog> {
        Syslog::connect_to(PATH)
    }

    /// Connects to the syslog socket at `path`.
    pub fn connect_to(path: impl AsRef<std::path::Path>) -> io::Result<Syslog> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path.as_ref())?;
        Ok(Syslog {
            socket,
            path: path.as_ref().to_path_buf(),
            line: Vec::new(),
        })
    }

    fn send_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        line.truncate(MAX_DATAGRAM);
        if self.socket.send(&line).is_err() {
            // syslogd restarted: connect again once; otherwise the line is lost.
            if self.socket.connect(&self.path).is_ok() {
                let _ = self.socket.send(&line);
            }
        }
    }
}

impl Write for Syslog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        for byte in bytes {
            if *byte == b'\n' {
                self.send_line();
            } else {
                self.line.push(*byte);
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            self.send_line();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_daemon_facility() {
        assert_eq!(priority(log::Level::Error), 27);
        assert_eq!(priority(log::Level::Warn), 28);
        assert_eq!(priority(log::Level::Info), 30);
        assert_eq!(priority(log::Level::Debug), 31);
    }

    #[test]
    fn each_line_is_one_datagram() {
        let dir = std::env::temp_dir().join(format!("l2vip-syslog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut log = Syslog::connect_to(&path).unwrap();
        write!(log, "<30>l2vip[1]: first\n<28>l2vip[1]: sec").unwrap();
        log.write_all(b"ond\n").unwrap();
        let long = "x".repeat(2000);
        writeln!(log, "{long}").unwrap();
        let mut buffer = [0u8; 4096];
        let mut next = || {
            let len = server.recv(&mut buffer).unwrap();
            String::from_utf8_lossy(&buffer[..len]).into_owned()
        };
        assert_eq!(next(), "<30>l2vip[1]: first");
        assert_eq!(next(), "<28>l2vip[1]: second");
        assert_eq!(next().len(), MAX_DATAGRAM);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
