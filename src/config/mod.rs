//! The configuration: a typed model (`model`), read from JSON or UCI
//! (`read`, `uci`) into the file's schema (`schema`), validated with its
//! defaults and ranges (`build`, and `service` for the rules of one
//! service that `add` and the state file share), loaded on this host
//! (`loader`), and compared with the running one on reload (`diff`).
//!
//! Reading is pure: the text comes in, a `Config` or a `ConfigError` that
//! names the key and line comes out. Facts about the running system (the
//! hostname, which interfaces exist) are passed in by the caller.

mod build;
mod diff;
mod error;
mod loader;
mod locate;
mod model;
mod read;
mod schema;
mod service;
pub mod uci;

pub use diff::{diff, Diff};
pub use error::{ConfigError, LoadError};
pub use loader::{hostname, load_config, load_key, MIN_KEY_LEN};
pub use model::*;
pub use read::{load, parse, parse_source, Source};
pub use service::{check_interfaces, check_macs, service_from_json};
