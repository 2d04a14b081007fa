//! What ownership means for the host: local routes, hooks, health checks.

pub mod children;
pub mod health;
pub mod routes;
pub mod thread;
