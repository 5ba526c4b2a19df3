//! Delivery to Envoy, with no knowledge of Kubernetes:
//!
//! - [`ModuleServer`]: serves an allowed set of Wasm modules at `/modules/sha256/<hex>.wasm`;
//! - [`XdsServer`]: an ADS (state-of-the-world) gRPC server that gives each gateway node a
//!   listener (LDS) whose HTTP filters are its plugins, each delivered as its own
//!   `TypedExtensionConfig` (ECDS), and reports which nodes ACKed or NACKed which plugin.
//!
//! Both serve over mutual TLS ([`tls`]) or, for local demos, plaintext.
//!
//! The bootstrap that connects a gateway to both is `wasmplug_envoy::bootstrap`.

pub mod ca;
mod listen;
mod modules;
pub mod resources;
mod server;
pub mod tls;

pub use modules::{MODULES_PATH, ModuleServer};
pub use server::{
    DeliveryState, Feedback, NodeInfo, PluginFilter, PluginStatus, Resource, XdsError, XdsOptions, XdsServer,
};
pub use tls::{Peer, ServerTls, TlsMaterial, Transport};
/// What Envoy does when a plugin cannot run (module not fetched, VM failed, plugin crashed).
pub use wasmplug_contract::FailStrategy;
