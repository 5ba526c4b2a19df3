use schemars::JsonSchema;
use serde::Deserialize;

/// Where the token service is registered, which decides the Envoy cluster name the callout uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceSource {
    /// A Kubernetes service: `outbound|PORT||NAME.NAMESPACE.svc.cluster.local`.
    K8s,
    /// A Nacos service: `outbound|PORT||NAME.DEFAULT-GROUP.NAMESPACE.nacos`.
    Nacos,
    /// A static-IP service registered in Higress: `outbound|PORT||NAME.static`.
    Ip,
    /// A DNS service registered in Higress: `outbound|PORT||NAME.dns`, with `domain` as `:authority`.
    Dns,
    /// Any service by its fully qualified name: `outbound|PORT||NAME`.
    #[default]
    Fqdn,
}

/// Configuration of the http-call plugin: before each request is forwarded, GET `requestPath`
/// from a token service and copy the `tokenHeader` of its answer onto the request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// How the token service is registered: `k8s`, `nacos`, `ip`, `dns` or `fqdn`.
    #[serde(default)]
    pub service_source: ServiceSource,
    /// Name of the token service (a Kubernetes/Nacos service name, a Higress service name, or an FQDN).
    pub service_name: String,
    /// Port of the token service (1-65535).
    pub service_port: u16,
    /// Kubernetes namespace (`k8s`, default `default`) or Nacos namespace id (`nacos`, default `public`).
    #[serde(default)]
    pub namespace: String,
    /// The `:authority` sent to a `dns` service (required when `serviceSource` is `dns`).
    #[serde(default)]
    pub domain: String,
    /// Path (with an optional query) requested with GET from the token service.
    pub request_path: String,
    /// Header copied from the token service's answer onto the request, replacing any value the client sent.
    pub token_header: String,
    /// Callout timeout in milliseconds (at least 1).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    500
}
