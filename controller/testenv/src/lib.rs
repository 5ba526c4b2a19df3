//! The controller's test kit, for its tests, benchmarks and demo:
//!
//! - [`TestCluster`]: a real Kubernetes API server (etcd + `apiextensions-apiserver`);
//! - [`gateway`]: the module and xDS servers in-process with real Envoy gateways bootstrapped
//!   to them;
//! - [`system`]: the whole system on one machine (API server, registry, controller, gateways);
//! - [`process`]: the controller binary as its own process, to kill and restart.

mod cluster;
pub mod gateway;
pub mod process;
pub mod system;

pub use cluster::*;
