//! What wasmplug writes into Envoy's configuration, as JSON (which Envoy reads as YAML):
//!
//! - [`WasmFilter`]: one plugin's `envoy.filters.http.wasm` filter (the xDS server converts the
//!   same description to protobuf);
//! - [`bootstrap::envoy_bootstrap`]: the bootstrap that connects a gateway to the controller's
//!   xDS server (ADS over gRPC) and module server, with the node identity and labels plugins
//!   select on.
//!
//! Pure functions, no I/O: the CLI prints the result, tests and the xDS server use its names.

pub mod bootstrap;
pub mod filter;

pub use filter::{Code, RemoteCode, WasmFilter};
