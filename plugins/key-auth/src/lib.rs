mod config;

use wasmplug_sdk::prelude::*;

pub use config::Config;

#[derive(Default)]
pub struct Plugin;

impl HttpPlugin for Plugin {
    type Config = Config;
}

wasmplug_sdk::plugin!(Plugin);
