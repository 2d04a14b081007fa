//! Loading a configuration on this system: the file read and validated,
//! its interfaces and user checked against the running system, the heartbeat
//! key read. The supervisor, `check-config` and reload all load this way.

use std::path::Path;

use super::{check_interfaces, load, Config, ConfigError, LoadError};
use crate::sys::iface;

/// The hostname, which names the node when the config does not.
pub fn hostname() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Reads and validates the configuration at `path`, including that its
/// interfaces and user exist here.
pub fn load_config(path: &Path) -> Result<Config, LoadError> {
    let host = hostname();
    let (config, source) = load(path, host.as_deref())?;
    check_interfaces(&source, &config, |name| {
        if iface::index(name).is_none() {
            return Err(format!("no interface named {name:?} on this system"));
        }
        iface::lookup(name)
            .map(|_| ())
            .map_err(|e| format!("{name:?}: {e}"))
    })
    .map_err(|e| LoadError::new(path, e))?;
    if let Some(user) = &config.user {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        if crate::sys::privilege::find_user(&passwd, user).is_none() {
            return Err(LoadError::new(
                path,
                ConfigError::general(format!("user: no user named {user:?} in /etc/passwd")),
            ));
        }
    }
    if let Some(multicast) = &config.heartbeat.multicast {
        if iface::index(&multicast.interface).is_none() {
            return Err(LoadError::new(
                path,
                ConfigError::general(format!(
                    "heartbeat.multicast.interface: no interface named {:?} on this system",
                    multicast.interface
                )),
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
pub fn load_key(config: &Config) -> Result<Option<Vec<u8>>, ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let Some(path) = &config.heartbeat.key_file else {
        return Ok(None);
    };
    let fail = |why: String| ConfigError::general(format!("heartbeat.key_file: {path}: {why}"));
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
