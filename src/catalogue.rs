//! The service catalogue: the services of the configuration file and those
//! added at runtime, as the one list the election, the responder and the
//! actions serve.
//!
//! Pure: it decides whether an `add`, a `remove` or a reload's new list is
//! acceptable and what the list becomes. Its owner (the control thread,
//! where `add`, `remove` and `reload` arrive) reads the files, writes the
//! state file first, and only then commits the change here and hands the
//! new list to the other threads.

use std::fmt;

use crate::config::{Service, MAX_SERVICES};

/// Whether two services claim one address: the same IP, and for a
/// link-local one the same interface as well.
fn same_address(a: &Service, b: &Service) -> bool {
    a.ip == b.ip && (!a.link_local() || a.interface == b.interface)
}

/// The configured and runtime services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalogue {
    configured: Vec<Service>,
    runtime: Vec<Service>,
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A service of that name or address exists: (its name, its address).
    Exists(String, String),
    /// The node serves `MAX_SERVICES` already.
    TooMany,
    /// The service is the configuration file's: remove it there.
    Configured(String),
    /// No service of that name.
    NotFound(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Exists(name, ip) => write!(f, "{name} ({ip}) exists already"),
            Refused::TooMany => {
                write!(f, "already {MAX_SERVICES} services, the most a node serves")
            }
            Refused::Configured(name) => write!(
                f,
                "{name} is in the configuration file: remove it there and reload"
            ),
            Refused::NotFound(name) => write!(f, "no service named {name:?}"),
        }
    }
}

/// What a reload did to the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloaded {
    /// The configured services differ from before, or runtime ones gave way.
    pub changed: bool,
    /// Runtime services dropped because the file now has their name or address.
    pub dropped: usize,
}

impl Catalogue {
    /// A catalogue of the file's services only.
    pub fn new(configured: Vec<Service>) -> Catalogue {
        Catalogue {
            configured,
            runtime: Vec::new(),
        }
    }

    /// Takes the services a state file kept, in order; each that clashes
    /// with one already here, or would pass `MAX_SERVICES`, is skipped
    /// with the returned warning.
    pub fn restore(&mut self, restored: Vec<Service>) -> Vec<String> {
        let mut warnings = Vec::new();
        for service in restored {
            match self.check_add(&service) {
                Ok(()) => self.runtime.push(service),
                Err(Refused::TooMany) => warnings.push(format!(
                    "state file: {} ({}) skipped: already {MAX_SERVICES} services",
                    service.name, service.ip
                )),
                Err(_) => warnings.push(format!(
                    "state file: {} ({}) clashes with another service; skipped",
                    service.name, service.ip
                )),
            }
        }
        warnings
    }

    /// Every service: the file's, then the runtime ones.
    pub fn all(&self) -> Vec<Service> {
        self.configured
            .iter()
            .chain(&self.runtime)
            .cloned()
            .collect()
    }

    /// How many services there are.
    pub fn len(&self) -> usize {
        self.configured.len() + self.runtime.len()
    }

    /// The services added at runtime (what the state file holds).
    pub fn runtime(&self) -> &[Service] {
        &self.runtime
    }

    fn check_add(&self, service: &Service) -> Result<(), Refused> {
        let clash = self
            .configured
            .iter()
            .chain(&self.runtime)
            .find(|s| s.name == service.name || same_address(s, service));
        if let Some(other) = clash {
            return Err(Refused::Exists(
                other.name.to_string(),
                other.ip.to_string(),
            ));
        }
        if self.len() >= MAX_SERVICES {
            return Err(Refused::TooMany);
        }
        Ok(())
    }

    /// The runtime list with `service` added, if it may be.
    pub fn with_added(&self, service: Service) -> Result<Vec<Service>, Refused> {
        self.check_add(&service)?;
        let mut runtime = self.runtime.clone();
        runtime.push(service);
        Ok(runtime)
    }

    /// The runtime list without `name`, if it is a runtime service.
    pub fn with_removed(&self, name: &str) -> Result<Vec<Service>, Refused> {
        let Some(index) = self.runtime.iter().position(|s| *s.name == *name) else {
            if self.configured.iter().any(|s| *s.name == *name) {
                return Err(Refused::Configured(name.to_string()));
            }
            return Err(Refused::NotFound(name.to_string()));
        };
        let mut runtime = self.runtime.clone();
        runtime.remove(index);
        Ok(runtime)
    }

    /// Commits a runtime list from `with_added` or `with_removed` (once
    /// the state file holds it).
    pub fn set_runtime(&mut self, runtime: Vec<Service>) {
        self.runtime = runtime;
    }

    /// Takes a reloaded file's services. Runtime services that the file
    /// now defines itself (same name or address) give way to it.
    pub fn reload(&mut self, configured: Vec<Service>) -> Reloaded {
        let before = self.runtime.len();
        self.runtime.retain(|r| {
            !configured
                .iter()
                .any(|s| s.name == r.name || same_address(s, r))
        });
        let dropped = before - self.runtime.len();
        let changed = self.configured != configured || dropped > 0;
        self.configured = configured;
        Reloaded { changed, dropped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::service_from_json;
    use serde_json::json;

    fn service(name: &str, ip: &str) -> Service {
        service_from_json(json!({"name": name, "ip": ip, "interface": "eth0"}))
            .expect("a valid service")
    }

    fn names(services: &[Service]) -> Vec<String> {
        services.iter().map(|s| s.name.to_string()).collect()
    }

    #[test]
    fn the_list_is_the_files_then_the_runtime_ones() {
        let mut catalogue = Catalogue::new(vec![service("web", "192.0.2.200")]);
        let runtime = catalogue
            .with_added(service("db", "192.0.2.210"))
            .expect("added");
        // Nothing changes until the change is committed.
        assert_eq!(names(&catalogue.all()), ["web"]);
        catalogue.set_runtime(runtime);
        assert_eq!(names(&catalogue.all()), ["web", "db"]);
        assert_eq!(names(catalogue.runtime()), ["db"]);
        assert_eq!(catalogue.len(), 2);
    }

    #[test]
    fn add_refuses_a_name_or_address_in_use() {
        let catalogue = Catalogue::new(vec![service("web", "192.0.2.200")]);
        assert_eq!(
            catalogue.with_added(service("web", "192.0.2.201")),
            Err(Refused::Exists("web".into(), "192.0.2.200".into()))
        );
        let refused = catalogue
            .with_added(service("other", "192.0.2.200"))
            .unwrap_err();
        assert_eq!(refused.to_string(), "web (192.0.2.200) exists already");
        // A link-local VIP is one per interface.
        let lan6 = service("lan6", "fe80::1");
        let catalogue = Catalogue::new(vec![lan6]);
        let wan6 = service_from_json(json!({"name": "wan6", "ip": "fe80::1", "interface": "eth1"}))
            .expect("a valid service");
        assert!(catalogue.with_added(wan6).is_ok());
        assert!(catalogue.with_added(service("again", "fe80::1")).is_err());
    }

    #[test]
    fn add_refuses_past_the_most_services() {
        let configured = (0..MAX_SERVICES)
            .map(|i| service(&format!("s{i}"), &format!("2001:db8::{:x}", i + 1)))
            .collect();
        let catalogue = Catalogue::new(configured);
        assert_eq!(
            catalogue.with_added(service("one-more", "192.0.2.200")),
            Err(Refused::TooMany)
        );
    }

    #[test]
    fn remove_takes_runtime_services_only() {
        let mut catalogue = Catalogue::new(vec![service("web", "192.0.2.200")]);
        catalogue.set_runtime(vec![service("db", "192.0.2.210")]);
        assert_eq!(
            catalogue.with_removed("web"),
            Err(Refused::Configured("web".into()))
        );
        assert_eq!(
            catalogue.with_removed("nope"),
            Err(Refused::NotFound("nope".into()))
        );
        let runtime = catalogue.with_removed("db").expect("removed");
        assert!(runtime.is_empty());
    }

    #[test]
    fn restore_skips_clashes_with_a_warning_each() {
        let mut catalogue = Catalogue::new(vec![service("web", "192.0.2.200")]);
        let warnings = catalogue.restore(vec![
            service("db", "192.0.2.210"),
            service("web", "192.0.2.211"),
            service("db2", "192.0.2.210"),
        ]);
        assert_eq!(names(catalogue.runtime()), ["db"]);
        assert_eq!(
            warnings,
            [
                "state file: web (192.0.2.211) clashes with another service; skipped",
                "state file: db2 (192.0.2.210) clashes with another service; skipped",
            ]
        );
    }

    #[test]
    fn reload_drops_runtime_services_the_file_now_defines() {
        let mut catalogue = Catalogue::new(vec![service("web", "192.0.2.200")]);
        catalogue.set_runtime(vec![
            service("db", "192.0.2.210"),
            service("cache", "192.0.2.211"),
        ]);
        let same = catalogue.reload(vec![service("web", "192.0.2.200")]);
        assert_eq!(
            same,
            Reloaded {
                changed: false,
                dropped: 0
            }
        );
        // The file now has "db" by name and another service at cache's address.
        let reloaded = catalogue.reload(vec![
            service("web", "192.0.2.200"),
            service("db", "192.0.2.220"),
            service("mail", "192.0.2.211"),
        ]);
        assert_eq!(
            reloaded,
            Reloaded {
                changed: true,
                dropped: 2
            }
        );
        assert_eq!(names(&catalogue.all()), ["web", "db", "mail"]);
        assert!(catalogue.runtime().is_empty());
    }
}
