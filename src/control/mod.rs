//! The control socket: the protocol (shared with the CLI), the server
//! thread, and the client.

pub mod client;
pub mod protocol;
pub mod render;
pub mod server;
