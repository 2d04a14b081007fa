//! The election: which node owns each VIP. `policy` decides; `thread`
//! moves heartbeats and publishes ownership.

pub mod policy;
#[cfg(test)]
mod simulation;
pub mod thread;
