use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of the basic-auth plugin (field names as in Higress's `basic-auth`).
///
/// The global config holds `consumers` (and `global_auth`); `_rules_` entries add `allow`
/// for the routes or domains they match.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The callers that may authenticate: each has a unique name and a unique
    /// `user:password` credential. Required (non-empty) when `global_auth` is true or
    /// `allow` is set.
    #[serde(default)]
    pub consumers: Vec<Consumer>,

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

/// A caller of the protected services.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// The consumer's name, unique among consumers; sent upstream as `X-Mse-Consumer`.
    pub name: String,
    /// The consumer's credential, `user:password` (the user may not contain `:`), unique
    /// among consumers.
    pub credential: String,
}
