use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of the custom-response plugin (field names as in Higress's `custom-response`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Status code of the custom response (200-599).
    #[serde(default = "default_status_code")]
    pub status_code: u16,
    /// Headers of the custom response, each written `key=value` (split at the first `=`,
    /// both sides trimmed). Without a `content-type` entry, one is chosen from the body:
    /// `application/json; charset=utf-8` for a JSON object or array, else `text/plain; charset=utf-8`.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Body of the custom response.
    #[serde(default)]
    pub body: String,
    /// Upstream status codes whose responses are replaced by the custom response. When empty,
    /// the plugin answers every request itself without forwarding it.
    #[serde(default)]
    pub enable_on_status: Vec<u16>,
    /// The response headers to send, derived from `headers` and `body` when the config is accepted.
    #[serde(skip)]
    pub resolved_headers: Vec<(String, String)>,
}

fn default_status_code() -> u16 {
    200
}
