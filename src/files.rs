//! Files the daemon reads and writes as root, safely: nothing is read
//! through a symbolic link or from a FIFO or device, and a file is
//! replaced atomically (a temporary file in the same directory, fsync,
//! rename over the old one, fsync of the directory), never written through
//! a link. Used for the state file, the start counter and the ARP record.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Why `read_regular` refused a file.
fn not_regular(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

/// Reads a regular file of at most `max_len` bytes as text, without
/// following a symbolic link and without waiting on a FIFO or a device.
pub fn read_regular(path: &Path, max_len: u64) -> io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => not_regular("a symbolic link, not a regular file"),
            _ => e,
        })?;
    if !file.metadata()?.is_file() {
        return Err(not_regular("not a regular file"));
    }
    let mut text = String::new();
    file.take(max_len + 1).read_to_string(&mut text)?;
    if text.len() as u64 > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max_len} bytes"),
        ));
    }
    Ok(text)
}

/// Writes `bytes` to `path` atomically: a new temporary file beside it
/// (a random name, created exclusively, never through a link, mode 0600),
/// synced, renamed over `path`, and the directory synced. The temporary
/// file is removed if anything fails.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let directory = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(directory)?;
    let mut random = [0u8; 8];
    File::open("/dev/urandom")?.read_exact(&mut random)?;
    let temporary = directory.join(format!(
        ".{}.{:016x}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("l2vip"),
        u64::from_ne_bytes(random)
    ));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    File::open(directory)?.sync_all()
}
