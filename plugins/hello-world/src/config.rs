use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of the hello-world plugin.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Answer every request with 200 "hello world" instead of forwarding it.
    #[serde(default)]
    pub mock_enable: bool,
}
