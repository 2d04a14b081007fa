//! The election: which node owns each VIP. `policy` decides; `fitness`
//! says whether this node may serve a VIP and how long a handed-over one
//! lingers; `incarnation` orders this process's starts; `thread` moves
//! heartbeats and publishes ownership.

pub(crate) mod fitness;
pub(crate) mod incarnation;
#[cfg(test)]
mod model;
pub mod policy;
#[cfg(test)]
mod simulation;
pub(crate) mod thread;
