//! Delivery to Envoy, with no knowledge of Kubernetes:
//!
//! - [`ModuleServer`]: serves an allowed set of Wasm modules at `/modules/sha256/<hex>.wasm`;
//! - [`XdsServer`]: an ADS (state-of-the-world) gRPC server that gives each gateway node a
//!   listener (LDS) whose HTTP filters are its plugins, each delivered as its own
//!   `TypedExtensionConfig` (ECDS), and reports which nodes ACKed or NACKed which plugin;
//! - [`bootstrap::envoy_bootstrap`]: the Envoy bootstrap that connects a gateway to both.
//!
//! Without the default `server` feature only [`bootstrap`] is built.

pub mod bootstrap;

#[cfg(feature = "server")]
mod modules;
#[cfg(feature = "server")]
pub mod resources;
#[cfg(feature = "server")]
mod server;

#[cfg(feature = "server")]
pub use modules::{MODULES_PATH, ModuleServer};
#[cfg(feature = "server")]
pub use server::{
    Delivery, FailurePolicy, Feedback, NodeInfo, PluginFilter, PluginStatus, Resource, WasmFilterConfig, XdsError,
    XdsOptions, XdsServer,
};
