//! Services added at runtime, kept in a state file so they survive a
//! restart. Written atomically: a temporary file in the same directory,
//! fsync, rename over the old one, fsync of the directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::config::{self, Service};

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

fn service_json(service: &Service) -> Value {
    let mut value = json!({
        "name": service.name,
        "ip": service.ip.to_string(),
        "interface": service.interface,
    });
    if !service.nodes.is_empty() {
        value["nodes"] = json!(service.nodes);
    }
    value
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
/// reported and moved aside, never fatal.
pub fn load(path: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    let text = match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return loaded,
        Err(e) => {
            loaded
                .warnings
                .push(format!("state file {}: cannot read: {e}", path.display()));
            return loaded;
        }
        Ok(meta) if meta.len() > MAX_LEN => {
            loaded.warnings.push(move_aside(path, "larger than 4 MiB"));
            return loaded;
        }
        Ok(_) => match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                loaded
                    .warnings
                    .push(move_aside(path, &format!("unreadable: {e}")));
                return loaded;
            }
        },
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
    let directory = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(directory)?;
    let temporary = directory.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("runtime.json")
    ));
    let text = serde_json::to_string_pretty(&json!({
        "services": services.iter().map(service_json).collect::<Vec<_>>()
    }))
    .map_err(io::Error::other)?;
    {
        let mut file = File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(!dir.join(".runtime.json.tmp").exists());
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
