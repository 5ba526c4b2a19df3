//! Used from a plugin's `build.rs`: writes `$OUT_DIR/wasmplug-plugin.json`, which the
//! `wasmplug_sdk::plugin!` macro embeds into the module as the `wasmplug.plugin` custom section.
//!
//! ```ignore
//! // build.rs
//! #[allow(dead_code)]
//! mod config {
//!     include!("src/config.rs");
//! }
//! fn main() -> std::io::Result<()> {
//!     wasmplug_sdk_build::PluginInfo::new().phase("AUTHN").priority(320).emit::<config::Config>()
//! }
//! ```
//! Including the very file that defines the config type makes the schema the one the parser uses.

use std::path::PathBuf;

use schemars::JsonSchema;
use wasmplug_contract::{METADATA_FILE, Phase, PluginMetadata};

/// Metadata written next to the schema. Name, version and description come from the crate.
#[derive(Debug, Default, Clone)]
pub struct PluginInfo {
    phase: Option<String>,
    priority: Option<i64>,
    title: Option<String>,
}

impl PluginInfo {
    pub fn new() -> Self {
        Self::default()
    }

    /// The default phase (`AUTHN`, `AUTHZ`, `STATS` or `UNSPECIFIED_PHASE`).
    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = Some(phase.to_string());
        self
    }

    /// The default priority within the phase (higher runs first).
    pub fn priority(mut self, priority: i64) -> Self {
        self.priority = Some(priority);
        self
    }

    /// A human title (defaults to the crate name).
    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.to_string());
        self
    }

    /// The document embedded in the module.
    pub fn document<C: JsonSchema>(&self) -> PluginMetadata {
        let env = |k: &str| std::env::var(k).unwrap_or_default();
        let name = env("CARGO_PKG_NAME");
        PluginMetadata {
            title: self.title.clone().unwrap_or_else(|| name.clone()),
            name,
            version: env("CARGO_PKG_VERSION"),
            description: env("CARGO_PKG_DESCRIPTION"),
            phase: self.phase.clone().unwrap_or_else(|| Phase::Unspecified.as_str().to_string()),
            priority: self.priority.unwrap_or(0),
            category: None,
            config_schema: Some(schemars::schema_for!(C).to_value()),
        }
    }

    /// Writes the document for the build script's crate and tells cargo when to rerun. A
    /// build script returns the error from `main`, which fails the build with its message.
    pub fn emit<C: JsonSchema>(&self) -> std::io::Result<()> {
        println!("cargo:rerun-if-changed=build.rs");
        println!("cargo:rerun-if-changed=src/config.rs");
        let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join(METADATA_FILE);
        let text = serde_json::to_string(&self.document::<C>())?;
        std::fs::write(&out, text)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot write {}: {e}", out.display())))
    }
}
