//! ha-metrics-server: a sharded, highly available drop-in replacement for
//! Kubernetes metrics-server. See DESIGN.md in the shared folder for the map.

pub mod auth;
pub mod dev;
pub mod model;
pub mod pki;
pub mod scrape;
pub mod selfmetrics;
pub mod status;
pub mod tls;
