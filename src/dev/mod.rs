//! The simulated Kubernetes: simulated kubelets, a stand-in kube-apiserver
//! and the dev mode that runs them with the server. Used by
//! `ha-metrics-server dev`, the tests and the benchmarks; never by a server
//! in production.

pub mod addr;
pub mod apiserver;
pub mod cluster;
pub mod env;
pub mod kubelet;
