//! The plugin contract: what a wasmplug module, the tools that read it and the controller that
//! ships it agree on. One place for each name and spelling; no behaviour.
//!
//! - [`PLUGIN_SECTION`]: the custom section a module built with the SDK carries, holding a
//!   [`PluginMetadata`] document (written by `wasmplug-sdk-build`, read by `wasmplug-oci`);
//! - [`rules`]: the keys of Higress's rule format (`_rules_`, `_match_route_`, ...);
//! - [`Phase`]: where a plugin runs in the chain, with the chain's order;
//! - [`FailStrategy`]: what happens to requests when a plugin fails, with its spellings in
//!   Envoy's, Higress's and Istio's configuration;
//! - [`build`]: where cargo writes a plugin's module;
//! - [`AbiVersion`]: the proxy-wasm ABI versions a module may declare, and which gateways load them.
//!
//! Only `serde` and `serde_json` are required; feature `schemars` describes the enums for the CRD.

mod abi;
pub mod build;
pub mod dirs;
mod fail;
mod metadata;
mod phase;
pub mod rules;

pub use abi::AbiVersion;
pub use fail::FailStrategy;
pub use metadata::PluginMetadata;
pub use phase::Phase;

/// The custom section holding a module's [`PluginMetadata`] as JSON.
///
/// The SDK's `plugin!` macro spells it as a literal (`link_section` takes no constant); the
/// workspace's embedded-metadata test reads every built module by this name.
pub const PLUGIN_SECTION: &str = "wasmplug.plugin";

/// The file in a plugin's `OUT_DIR` that the build helper writes and `plugin!` embeds (also a
/// literal in the macro, for `include_bytes!`).
pub const METADATA_FILE: &str = "wasmplug-plugin.json";
