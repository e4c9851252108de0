//! ha-metrics-server: a sharded, highly available drop-in replacement for
//! Kubernetes metrics-server. See DESIGN.md in the shared folder for the map.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod health;
pub mod kube_client;
pub mod limit;
pub mod member;
pub mod model;
pub mod ownership;
pub mod peer;
pub mod query;
pub mod replica;
pub mod scrape;
pub mod selfmetrics;
pub mod server;
pub mod serving;
pub mod store;
pub mod token_file;
