//! The configuration: a typed model (`model`), read from JSON or UCI and
//! validated (`json`, `uci`), loaded on this host (`loader`), and compared
//! with the running one on reload (`diff`).
//!
//! Reading is pure: the text comes in, a `Config` or a `ConfigError` that
//! names the key and line comes out. Facts about the running system (the
//! hostname, which interfaces exist) are passed in by the caller.

mod diff;
mod error;
mod json;
mod loader;
mod locate;
mod model;
pub mod uci;

pub use diff::{diff, Diff};
pub use error::{ConfigError, LoadError};
pub use json::{
    check_interfaces, check_macs, load, parse, parse_source, service_from_json, Source,
};
pub use loader::{hostname, load_config, load_key, MIN_KEY_LEN};
pub use model::*;
