//! The keys of Higress's rule format, as the SDK reads a configuration and as the controller
//! and `wasmplug validate` write and check one:
//!
//! ```json
//! { "global": 1, "_rules_": [ { "_match_route_": ["ns/route"], "global": 2 } ] }
//! ```

/// The list of rules; each rule is the plugin's config plus one matcher key.
pub const RULES: &str = "_rules_";
/// Route names (`namespace/name` of the ingress).
pub const MATCH_ROUTE: &str = "_match_route_";
/// Route name prefixes.
pub const MATCH_ROUTE_PREFIX: &str = "_match_route_prefix_";
/// Domains: exact, `*.suffix` or `prefix.*`.
pub const MATCH_DOMAIN: &str = "_match_domain_";
/// Upstream services (`name.namespace.svc.cluster.local[:port]`).
pub const MATCH_SERVICE: &str = "_match_service_";

/// Every matcher key a rule may carry.
pub const MATCHERS: [&str; 4] = [MATCH_ROUTE, MATCH_DOMAIN, MATCH_SERVICE, MATCH_ROUTE_PREFIX];
