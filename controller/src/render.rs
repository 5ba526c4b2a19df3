//! Rendering a resolved, validated WasmPlugin for each data plane: Envoy's
//! `envoy.filters.http.wasm` filter (and the ordered filter chain), Higress's WasmPlugin and
//! Istio's WasmPlugin. Pure functions: same input, same bytes.

use std::time::Duration;

use serde_json::{Map, Value, json};
use wasmplug_envoy::{Code, RemoteCode, WasmFilter, filter::module_url};

use crate::config::plugin_config;
use crate::crd::{EnvValueSource, Phase, WasmPlugin, WasmPluginSpec};
use crate::resolve::ResolvedModule;

/// The label every rendered object carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "wasmplug");

/// Where Envoy fetches modules from: the controller's module server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSource {
    /// Base URL; modules are at `{base_url}/sha256/{hex}.wasm`.
    pub base_url: String,
    /// The Envoy cluster that reaches it.
    pub cluster: String,
    /// Fetch timeout.
    pub timeout: Duration,
}

impl ModuleSource {
    /// Where a gateway fetches the module with this sha256 (hex).
    pub fn remote_code(&self, sha256: &str) -> Code {
        Code::Remote(RemoteCode {
            uri: module_url(&self.base_url, sha256),
            cluster: self.cluster.clone(),
            timeout: self.timeout,
            sha256: sha256.to_string(),
        })
    }
}

impl Default for ModuleSource {
    fn default() -> Self {
        ModuleSource {
            base_url: "http://wasmplug-controller.wasmplug-system.svc:8081/modules".into(),
            cluster: wasmplug_envoy::bootstrap::MODULES_CLUSTER.into(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A plugin ready to render: the object (name, namespace, spec) and its module.
#[derive(Debug, Clone, PartialEq)]
pub struct Plugin<'a> {
    pub object: &'a WasmPlugin,
    pub module: &'a ResolvedModule,
}

impl Plugin<'_> {
    fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    fn namespace(&self) -> &str {
        self.object.metadata.namespace.as_deref().unwrap_or("default")
    }

    fn spec(&self) -> &WasmPluginSpec {
        &self.object.spec
    }

    /// `namespace.name`: unique per plugin, used as the filter, plugin and VM name.
    pub fn id(&self) -> String {
        format!("{}.{}", self.namespace(), self.name())
    }

    fn root_id(&self) -> &str {
        let p = &self.spec().plugin_name;
        if p.is_empty() { self.name() } else { p }
    }

    fn phase(&self) -> Phase {
        self.spec().phase.unwrap_or_default()
    }

    fn priority(&self) -> i32 {
        self.spec().priority.unwrap_or(0)
    }

    /// Where the plugin runs in a filter chain: by phase, then the higher priority, then by
    /// `namespace.name` (see [`chain_order`]).
    pub fn chain_key(&self) -> (u8, std::cmp::Reverse<i32>, String) {
        (self.phase().rank(), std::cmp::Reverse(self.priority()), self.id())
    }

    /// The plugin's Envoy filter, its module fetched from `server`: named `namespace.name` (also
    /// its VM), with the root id, the config document, the fail strategy and the VM's
    /// environment. Rendered as JSON ([`envoy_filter`]) and delivered over xDS alike.
    pub fn wasm_filter(&self, server: &ModuleSource) -> WasmFilter {
        let spec = self.spec();
        let mut filter = WasmFilter::new(self.id(), server.remote_code(&self.module.module_sha256))
            .root_id(self.root_id())
            .configuration(self.configuration().to_string())
            .failure_policy(spec.fail_strategy.unwrap_or_default());
        for e in spec.vm_config.as_ref().map(|v| v.env.as_slice()).unwrap_or_default() {
            if e.value_from == Some(EnvValueSource::Host) {
                filter.host_env_keys.push(e.name.clone());
            } else {
                filter.env.insert(e.name.clone(), e.value.clone());
            }
        }
        filter
    }

    /// The configuration document, serialized as Envoy's StringValue carries it.
    pub fn configuration(&self) -> Value {
        plugin_config(self.spec(), self.namespace()).document
    }

    /// The url pinned to what was resolved: `oci://host/repo@sha256:...` for images.
    pub fn pinned_url(&self) -> String {
        let url = &self.spec().url;
        let is_oci = url.starts_with("oci://") || !url.contains("://");
        match (&self.module.image_digest, is_oci) {
            (Some(digest), true) => {
                let body = url.strip_prefix("oci://").unwrap_or(url);
                let body = body.split_once('@').map_or(body, |(b, _)| b);
                // Drop a tag (the last `:` after the last `/`), keep a registry port.
                let slash = body.rfind('/').unwrap_or(0);
                let repo = match body[slash..].find(':') {
                    Some(colon) => &body[..slash + colon],
                    None => body,
                };
                format!("oci://{repo}@{digest}")
            }
            _ => url.clone(),
        }
    }

    /// The `sha256` field Higress and Istio check: the manifest digest for images, else the module's.
    fn pinned_sha256(&self) -> String {
        match &self.module.image_digest {
            Some(d) => d.strip_prefix("sha256:").unwrap_or(d).to_string(),
            None => self.module.module_sha256.clone(),
        }
    }

    fn metadata(&self) -> Value {
        json!({
            "name": self.name(),
            "namespace": self.namespace(),
            "labels": { MANAGED_BY.0: MANAGED_BY.1 },
        })
    }
}

/// One `envoy.filters.http.wasm` HTTP filter entry for the plugin, its module fetched from
/// the controller's module server.
pub fn envoy_filter(plugin: &Plugin<'_>, server: &ModuleSource) -> Value {
    plugin.wasm_filter(server).http_filter(&plugin.id())
}

/// The order plugins run in: AUTHN, AUTHZ, STATS, then unspecified; within a phase the higher
/// priority first; then by `namespace.name`.
pub fn chain_order(plugins: &mut [Plugin<'_>]) {
    plugins.sort_by_cached_key(Plugin::chain_key);
}

/// The HTTP filters for all plugins, in chain order (put before `envoy.filters.http.router`).
pub fn envoy_filter_chain(plugins: &[Plugin<'_>], server: &ModuleSource) -> Vec<Value> {
    let mut ordered = plugins.to_vec();
    chain_order(&mut ordered);
    ordered.iter().map(|p| envoy_filter(p, server)).collect()
}

fn env_list(spec: &WasmPluginSpec) -> Option<Value> {
    let env = &spec.vm_config.as_ref()?.env;
    (!env.is_empty()).then(|| serde_json::to_value(env).unwrap_or(Value::Null))
}

/// Higress's `extensions.higress.io/v1alpha1` WasmPlugin: digest-pinned, carrying the validated
/// config. Higress has no FAIL_RELOAD: it becomes FAIL_CLOSE.
pub fn higress_wasmplugin(plugin: &Plugin<'_>) -> Value {
    let spec = plugin.spec();
    let fail = spec.fail_strategy.unwrap_or_default().higress();
    let mut extra = Map::new();
    if let Some(d) = &spec.default_config {
        extra.insert("defaultConfig".into(), Value::Object(d.clone()));
    }
    if spec.default_config_disable {
        extra.insert("defaultConfigDisable".into(), json!(true));
    }
    if !spec.match_rules.is_empty() {
        extra.insert("matchRules".into(), serde_json::to_value(&spec.match_rules).unwrap_or(Value::Null));
    }
    wasmplugin_object("extensions.higress.io/v1alpha1", plugin, fail, extra)
}

/// Istio's `extensions.istio.io/v1alpha1` WasmPlugin: the rule document goes in `pluginConfig`.
pub fn istio_wasmplugin(plugin: &Plugin<'_>) -> Value {
    let fail = plugin.spec().fail_strategy.unwrap_or_default().istio();
    let mut extra = Map::new();
    extra.insert("pluginConfig".into(), plugin.configuration());
    extra.insert("type".into(), json!("HTTP"));
    if let Some(sel) = plugin.spec().selector.as_ref().filter(|s| !s.match_labels.is_empty()) {
        extra.insert("selector".into(), json!({ "matchLabels": sel.match_labels }));
    }
    wasmplugin_object("extensions.istio.io/v1alpha1", plugin, fail, extra)
}

/// The spec fields Higress's and Istio's WasmPlugin share, plus `extra`, in the object envelope.
fn wasmplugin_object(api_version: &str, plugin: &Plugin<'_>, fail_strategy: &str, extra: Map<String, Value>) -> Value {
    let spec = plugin.spec();
    let mut out = Map::new();
    out.insert("url".into(), json!(plugin.pinned_url()));
    out.insert("sha256".into(), json!(plugin.pinned_sha256()));
    out.insert("pluginName".into(), json!(plugin.root_id()));
    out.insert("phase".into(), json!(plugin.phase().as_str()));
    out.insert("priority".into(), json!(plugin.priority()));
    out.insert("failStrategy".into(), json!(fail_strategy));
    // Pinned to a digest: never re-pulled.
    out.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    if !spec.image_pull_secret.is_empty() {
        out.insert("imagePullSecret".into(), json!(spec.image_pull_secret));
    }
    if let Some(env) = env_list(spec) {
        out.insert("vmConfig".into(), json!({ "env": env }));
    }
    out.extend(extra);
    json!({
        "apiVersion": api_version,
        "kind": "WasmPlugin",
        "metadata": plugin.metadata(),
        "spec": out,
    })
}
