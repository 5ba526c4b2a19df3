//! # wasmplug-sdk
//!
//! Write Envoy/Higress proxy-wasm HTTP plugins in Rust: a typed config, handlers per phase,
//! Higress-compatible per-route/domain/service rules, HTTP and Redis callouts, ticks and metrics.
//!
//! ```ignore
//! mod config; // `pub struct Config` deriving serde::Deserialize + schemars::JsonSchema
//! use wasmplug_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct HelloWorld;
//!
//! impl HttpPlugin for HelloWorld {
//!     type Config = config::Config;
//!     fn on_request_headers(&mut self, ctx: &mut HttpContext, config: &Self::Config) -> Action {
//!         if config.mock_enable {
//!             ctx.send_response(200, &[], "hello world");
//!             return Action::Pause;
//!         }
//!         ctx.add_request_header("hello", "world");
//!         Action::Continue
//!     }
//! }
//!
//! wasmplug_sdk::plugin!(HelloWorld);
//! ```
//!
//! The plugin's `build.rs` writes the config's JSON Schema with `wasmplug-sdk-build`, and
//! [`plugin!`] embeds it in the module as the custom section `wasmplug.plugin`, so tools read the
//! schema the parser really uses without running the module.
//!
//! ## What the SDK needs from Envoy's filter config
//! Nothing beyond the defaults of `envoy.filters.http.wasm`. The SDK never relies on pausing the
//! request headers while a body is read (`allow_on_headers_stop_iteration` may stay `false`): it
//! pauses headers only while a callout is pending, and buffers bodies by pausing body callbacks.
//! It behaves the same when the option is `true` (as in Higress's Envoy): a body that arrives
//! while a callout is pending is held and handed to the plugin once the callout has answered.
//!
//! ## Module layers
//! Each module imports only from the layers above it in this list (or from its own layer, in
//! the order listed), so the module graph has no cycle:
//! 1. Data and formats, no host calls: `error`; `resp` (RESP2, the Redis wire format);
//!    `json_path`, `matcher`, then `config` (the typed config and its `_rules_`); `cluster`
//!    (Envoy cluster names of callout targets).
//! 2. Host access: `host` (host calls that log their failures, the route and cluster
//!    properties), `metrics`, `http_response` (a callout's answer, read from the host).
//! 3. Callout state: `pending` (calls not answered yet and their callbacks, generic over the
//!    context that holds them; the sink a stream's Redis replies go to).
//! 4. The request: `context` (`HttpContext`: attributes, storage, body state, header and body
//!    operations, and `Cluster::Route` resolved for the request).
//! 5. What plugins implement and call: `plugin` (`HttpPlugin`, `PluginStart`), `callout`
//!    (`HttpClient`), `redis` (`RedisClient`, with the `redis` feature).
//! 6. `runtime`: the proxy-wasm root and HTTP contexts that drive a plugin, used by [`plugin!`].
//!
//! `no_host` stands in for the host's functions in native builds (unit tests).

mod callout;
mod cluster;
pub mod config;
mod context;
mod error;
mod host;
mod http_response;
mod json_path;
mod matcher;
pub mod metrics;
#[cfg(not(target_family = "wasm"))]
mod no_host;
mod pending;
mod plugin;
#[cfg(feature = "redis")]
pub mod redis;
mod resp;
mod runtime;

pub use callout::{CallBuilder, DEFAULT_TIMEOUT, HttpClient};
pub use cluster::Cluster;
pub use context::{BodyMode, Direction, HttpContext, StreamPhase};
pub use error::{Error, Result};
pub use http_response::HttpResponse;
pub use plugin::{Action, HttpPlugin, PluginStart};
pub use resp::{RedisReply, decode_reply as decode_redis_reply, encode_command as encode_redis_command};

/// Name of the custom section holding the plugin's metadata and config schema.
pub use wasmplug_contract::PLUGIN_SECTION;

/// The usual imports of a plugin.
pub mod prelude {
    pub use crate::metrics::{Counter, Gauge, Histogram};
    pub use crate::{Action, BodyMode, Cluster, HttpClient, HttpContext, HttpPlugin, HttpResponse, PluginStart};
}

#[doc(hidden)]
pub mod __private {
    pub use crate::runtime::start;

    #[cfg(target_os = "wasi")]
    unsafe extern "C" {
        fn __wasm_call_ctors();
    }

    /// Module initialisation, exported as `_initialize`.
    pub fn initialize<P: crate::HttpPlugin>(name: &'static str) {
        #[cfg(target_os = "wasi")]
        // SAFETY: the reactor's constructors run once, before anything else.
        unsafe {
            __wasm_call_ctors();
        }
        start::<P>(name);
    }
}

/// Registers a plugin type as the module's plugin, named after its crate, and embeds the
/// metadata and config schema that the crate's `build.rs` wrote with `wasmplug-sdk-build`.
#[macro_export]
macro_rules! plugin {
    ($plugin:ty) => {
        #[cfg(target_family = "wasm")]
        #[unsafe(no_mangle)]
        pub extern "C" fn _initialize() {
            $crate::__private::initialize::<$plugin>(env!("CARGO_PKG_NAME"));
        }

        #[cfg(target_family = "wasm")]
        // `link_section` and `include_bytes!` take literals: these are
        // `wasmplug_contract::PLUGIN_SECTION` and `wasmplug_contract::METADATA_FILE`.
        #[used]
        #[unsafe(link_section = "wasmplug.plugin")]
        static __WASMPLUG_PLUGIN_SECTION: [u8; include_bytes!(concat!(env!("OUT_DIR"), "/wasmplug-plugin.json"))
            .len()] = *include_bytes!(concat!(env!("OUT_DIR"), "/wasmplug-plugin.json"));
    };
}
