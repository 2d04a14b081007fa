//! The keeper of the service catalogue, in the control thread: `add`,
//! `remove` and `reload` (and SIGHUP, which the supervisor passes on) read
//! the configuration file and write the state file here, then hand the new
//! service list to the actions thread and the election. The decisions are
//! `crate::catalogue`'s and `config::diff`'s; this is their I/O.

use std::path::{Path, PathBuf};

use log::{info, warn};
use serde_json::{json, Value};

use super::protocol::{Code, Response};
use crate::catalogue::{Catalogue, Refused};
use crate::channel::Mailbox;
use crate::config::{self, Config, Service};
use crate::message::{ActionsCommand, ElectionCommand, Tuning};
use crate::sys::iface;

/// The catalogue with the running configuration and where changes go.
pub struct Keeper {
    catalogue: Catalogue,
    running: Config,
    config_path: PathBuf,
    election: Mailbox<ElectionCommand>,
    actions: Mailbox<ActionsCommand>,
}

fn refused(refusal: Refused) -> Response {
    let code = match refusal {
        Refused::Exists(..) => Code::Exists,
        Refused::TooMany => Code::TooMany,
        Refused::Configured(_) => Code::Configured,
        Refused::NotFound(_) => Code::NotFound,
    };
    Response::error(code, refusal.to_string())
}

impl Keeper {
    /// Takes the catalogue as started (the state file already restored)
    /// and the configuration it came from.
    pub fn new(
        catalogue: Catalogue,
        running: Config,
        config_path: &Path,
        election: Mailbox<ElectionCommand>,
        actions: Mailbox<ActionsCommand>,
    ) -> Keeper {
        Keeper {
            catalogue,
            running,
            config_path: config_path.to_path_buf(),
            election,
            actions,
        }
    }

    /// Writes `runtime` to the state file, if there is one.
    fn save(&self, runtime: &[Service]) -> Result<(), Response> {
        let Some(path) = &self.running.state_file else {
            return Ok(());
        };
        crate::state::save(Path::new(path), runtime).map_err(|e| {
            Response::error(
                Code::StateFile,
                format!("cannot write the state file {path}: {e}"),
            )
        })
    }

    /// Hands the services in force to the actions thread (health checks,
    /// interfaces) and then to the election, so no ownership of a new
    /// service reaches the actions before its configuration.
    fn publish(&self) {
        self.configure_actions();
        let _ = self.election.send(ElectionCommand::SetServices {
            services: self.catalogue.all(),
            defaults: self.running.defaults(),
        });
    }

    /// Tells the actions thread the services, hooks and `bind` in force.
    pub fn configure_actions(&self) {
        let _ = self.actions.send(ActionsCommand::Configure {
            services: self.catalogue.all(),
            hooks: self.running.hooks.clone(),
            bind: self.running.bind,
        });
    }

    /// `add`: a service at runtime, kept in the state file.
    pub fn add(&mut self, value: Value) -> Response {
        let service = match config::service_from_json(value) {
            Ok(service) => service,
            Err(e) => return Response::error(Code::BadRequest, format!("add: {e}")),
        };
        let runtime = match self.catalogue.with_added(service.clone()) {
            Ok(runtime) => runtime,
            Err(refusal) => return refused(refusal),
        };
        let mut all = self.catalogue.all();
        all.push(service.clone());
        if let Err((_, why)) = config::check_macs(&all, self.running.mac, &self.running.cluster) {
            return Response::error(Code::BadRequest, format!("add: mac: {why}"));
        }
        if let Err(e) = iface::lookup(&service.interface) {
            return Response::error(Code::BadInterface, format!("{}: {e}", service.interface));
        }
        if let Err(response) = self.save(&runtime) {
            return response;
        }
        self.catalogue.set_runtime(runtime);
        info!(
            "added {} ({} on {}) at runtime",
            service.name, service.ip, service.interface
        );
        self.publish();
        Response::ok(json!({ "added": service.name }))
    }

    /// `remove`: a service added at runtime.
    pub fn remove(&mut self, name: &str) -> Response {
        let before = self.catalogue.runtime().to_vec();
        let runtime = match self.catalogue.with_removed(name) {
            Ok(runtime) => runtime,
            Err(refusal) => return refused(refusal),
        };
        if let Err(response) = self.save(&runtime) {
            return response;
        }
        self.catalogue.set_runtime(runtime);
        if let Some(removed) = before.iter().find(|s| *s.name == *name) {
            info!("removed {} ({}) at runtime", removed.name, removed.ip);
        }
        self.publish();
        Response::ok(json!({ "removed": name }))
    }

    /// `reload` and SIGHUP: re-reads the configuration and applies what can
    /// change without a restart (services, priority, preempt, the heartbeat
    /// key, bind, linger, hooks); anything else is reported as needing a
    /// restart and keeps its running value.
    pub fn reload(&mut self) -> Response {
        let new = match config::load_config(&self.config_path) {
            Ok(config) => config,
            Err(e) => return Response::error(Code::InvalidConfig, e.to_string()),
        };
        let key = match config::load_key(&new) {
            Ok(key) => key,
            Err(e) => return Response::error(Code::InvalidConfig, e.to_string()),
        };
        let diff = config::diff(&self.running, &new);
        for name in &diff.restart {
            warn!("reload: {name} changed; it takes effect at the next restart");
        }
        let reloaded = self.catalogue.reload(new.services.clone());
        let services_changed = diff.services || reloaded.dropped > 0;
        let _ = self.election.send(ElectionCommand::Tune(Box::new(Tuning {
            priority: new.priority,
            preempt: new.preempt,
            key,
            linger: std::time::Duration::from_secs(new.linger_s),
            group: new.hooks.group.clone(),
        })));
        let running = &mut self.running;
        running.services = new.services;
        running.priority = new.priority;
        running.preempt = new.preempt;
        running.heartbeat.key_file = new.heartbeat.key_file;
        running.bind = new.bind;
        running.export = new.export;
        running.linger_s = new.linger_s;
        running.hooks = new.hooks;
        if reloaded.dropped > 0 {
            if let Err(Response::Error(error)) = self.save(self.catalogue.runtime()) {
                warn!("reload: {}", error.message);
            }
        }
        if services_changed {
            self.publish();
        } else if diff.actions {
            self.configure_actions();
        }
        Response::ok(json!({
            "services": self.catalogue.len(),
            "services_changed": services_changed,
            "restart_needed": diff.restart,
        }))
    }
}
