//! The `envoy.filters.http.wasm` filter of one plugin: one description, rendered here as
//! Envoy's JSON (static configs, `envoy-filters.json`, tests) and converted to protobuf by the
//! xDS server, so names, defaults and spellings are decided once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value, json};
use wasmplug_contract::FailStrategy;

/// `@type` of the Wasm HTTP filter's config.
pub const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// `@type` of the plugin configuration, a string passed to the plugin unchanged.
pub const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";
/// The Wasm runtime the filters ask for.
pub const RUNTIME: &str = "envoy.wasm.runtime.v8";
/// The HTTP filter's extension name.
pub const HTTP_FILTER: &str = "envoy.filters.http.wasm";

/// `{base}/sha256/{hex}.wasm`: where the module server serves a module.
pub fn module_url(base: &str, sha256: &str) -> String {
    format!("{}/sha256/{sha256}.wasm", base.trim_end_matches('/'))
}

/// A module fetched over HTTP through an Envoy cluster, checked against its sha256.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteCode {
    pub uri: String,
    pub cluster: String,
    pub timeout: Duration,
    /// Hex, no `sha256:` prefix.
    pub sha256: String,
}

/// Where the VM's code comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    /// A file on the gateway's disk.
    Local(PathBuf),
    Remote(RemoteCode),
}

impl From<PathBuf> for Code {
    fn from(path: PathBuf) -> Self {
        Code::Local(path)
    }
}

impl From<&std::path::Path> for Code {
    fn from(path: &std::path::Path) -> Self {
        Code::Local(path.to_path_buf())
    }
}

impl From<&PathBuf> for Code {
    fn from(path: &PathBuf) -> Self {
        Code::Local(path.clone())
    }
}

/// One plugin's Wasm filter (`PluginConfig` with its `VmConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WasmFilter {
    /// `PluginConfig.name`.
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub code: Code,
    /// Passed to `proxy_on_configure` as-is; `None`: no configuration at all.
    pub configuration: Option<String>,
    pub failure_policy: FailStrategy,
    /// `environment_variables.key_values`.
    pub env: BTreeMap<String, String>,
    /// `environment_variables.host_env_keys`.
    pub host_env_keys: Vec<String>,
    /// `PluginConfig.allow_on_headers_stop_iteration`; `None` leaves Envoy's default (false).
    pub allow_on_headers_stop_iteration: Option<bool>,
}

impl WasmFilter {
    /// A fail-closed filter without configuration; root id and VM id are `name`.
    pub fn new(name: impl Into<String>, code: impl Into<Code>) -> Self {
        let name = name.into();
        WasmFilter {
            root_id: name.clone(),
            vm_id: name.clone(),
            name,
            code: code.into(),
            configuration: None,
            failure_policy: FailStrategy::default(),
            env: BTreeMap::new(),
            host_env_keys: Vec::new(),
            allow_on_headers_stop_iteration: None,
        }
    }

    /// Sets the plugin configuration (raw text, usually JSON).
    pub fn configuration(mut self, configuration: impl Into<String>) -> Self {
        self.configuration = Some(configuration.into());
        self
    }

    pub fn root_id(mut self, root_id: impl Into<String>) -> Self {
        self.root_id = root_id.into();
        self
    }

    pub fn vm_id(mut self, vm_id: impl Into<String>) -> Self {
        self.vm_id = vm_id.into();
        self
    }

    pub fn failure_policy(mut self, failure_policy: FailStrategy) -> Self {
        self.failure_policy = failure_policy;
        self
    }

    /// `FAIL_OPEN` if true, else `FAIL_CLOSED`.
    pub fn fail_open(self, fail_open: bool) -> Self {
        self.failure_policy(if fail_open { FailStrategy::FailOpen } else { FailStrategy::FailClose })
    }

    pub fn allow_on_headers_stop_iteration(mut self, allow: bool) -> Self {
        self.allow_on_headers_stop_iteration = Some(allow);
        self
    }

    /// The filter's typed config (`@type` Wasm), as Envoy's JSON.
    pub fn typed_config(&self) -> Value {
        let code = match &self.code {
            Code::Local(path) => json!({ "local": { "filename": path.to_string_lossy() } }),
            Code::Remote(r) => json!({ "remote": {
                "http_uri": { "uri": r.uri, "cluster": r.cluster, "timeout": duration(r.timeout) },
                "sha256": r.sha256,
            }}),
        };
        let mut vm_config = json!({ "vm_id": self.vm_id, "runtime": RUNTIME, "code": code });
        let mut vars = Map::new();
        if !self.host_env_keys.is_empty() {
            vars.insert("host_env_keys".into(), json!(self.host_env_keys));
        }
        if !self.env.is_empty() {
            vars.insert("key_values".into(), json!(self.env));
        }
        if !vars.is_empty() {
            vm_config["environment_variables"] = Value::Object(vars);
        }
        let mut config = json!({
            "name": self.name,
            "root_id": self.root_id,
            "vm_config": vm_config,
            "failure_policy": self.failure_policy.envoy(),
        });
        if let Some(configuration) = &self.configuration {
            config["configuration"] = json!({ "@type": STRING_VALUE_TYPE, "value": configuration });
        }
        if let Some(allow) = self.allow_on_headers_stop_iteration {
            config["allow_on_headers_stop_iteration"] = json!(allow);
        }
        json!({ "@type": WASM_TYPE, "config": config })
    }

    /// The HTTP filter entry named `filter_name`, for a listener's `http_filters`.
    pub fn http_filter(&self, filter_name: &str) -> Value {
        json!({ "name": filter_name, "typed_config": self.typed_config() })
    }
}

/// Protobuf Duration text (`30s`, `0.250s`).
fn duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{:.3}s", d.as_secs_f64()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_filter_defaults_and_options() {
        let f = WasmFilter::new("p", PathBuf::from("/m.wasm")).configuration("{ \"a\":1 }").fail_open(true);
        let v = f.http_filter(HTTP_FILTER);
        let c = &v["typed_config"]["config"];
        assert_eq!(v["name"], HTTP_FILTER);
        assert_eq!((c["root_id"].as_str(), c["vm_config"]["vm_id"].as_str()), (Some("p"), Some("p")));
        assert_eq!(c["vm_config"]["code"]["local"]["filename"], "/m.wasm");
        assert_eq!(c["configuration"]["value"], "{ \"a\":1 }", "passed through unchanged");
        assert_eq!(c["failure_policy"], "FAIL_OPEN");
        assert!(c.get("allow_on_headers_stop_iteration").is_none());
        assert!(c["vm_config"].get("environment_variables").is_none());
        let none = WasmFilter::new("p", PathBuf::from("/m.wasm")).typed_config();
        assert!(none["config"].get("configuration").is_none());
        assert_eq!(none["config"]["failure_policy"], "FAIL_CLOSED");
    }

    #[test]
    fn remote_code_and_environment() {
        let code = RemoteCode {
            uri: module_url("http://m:8081/modules/", "ab"),
            cluster: "modules".into(),
            timeout: Duration::from_millis(1500),
            sha256: "ab".into(),
        };
        let mut f = WasmFilter::new("ns.p", Code::Remote(code)).failure_policy(FailStrategy::FailReload);
        f.env.insert("K".into(), "v".into());
        f.host_env_keys.push("HOSTNAME".into());
        let c = &f.typed_config()["config"];
        let remote = &c["vm_config"]["code"]["remote"];
        assert_eq!(remote["http_uri"]["uri"], "http://m:8081/modules/sha256/ab.wasm");
        assert_eq!(remote["http_uri"]["timeout"], "1.500s");
        assert_eq!(remote["sha256"], "ab");
        assert_eq!(
            c["vm_config"]["environment_variables"],
            json!({"host_env_keys": ["HOSTNAME"], "key_values": {"K": "v"}})
        );
        assert_eq!(c["failure_policy"], "FAIL_RELOAD");
    }
}
