use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of the key-auth plugin (field names as in Higress's `key-auth`).
///
/// The global config holds `consumers`, `keys` and where to look (`in_header`/`in_query`);
/// `_rules_` entries add `allow` for the routes or domains they match.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The callers that may authenticate: each has a unique name and a unique API key
    /// (`credential`). Required (non-empty) when `global_auth` is true or `allow` is set.
    #[serde(default)]
    pub consumers: Vec<Consumer>,

    /// Names of the request headers (case-insensitive) and/or URL query parameters
    /// (case-sensitive) that carry the API key, e.g. `["x-api-key", "apikey"]`.
    pub keys: Vec<String>,

    /// Look for the API key in the request headers named in `keys`.
    #[serde(default = "default_true")]
    pub in_header: bool,

    /// Look for the API key in the URL query parameters named in `keys` (values are
    /// percent-decoded). At least one of `in_header` and `in_query` must be true.
    #[serde(default)]
    pub in_query: bool,

    /// Authenticate every request (as Higress). `true`: every request must authenticate.
    /// `false`: only requests matched by a rule that sets `allow` are authenticated; the
    /// others pass untouched. Unset: every request must authenticate when the configuration
    /// has no `_rules_` at all; otherwise as `false`.
    #[serde(default)]
    pub global_auth: Option<bool>,

    /// Names of the consumers allowed on the routes/domains a rule matches (set it in
    /// `_rules_` entries). An authenticated consumer missing from the list gets 403.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
}

fn default_true() -> bool {
    true
}

/// A caller of the protected services.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// The consumer's name, unique among consumers; sent upstream as `X-Mse-Consumer`.
    pub name: String,
    /// The consumer's API key, unique among consumers.
    pub credential: String,
}
