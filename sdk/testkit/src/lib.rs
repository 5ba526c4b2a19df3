//! The test kit for plugins and plugin tools: what their tests run against.
//!
//! - [`Envoy`] runs built `.wasm` modules inside a real Envoy (V8 runtime), configured with
//!   [`EnvoyConfig`], in front of an [`upstream::Upstream`] that records what it receives;
//!   [`client`] talks to it with a blocking HTTP client.
//! - `host` (feature `host`) runs the same modules through the `wasmplug-host` harness, without
//!   a gateway.
//! - [`wasm`] finds (and builds on first use) the module of a workspace plugin crate.
//! - `registry` (feature `registry`) starts a real OCI registry (Debian's `docker-registry`),
//!   with auth and TLS on demand, a token server and a misbehaving proxy.
//! - [`fixtures`] holds small hostile modules in WebAssembly text.
//! - [`certs`] makes a CA and a gateway certificate with `openssl`.
//!
//! ```no_run
//! use wasmplug_testkit::{client, upstream::Upstream, wasm, Envoy, EnvoyConfig, WasmFilter};
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
//! `--use-dynamic-base-id`, so tests can run in parallel. A kit's job is to fail the calling test
//! loudly: helpers panic on setup failures rather than return errors nobody handles.

pub mod certs;
pub mod client;
pub mod config;
pub mod envoy;
pub mod fixtures;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "host")]
pub mod host;
#[cfg(feature = "registry")]
pub mod registry;
pub mod upstream;
pub mod wasm;

pub use config::{Cluster, EnvoyConfig, Route, VirtualHost, WasmFilter};
pub use envoy::Envoy;
