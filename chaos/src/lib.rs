//! The chaos suite of ha-metrics-server: real replica processes on the
//! simulated Kubernetes ([`harness`]), faults with a clean undo
//! ([`faults`], [`netfault`]), an observer that records what clients and
//! kubelets saw ([`observer`], [`record`]), invariants as pure functions
//! over that record ([`invariants`]; [`hpa`] replays the HPA's replica
//! calculation for one of them), the scenario catalogue
//! ([`scenarios`]), the runner ([`runner`]) and the report with its
//! timelines ([`report`], [`plot`]). [`observe`] points the same observer
//! at a real cluster through kube-apiserver, and [`observe_prometheus`]
//! reads the same invariants from the SLIs its Prometheus collects.

pub mod binary;
pub mod faults;
pub mod harness;
pub mod hpa;
pub mod invariants;
pub mod netfault;
pub mod observe;
pub mod observe_prometheus;
pub mod observer;
pub mod peerview;
pub mod plot;
pub mod process;
pub mod progress;
pub mod record;
pub mod report;
pub mod rng;
pub mod runner;
pub mod scenarios;
