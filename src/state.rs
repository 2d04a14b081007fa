//! Services added at runtime, kept in a state file so they survive a
//! restart. Written atomically (`files::write_atomically`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::config::{self, Service};
use crate::files::{read_regular, write_atomically};

/// The largest state file read.
const MAX_LEN: u64 = 4 << 20;

/// What loading found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The services.
    pub services: Vec<Service>,
    /// A problem worth a log line (the file was moved aside, an entry skipped).
    pub warnings: Vec<String>,
}

/// A service as `add` takes it, every field kept (nodes, bind, health),
/// so a restart restores it as it was added.
fn service_json(service: &Service) -> Value {
    serde_json::to_value(service).unwrap_or(Value::Null)
}

/// Moves a corrupt state file aside, so nothing is lost and the next save
/// does not overwrite it.
fn move_aside(path: &Path, why: &str) -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = PathBuf::from(format!("{}.corrupt-{seconds}", path.display()));
    match fs::rename(path, &aside) {
        Ok(()) => format!(
            "state file {}: {why}; moved aside to {}",
            path.display(),
            aside.display()
        ),
        Err(e) => format!(
            "state file {}: {why}; could not move it aside: {e}",
            path.display()
        ),
    }
}

/// Reads the state file; a missing file is an empty one. A corrupt file is
/// reported and moved aside, never fatal; one that is not a regular file
/// (a link, a FIFO) is reported and left alone.
pub fn load(path: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    let text = match read_regular(path, MAX_LEN) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return loaded,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            loaded
                .warnings
                .push(format!("state file {}: {e}; ignored", path.display()));
            return loaded;
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            loaded.warnings.push(move_aside(path, &format!("{e}")));
            return loaded;
        }
        Err(e) => {
            loaded
                .warnings
                .push(format!("state file {}: cannot read: {e}", path.display()));
            return loaded;
        }
    };
    let value: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(e) => {
            loaded
                .warnings
                .push(move_aside(path, &format!("not JSON: {e}")));
            return loaded;
        }
    };
    let Some(entries) = value.get("services").and_then(Value::as_array) else {
        loaded
            .warnings
            .push(move_aside(path, "no \"services\" list"));
        return loaded;
    };
    for (index, entry) in entries.iter().enumerate() {
        match config::service_from_json(entry.clone()) {
            Ok(service) => loaded.services.push(service),
            Err(e) => loaded.warnings.push(format!(
                "state file {}: services[{index}] skipped: {e}",
                path.display()
            )),
        }
    }
    loaded
}

/// Writes the services atomically.
pub fn save(path: &Path, services: &[Service]) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(&json!({
        "services": services.iter().map(service_json).collect::<Vec<_>>()
    }))
    .map_err(io::Error::other)?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("l2vip-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn round_trip_and_missing() {
        let dir = dir("round");
        let path = dir.join("runtime.json");
        assert!(load(&path).services.is_empty() && load(&path).warnings.is_empty());
        let service = config::service_from_json(
            json!({"name": "db", "ip": "2001:db8::300", "interface": "eth0", "nodes": ["n1"]}),
        )
        .unwrap();
        save(&path, std::slice::from_ref(&service)).unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.services, vec![service]);
        assert!(loaded.warnings.is_empty());
        // Only the state file is left: no temporary file.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn every_field_of_an_added_service_survives() {
        let dir = dir("fields");
        let path = dir.join("runtime.json");
        let service = config::service_from_json(json!({
            "name": "web", "ip": "192.0.2.210", "interface": "eth0", "nodes": ["n1", "n2"],
            "bind": "none",
            "health": {"tcp": "127.0.0.1:8080", "interval_ms": 700, "timeout_ms": 300,
                       "rise": 3, "fall": 4}
        }))
        .unwrap();
        let exec = config::service_from_json(json!({
            "name": "db", "ip": "2001:db8::210", "interface": "eth0",
            "health": {"exec": "test -e /run/db.ok"}
        }))
        .unwrap();
        let services = vec![service, exec];
        save(&path, &services).unwrap();
        let loaded = load(&path);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.services, services);
    }

    #[test]
    fn links_and_fifos_are_never_read_or_written_through() {
        let dir = dir("links");
        let target = dir.join("elsewhere");
        fs::write(&target, "precious").unwrap();
        let path = dir.join("runtime.json");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let loaded = load(&path);
        assert!(loaded.services.is_empty());
        assert!(
            loaded.warnings[0].contains("symbolic link"),
            "{:?}",
            loaded.warnings
        );
        // Saving replaces the link itself, never writes through it.
        save(&path, &[]).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        assert!(fs::symlink_metadata(&path).unwrap().is_file());

        // A FIFO does not block the start: it is reported and left alone.
        let fifo = dir.join("fifo.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.map(|s| s.success()).unwrap_or(false) {
            let loaded = load(&fifo);
            assert!(
                loaded.warnings[0].contains("not a regular file"),
                "{:?}",
                loaded.warnings
            );
            assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        }
    }

    #[test]
    fn corrupt_files_are_moved_aside() {
        let dir = dir("corrupt");
        let path = dir.join("runtime.json");
        fs::write(&path, "{ not json").unwrap();
        let loaded = load(&path);
        assert!(loaded.services.is_empty());
        assert!(
            loaded.warnings[0].contains("moved aside"),
            "{:?}",
            loaded.warnings
        );
        assert!(!path.exists());
        let aside: Vec<_> = fs::read_dir(&dir).unwrap().filter_map(Result::ok).collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(fs::read_to_string(aside[0].path()).unwrap(), "{ not json");

        fs::write(&path, r#"{"services": [{"name": "ok", "ip": "192.0.2.9", "interface": "eth0"}, {"name": "bad", "ip": "nope", "interface": "eth0"}]}"#).unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.services.len(), 1);
        assert!(
            loaded.warnings[0].contains("services[1] skipped"),
            "{:?}",
            loaded.warnings
        );
    }
}
