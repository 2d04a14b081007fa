//! What ownership means for the host: local and exported routes
//! (`routes`), the VIPs' own MACs (`macvlans`), the ARP sysctls
//! (`sysctl`), hooks (`hooks`) and health checks (`children`, `health`).

pub mod children;
pub mod health;
mod hooks;
pub mod macvlans;
mod roles;
pub mod routes;
pub mod sysctl;
pub mod thread;
