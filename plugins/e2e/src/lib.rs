//! End-to-end test harness for wasmplug plugins.
//!
//! Runs built `.wasm` plugin modules inside a real Envoy (V8 runtime) in front of a
//! recording upstream, and talks to it with a blocking HTTP client:
//!
//! ```no_run
//! use wasmplug_e2e::{client, upstream::Upstream, wasm, Envoy, EnvoyConfig, WasmFilter};
//!
//! let upstream = Upstream::start();
//! let filter = WasmFilter::new("hello", wasm::plugin_module("raw-hello")).configuration("{}");
//! let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter)).unwrap();
//! let resp = client::get(envoy.http_port(), "/").unwrap();
//! assert_eq!(resp.status, 200);
//! assert_eq!(upstream.last_request().unwrap().header("hello"), Some("world"));
//! ```
//!
//! Envoy is found through `ENVOY_BIN`, else `<workspace>/.venv/bin/envoy` (`make tools`).
//! Everything binds to 127.0.0.1 with OS-assigned ports, and Envoy runs with
//! `--use-dynamic-base-id`, so tests can run in parallel.

pub mod client;
pub mod config;
pub mod envoy;
pub mod upstream;
pub mod wasm;

pub use config::{Cluster, EnvoyConfig, Route, VirtualHost, WasmFilter};
pub use envoy::Envoy;
