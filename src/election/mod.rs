//! The election: which node owns each VIP. `policy` decides; `fitness`
//! says whether this node may serve a VIP and how long a handed-over one
//! lingers; `thread` moves heartbeats and publishes ownership.

pub mod fitness;
pub mod policy;
#[cfg(test)]
mod simulation;
pub mod thread;
