//! The configuration file's keys as serde reads them: every key optional
//! where it has a default, unknown keys refused. Values are checked and
//! defaults filled in by `build` (the file) and `service` (one service).

use serde::Deserialize;
use serde_json::Value;

use super::{Bind, ExportWhat, Mode, DEFAULT_STATE_FILE};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) node: Option<String>,
    pub(super) cluster: Option<String>,
    pub(super) priority: Option<u64>,
    pub(super) mode: Option<Mode>,
    pub(super) preempt: Option<bool>,
    #[serde(default)]
    pub(super) heartbeat: RawHeartbeat,
    #[serde(default)]
    pub(super) announce: RawAnnounce,
    #[serde(default)]
    pub(super) control: RawControl,
    /// Absent: the default path; null: no state file.
    #[serde(default = "default_state_file")]
    pub(super) state_file: Option<String>,
    pub(super) bind: Option<Bind>,
    pub(super) mac: Option<String>,
    pub(super) export: Option<Value>,
    pub(super) linger_s: Option<u64>,
    #[serde(default)]
    pub(super) hooks: RawHooks,
    pub(super) user: Option<String>,
    pub(super) nice: Option<i64>,
    /// Read as values, then each as a `RawService` (as `add` and the
    /// state file read them): one deserializer for services, not two.
    #[serde(default)]
    pub(super) services: Vec<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    pub(super) on_acquire: Option<String>,
    pub(super) on_release: Option<String>,
    pub(super) on_primary: Option<String>,
    pub(super) on_backup: Option<String>,
    pub(super) on_fault: Option<String>,
    #[serde(default)]
    pub(super) group: Vec<String>,
    pub(super) timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) tcp: Option<String>,
    pub(super) exec: Option<String>,
    pub(super) interval_ms: Option<u64>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) rise: Option<u32>,
    pub(super) fall: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnnounce {
    pub(super) count: Option<u32>,
    pub(super) interval_ms: Option<u64>,
    pub(super) refresh_s: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeartbeat {
    pub(super) port: Option<u16>,
    pub(super) bind: Option<String>,
    pub(super) interval_ms: Option<u64>,
    pub(super) lease_ms: Option<u64>,
    #[serde(default)]
    pub(super) peers: Vec<String>,
    pub(super) multicast: Option<RawMulticast>,
    pub(super) key_file: Option<String>,
    #[serde(default)]
    pub(super) insecure: bool,
}

fn default_state_file() -> Option<String> {
    Some(DEFAULT_STATE_FILE.to_string())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub(super) socket: Option<String>,
    pub(super) group: Option<String>,
    pub(super) idle_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMulticast {
    pub(super) group: String,
    pub(super) interface: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) name: String,
    pub(super) ip: String,
    pub(super) interface: String,
    #[serde(default)]
    pub(super) nodes: Vec<String>,
    pub(super) bind: Option<Bind>,
    pub(super) mac: Option<String>,
    pub(super) answer: Option<bool>,
    pub(super) export: Option<Value>,
    pub(super) health: Option<RawHealth>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExport {
    pub(super) table: u64,
    pub(super) what: Option<ExportWhat>,
    pub(super) metric: Option<u64>,
}
