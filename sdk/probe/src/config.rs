use schemars::JsonSchema;
use serde::Deserialize;

/// Switches for the SDK features under test.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Refuse request bodies larger than this many bytes (buffered mode).
    pub request_body_limit: Option<usize>,
    /// Upper-case the buffered request body before it goes upstream.
    #[serde(default)]
    pub uppercase_request_body: bool,
    /// Upper-case each response body chunk as it streams.
    #[serde(default)]
    pub uppercase_response: bool,
    /// Answer requests whose path starts with this prefix with 401 from the plugin.
    pub deny_prefix: Option<String>,
    /// Panic in the request headers handler for paths starting with this prefix.
    pub panic_prefix: Option<String>,
}
