//! Tests of the API through its router: what each route serves (`router`),
//! the exact bytes of every document against golden files (`golden`), and
//! real kubectl 1.32 against it (`kubectl`). `testkit` is their in-memory
//! cluster and request helper.

mod golden;
mod kubectl;
mod offload;
mod router;
pub(super) mod testkit;
