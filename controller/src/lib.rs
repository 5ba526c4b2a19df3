//! The wasmplug controller: the `WasmPlugin` resource, config validation against the plugin's
//! schema, and rendering for Envoy, Higress and Istio.

pub mod config;
pub mod crd;
pub mod error;
pub mod operator;
pub mod pipeline;
pub mod preflight;
pub mod render;
pub mod resolve;
pub mod standalone;
pub mod status;

pub use crd::{WasmPlugin, WasmPluginSpec, WasmPluginStatus};
pub use error::{Error, Result};
