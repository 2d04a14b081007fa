//! The CLI's side of the control socket.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{Reply, Request};

/// How long the CLI waits for the daemon.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The longest response line the CLI reads.
const MAX_RESPONSE: u64 = 16 << 20;

/// Why the CLI got no response.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon answers on the socket (exit status 3).
    Unreachable(String),
    /// A daemon took the request but did not answer within `TIMEOUT`: it
    /// runs, busy (exit status 1, not 3: nothing needs starting).
    TimedOut(String),
    /// The daemon answered something that is not a response.
    Protocol(String),
}

/// Sends one request and reads its response, waiting at most `TIMEOUT`.
pub fn request(socket: &Path, request: &Request) -> Result<Reply, ClientError> {
    request_within(socket, request, TIMEOUT)
}

/// `request`, waiting at most `timeout` for each read and write.
fn request_within(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let unreachable = |e: std::io::Error| {
        ClientError::Unreachable(format!(
            "cannot reach the daemon at {}: {e}",
            socket.display()
        ))
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(unreachable)?;
    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
    line.push(b'\n');
    // A daemon with every slot taken answers `busy` and closes before our
    // request is written: what it said is read even when the write fails.
    let written = stream.write_all(&line);
    let mut reader = BufReader::new(stream.take(MAX_RESPONSE));
    let mut answer = String::new();
    let read = reader.read_line(&mut answer);
    if answer.is_empty() {
        written.map_err(unreachable)?;
        if let Err(e) = &read {
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                return Err(ClientError::TimedOut(format!(
                    // Milliseconds, an integer: float formatting would cost
                    // the router binary about 10 KB.
                    "the daemon at {} took the request but did not answer within {} ms",
                    socket.display(),
                    timeout.as_millis()
                )));
            }
        }
        read.map_err(unreachable)?;
        return Err(ClientError::Unreachable(format!(
            "the daemon at {} closed the connection",
            socket.display()
        )));
    }
    Reply::parse(&answer).map_err(|e| ClientError::Protocol(format!("unreadable response: {e}")))
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn a_daemon_that_does_not_answer_in_time_is_not_reported_unreachable() {
        let dir = std::env::temp_dir().join(format!("l2vip-client-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("control.sock");
        // Listening (the kernel accepts into the backlog) but never answering.
        let listener = UnixListener::bind(&socket).unwrap();
        let busy = request_within(&socket, &Request::Status, Duration::from_millis(100));
        assert!(
            matches!(&busy, Err(ClientError::TimedOut(m)) if m.contains("did not answer within 100 ms")),
            "{busy:?}"
        );
        drop(listener);
        let _ = std::fs::remove_file(&socket);
        let gone = request_within(&socket, &Request::Status, Duration::from_millis(100));
        assert!(matches!(gone, Err(ClientError::Unreachable(_))), "{gone:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
