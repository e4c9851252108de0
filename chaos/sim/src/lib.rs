//! The simulated Kubernetes: simulated kubelets ([`kubelet`]), a stand-in
//! kube-apiserver with its aggregation proxy ([`apiserver`]), the cluster
//! they are both built from ([`cluster`]), the loopback address plan
//! ([`addr`]), and a whole environment with replica processes of the real
//! binary ([`env`]). Used by `ha-metrics-server dev`, the end-to-end tests,
//! the benchmarks, the raft crate's tests and the chaos tool; never compiled
//! into a production server.
//!
//! Also here, because every one of those users needs them, each written
//! once: [`client`] (requests straight to a replica's port, with or without
//! a client certificate), [`wait`] (waiting for a condition with a
//! deadline, or watching one hold for a window), [`answer`] (reading the
//! metrics API's answers: keys, sample ages, quantities), [`scrapes`]
//! (judging the kubelets' scrape log: exactly-once, first re-scrape),
//! [`leader`] (who leads, from the replicas' views), [`tools`] (the real
//! helm, kubectl, Prometheus, promtool and libfaketime, installed on first
//! use) and [`volume`] (a Secret written as the kubelet mounts it).

pub mod addr;
pub mod answer;
pub mod apiserver;
pub mod client;
pub mod cluster;
pub mod env;
pub mod kubelet;
pub mod leader;
pub mod scrapes;
pub mod tools;
pub mod volume;
pub mod wait;
