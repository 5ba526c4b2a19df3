//! The controller's test kit, for its tests, benchmarks and demo:
//!
//! - [`TestCluster`]: a real Kubernetes API server (etcd + `apiextensions-apiserver`);
//! - [`gateway`]: the module and xDS servers in-process with real Envoy gateways bootstrapped
//!   to them;
//! - [`system`]: the whole system on one machine (API server, registry, controller, gateways).

mod cluster;
pub mod gateway;
pub mod system;

pub use cluster::*;
