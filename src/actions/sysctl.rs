//! The kernel settings that keep the kernel itself from answering ARP for
//! VIPs it accepts traffic for.
//!
//! With a `local` route in the `local` table the kernel accepts traffic for
//! the VIP without the address being configured on an interface. Linux then
//! also answers ARP for it, on every interface (the weak host model), unless
//! `arp_ignore` is at least 1 (answer only for addresses configured on the
//! receiving interface), and it would use the VIP as the sender address of
//! its own ARP requests unless `arp_announce` is 2 (which would point other
//! hosts' caches at this node during linger). Both are raised on `all`: the
//! kernel uses the larger of `all` and each interface's own value.
//! IPv6 needs nothing: a local route is not an interface address, so the
//! kernel neither answers Neighbor Solicitations for it nor uses it as the
//! source of its own.

use std::collections::BTreeMap;

use log::{info, warn};

/// The values l2vip needs for `net.ipv4.conf.all.<key>`: at least these.
pub const ARP_SETTINGS: [(&str, u8); 2] = [("arp_ignore", 1), ("arp_announce", 2)];

/// The ARP sysctls l2vip raised, with their values before, to put back
/// at exit. The values before are also kept in a record file while they
/// are changed, so a run after a crash puts back the administrator's
/// values, not the ones the crashed run set.
#[derive(Debug, Default)]
pub struct ArpSettings {
    changed: BTreeMap<(String, &'static str), String>,
    record: Option<std::path::PathBuf>,
}

/// The record's lines: `interface key value`.
fn format_record(changed: &BTreeMap<(String, &'static str), String>) -> String {
    changed
        .iter()
        .map(|((interface, key), value)| format!("{interface} {key} {value}\n"))
        .collect()
}

/// Reads a record; lines that name no known key, or a value that is not a
/// small number, are skipped.
fn parse_record(text: &str) -> BTreeMap<(String, &'static str), String> {
    let mut changed = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(interface), Some(key), Some(value), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let known = ARP_SETTINGS.iter().find(|(name, _)| *name == key);
        let sane_interface = !interface.is_empty()
            && interface.len() <= crate::config::MAX_INTERFACE_NAME
            && !interface.contains('/')
            && !matches!(interface, "." | "..");
        if let (Some((key, _)), true, Ok(_)) = (known, sane_interface, value.parse::<u8>()) {
            changed.insert((interface.to_string(), *key), value.to_string());
        }
    }
    changed
}

fn sysctl_path(interface: &str, key: &str) -> String {
    format!("/proc/sys/net/ipv4/conf/{interface}/{key}")
}

impl ArpSettings {
    /// Settings kept in the record file at `record`; values an earlier run
    /// changed and recorded (it crashed) are the ones put back at exit.
    pub fn new(record: Option<std::path::PathBuf>) -> ArpSettings {
        let mut settings = ArpSettings {
            changed: BTreeMap::new(),
            record,
        };
        if let Some(path) = &settings.record {
            if let Ok(text) = crate::files::read_regular(path, 4096) {
                settings.changed = parse_record(&text);
                for ((interface, key), value) in &settings.changed {
                    info!(
                        "net.ipv4.conf.{interface}.{key} was {value} before an earlier run \
                         changed it; it goes back to {value} at exit"
                    );
                }
            }
        }
        settings
    }

    fn save_record(&self) {
        let Some(path) = &self.record else {
            return;
        };
        let written = if self.changed.is_empty() {
            std::fs::remove_file(path).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
        } else {
            crate::files::write_atomically(path, format_record(&self.changed).as_bytes())
        };
        if let Err(e) = written {
            warn!(
                "cannot keep the ARP settings' old values in {}: {e}",
                path.display()
            );
        }
    }

    /// Raises `arp_ignore` and `arp_announce` of `interface` ("all" for
    /// every interface) where they are lower than needed; logs each change.
    pub fn ensure(&mut self, interface: &str) {
        for (key, needed) in ARP_SETTINGS {
            let path = sysctl_path(interface, key);
            let current = match std::fs::read_to_string(&path) {
                Ok(text) => text.trim().to_string(),
                Err(e) => {
                    warn!("{interface}: cannot read {path}: {e}");
                    continue;
                }
            };
            if current.parse::<u8>().is_ok_and(|value| value >= needed) {
                continue;
            }
            match std::fs::write(&path, format!("{needed}\n")) {
                Ok(()) => {
                    info!(
                        "{interface}: set net.ipv4.conf.{interface}.{key} {current} -> {needed} \
                         so the kernel does not answer ARP for VIPs itself"
                    );
                    self.changed
                        .entry((interface.to_string(), key))
                        .or_insert(current);
                    self.save_record();
                }
                Err(e) => warn!(
                    "{interface}: cannot set {path} to {needed}: {e}; the kernel may answer ARP \
                     for VIPs itself"
                ),
            }
        }
    }

    /// Puts back every value `ensure` changed.
    pub fn restore(&mut self) {
        for ((interface, key), value) in std::mem::take(&mut self.changed) {
            let path = sysctl_path(&interface, key);
            if let Err(e) = std::fs::write(&path, format!("{value}\n")) {
                warn!("{interface}: cannot restore {path} to {value}: {e}");
            }
        }
        self.save_record();
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    #[test]
    fn the_record_keeps_the_values_before_and_nothing_else() {
        let mut changed = BTreeMap::new();
        changed.insert(("all".to_string(), "arp_ignore"), "0".to_string());
        changed.insert(("eth0".to_string(), "arp_announce"), "1".to_string());
        let text = format_record(&changed);
        assert_eq!(text, "all arp_ignore 0\neth0 arp_announce 1\n");
        assert_eq!(parse_record(&text), changed);
        // Unknown keys, paths, odd values and extra words are skipped.
        let hostile =
            "all rp_filter 0\n../../x arp_ignore 0\nall arp_ignore 9999\nall arp_ignore 1 2\n";
        assert!(parse_record(hostile).is_empty());
    }
}
