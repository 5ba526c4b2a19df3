use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of the request-block plugin (field names as in Higress's `request-block`).
/// At least one of `block_urls`, `block_exact_urls`, `block_regexp_urls`, `block_headers` and
/// `block_bodies` must be non-empty.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Block a request whose path (query string included) contains one of these strings.
    #[serde(default)]
    pub block_urls: Vec<String>,
    /// Block a request whose path (query string included) equals one of these strings.
    #[serde(default)]
    pub block_exact_urls: Vec<String>,
    /// Block a request whose path (query string included) matches one of these regular
    /// expressions (unanchored; Rust `regex` syntax without Unicode classes).
    #[serde(default)]
    pub block_regexp_urls: Vec<String>,
    /// Block a request when the name or the value of one of its headers (pseudo-headers such as
    /// `:authority` included) contains one of these strings.
    #[serde(default)]
    pub block_headers: Vec<String>,
    /// Block a request whose body contains one of these strings. Only then is the body buffered.
    #[serde(default)]
    pub block_bodies: Vec<String>,
    /// Status code answered to a blocked request (200-599).
    #[serde(default = "default_blocked_code")]
    pub blocked_code: u16,
    /// Body answered to a blocked request (empty by default).
    #[serde(default)]
    pub blocked_message: String,
    /// Whether matching is case-sensitive.
    #[serde(default = "default_true")]
    pub case_sensitive: bool,
}

fn default_blocked_code() -> u16 {
    403
}

fn default_true() -> bool {
    true
}
