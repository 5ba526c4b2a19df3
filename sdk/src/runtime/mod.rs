//! The proxy-wasm contexts behind a plugin: configuration, rule selection, body handling,
//! callout completion and ticks.

mod body;
mod callout_done;
#[cfg(feature = "redis")]
mod redis_reply;
mod root;
mod stream;

use std::cell::Cell;

use proxy_wasm::types::LogLevel;

use crate::plugin::HttpPlugin;

thread_local! {
    static PLUGIN_NAME: Cell<&'static str> = const { Cell::new("wasmplug") };
}

/// Entry point used by [`plugin!`](crate::plugin).
pub fn start<P: HttpPlugin>(name: &'static str) {
    PLUGIN_NAME.with(|n| n.set(name));
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(root::new_root::<P>);
}
