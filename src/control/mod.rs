//! The control socket: the protocol (shared with the CLI), the server
//! thread with the service catalogue it keeps, and the client.

pub(crate) mod answer;
pub(crate) mod catalogue;
pub mod client;
pub mod protocol;
pub mod render;
pub mod rpcd;
pub(crate) mod server;
