//! The CLI's side of the control socket.

use std::io::{BufRead, BufReader, Read, Write};
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
    /// The daemon answered something that is not a response.
    Protocol(String),
}

/// Sends one request and reads its response.
pub fn request(socket: &Path, request: &Request) -> Result<Reply, ClientError> {
    let unreachable = |e: std::io::Error| {
        ClientError::Unreachable(format!(
            "cannot reach the daemon at {}: {e}",
            socket.display()
        ))
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(TIMEOUT))
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
        read.map_err(unreachable)?;
        return Err(ClientError::Unreachable(format!(
            "the daemon at {} closed the connection",
            socket.display()
        )));
    }
    Reply::parse(&answer).map_err(|e| ClientError::Protocol(format!("unreadable response: {e}")))
}
