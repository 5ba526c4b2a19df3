//! The `WasmPlugin` custom resource (`wasmplug.io/v1alpha1`): a superset of Higress's
//! `extensions.higress.io/v1alpha1` WasmPlugin, with the same field names where they overlap, so a
//! Higress manifest ports by changing its `apiVersion`.
//!
//! Static rules are enforced by the API server (OpenAPI bounds and CEL `x-kubernetes-validations`);
//! the controller checks what needs the module (the config schema) and reports it in `status`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Phases and fail strategies are the plugin contract's (with their Envoy/Higress/Istio spellings).
pub use wasmplug_contract::{FailStrategy, Phase};

use serde_json::{Map, Value};

/// API group of the resource.
pub const GROUP: &str = "wasmplug.io";

/// Condition types written to `status.conditions`.
pub mod condition {
    /// The spec is well formed and the controller handles it.
    pub const ACCEPTED: &str = "Accepted";
    /// The image (and its pull secret) resolved to a module.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// `defaultConfig` and every rule's config pass the plugin's schema.
    pub const CONFIG_VALID: &str = "ConfigValid";
    /// The rendered configuration is in place for every target.
    pub const READY: &str = "Ready";
    /// Envoy gateways that select the plugin run its current config (set when the controller
    /// serves xDS).
    pub const PROGRAMMED: &str = "Programmed";
}

/// The plugin's desired state.
// clippy reads the repeated `type_ = "string"` in printcolumn(...) as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "wasmplug.io",
    version = "v1alpha1",
    kind = "WasmPlugin",
    plural = "wasmplugins",
    shortname = "wplug",
    namespaced,
    status = "WasmPluginStatus",
    derive = "PartialEq",
    doc = "A Wasm plugin for Envoy, Higress or Istio gateways: image, phase, configs and where they apply.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".spec.phase"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Digest", type_ = "string", json_path = ".status.imageDigest", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginSpec {
    /// Where the module is: `oci://` (the default when there is no scheme), `https://`, `http://`
    /// (registries listed as insecure only) or `file://`.
    #[x_kube(validation = Rule::new(
        "self.matches('^(oci|https|http|file)://[^\\\\s]+$') || (!self.contains('://') && self.matches('^[^\\\\s]+$'))"
    ).message("url must be oci://, https://, http:// or file:// (no scheme means oci://), without spaces"))]
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// For OCI images the image manifest digest (hex, no `sha256:` prefix), as in Higress and
    /// Istio; for http(s) and file URLs the sha256 of the module. Empty: not pinned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new("self.matches('^$|^[a-f0-9]{64}$')")
        .message("sha256 must be 64 lowercase hex digits (no sha256: prefix), or empty"))]
    #[schemars(length(max = 64))]
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// A Secret (docker config JSON) in the plugin's own namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 253))]
    pub image_pull_secret: String,
    /// The plugin's name in the data plane (root id); defaults to the object's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 253))]
    pub plugin_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Higher runs first within a phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// The global config, checked against the plugin's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_object")]
    pub default_config: Option<Map<String, Value>>,
    /// Apply no global config: only requests matching a rule run the plugin.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default_config_disable: bool,
    /// Per ingress/domain/service configs; the first matching rule wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub match_rules: Vec<MatchRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_strategy: Option<FailStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_config: Option<VmConfig>,
    /// Which Envoy gateways get the plugin (Istio's `selector.matchLabels`): a gateway's labels
    /// are its xDS node metadata `LABELS`. Empty: every gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// The data planes to render for (default: envoy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub targets: Vec<Target>,
}

/// One rule: where it applies and the config there (the global config overlaid with it).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new(
    "(has(self.ingress) && size(self.ingress) > 0) || (has(self.domain) && size(self.domain) > 0) || (has(self.service) && size(self.service) > 0)"
).message("a match rule needs at least one of ingress, domain or service"))]
#[serde(rename_all = "camelCase")]
pub struct MatchRule {
    /// Ingress (route) names, `namespace/name` or `name` (the plugin's namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub ingress: Vec<String>,
    /// Host names: exact, `*.example.com` or `example.*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub domain: Vec<String>,
    /// Upstream services: `fqdn` or `fqdn:port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 260)))]
    pub service: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_object")]
    pub config: Option<Map<String, Value>>,
    /// Ignore this rule: it is not rendered, so its matches get the global config (Higress).
    #[serde(default, skip_serializing_if = "is_false")]
    pub config_disable: bool,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    #[serde(rename = "UNSPECIFIED_POLICY")]
    Unspecified,
    IfNotPresent,
    Always,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// An `envoy.filters.http.wasm` filter config and the filter chain.
    Envoy,
    /// An `extensions.higress.io/v1alpha1` WasmPlugin.
    Higress,
    /// An `extensions.istio.io/v1alpha1` WasmPlugin.
    Istio,
}

impl Target {
    /// Its name in `spec.targets`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Envoy => "envoy",
            Target::Higress => "higress",
            Target::Istio => "istio",
        }
    }

    /// Whether its data plane loads a module of this ABI: Higress's Envoy loads every one,
    /// upstream Envoy (Istio's proxy too) not Higress's 0.2.100.
    pub fn loads(self, abi: wasmplug_contract::AbiVersion) -> bool {
        self == Target::Higress || abi.upstream_envoy_loads()
    }
}

/// Labels a gateway must carry (all of them) to get the plugin.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VmConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub env: Vec<EnvVar>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 2048))]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvValueSource>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvValueSource {
    /// `value` as written.
    #[serde(rename = "INLINE")]
    Inline,
    /// The proxy's own environment variable named `name`.
    #[serde(rename = "HOST")]
    Host,
}

/// What the controller found.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The image manifest digest the url resolved to (`sha256:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The module's own digest (`sha256:...`), what Envoy's `vm_config.code.remote.sha256` checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_size: Option<u64>,
    /// Where the config schema came from: `wasmplug.plugin` (module section) or `spec.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_source: Option<String>,
    /// The generation whose rendering is in place. It trails `observedGeneration` while a newer
    /// generation is refused: the last good one keeps serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_generation: Option<i64>,
    /// Every refused config value (the first 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub config_violations: Vec<ConfigViolation>,
    /// What serves for `servingGeneration`, kept so that a restarted controller, with an empty
    /// module cache, serves exactly it while a newer generation is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<ServingRecord>,
}

/// The last good state of one plugin: its spec at that generation and its module, pinned.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServingRecord {
    pub generation: i64,
    /// The image manifest digest (`sha256:...`) for oci:// urls: the image is pulled by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The module's sha256 (hex), checked again when the module is fetched anew.
    pub module_sha256: String,
    /// The spec of that generation, as it was put in place.
    #[schemars(schema_with = "free_object")]
    pub spec: serde_json::Value,
}

/// One config value the plugin's schema refuses.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigViolation {
    /// The match rule (index in `spec.matchRules`); absent for `defaultConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_index: Option<u32>,
    /// JSON pointer into `spec`: `/defaultConfig/...` or `/matchRules/N/config/...`.
    pub pointer: String,
    pub message: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A free-form JSON object, kept as written by the API server.
fn free_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

impl WasmPluginSpec {
    /// The targets to render for: `envoy` when none is listed.
    pub fn effective_targets(&self) -> Vec<Target> {
        if self.targets.is_empty() { vec![Target::Envoy] } else { self.targets.clone() }
    }
}
