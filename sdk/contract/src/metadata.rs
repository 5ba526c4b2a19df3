//! The metadata document a module carries in its [`crate::PLUGIN_SECTION`] section.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a plugin says about itself. `config_schema` is JSON Schema (2020-12 for modules built
/// with the SDK, OpenAPI v3 for Higress's own images, read from their `spec.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginMetadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// A [`crate::Phase`] spelling; kept as written (Higress's spec.yaml files are free text).
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub priority: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<Value>,
}
