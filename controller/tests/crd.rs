//! The generated CRD carries the API server's rules, and Higress manifests port unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube::CustomResourceExt;
use serde_json::Value;
use wasmplug_controller::WasmPlugin;
use wasmplug_controller::crd::{EnvValueSource, FailStrategy, Phase, PullPolicy, Target};

fn crd() -> Value {
    serde_json::to_value(WasmPlugin::crd()).unwrap()
}

fn spec_schema() -> Value {
    crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn rules(schema: &Value) -> Vec<String> {
    schema["x-kubernetes-validations"]
        .as_array()
        .map(|a| a.iter().map(|r| r["rule"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn crd_names_scope_and_status_subresource() {
    let crd = crd();
    assert_eq!(crd["metadata"]["name"], "wasmplugins.wasmplug.io");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["kind"], "WasmPlugin");
    let v = &crd["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert!(v["subresources"]["status"].is_object(), "{v}");
}

#[test]
fn crd_carries_cel_rules_and_bounds() {
    let spec = spec_schema();
    let p = &spec["properties"];
    assert!(rules(&p["url"]).iter().any(|r| r.contains("oci|https|http|file")), "{}", p["url"]);
    assert!(rules(&p["sha256"]).iter().any(|r| r.contains("^$|^[a-f0-9]{64}$")), "{}", p["sha256"]);
    let rule = &p["matchRules"]["items"];
    assert!(rules(rule).iter().any(|r| r.contains("size(self.ingress) > 0")), "{rule}");
    assert_eq!(p["matchRules"]["maxItems"], 256);
    assert_eq!(p["vmConfig"]["properties"]["env"]["maxItems"], 256);
    assert_eq!(p["vmConfig"]["properties"]["env"]["items"]["properties"]["value"]["maxLength"], 2048);
    assert_eq!(p["url"]["maxLength"], 2048, "CEL cost estimation needs string bounds");
    assert_eq!(p["defaultConfig"]["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(rule["properties"]["config"]["x-kubernetes-preserve-unknown-fields"], true);
    let phases: Vec<_> = p["phase"]["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(phases, ["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"]);
    let fail: Vec<_> = p["failStrategy"]["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(fail, ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"]);
    assert_eq!(p["targets"]["x-kubernetes-list-type"], "set");
}

#[test]
fn status_conditions_are_a_map_keyed_by_type() {
    let status = &crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    let c = &status["properties"]["conditions"];
    assert_eq!(c["x-kubernetes-list-type"], "map", "{c}");
    assert_eq!(c["x-kubernetes-list-map-keys"], serde_json::json!(["type"]));
    assert!(c["items"]["properties"]["observedGeneration"].is_object());
    for field in ["imageDigest", "moduleSha256", "moduleSize", "schemaSource", "observedGeneration"] {
        assert!(status["properties"][field].is_object(), "{field}: {status}");
    }
    let v = &status["properties"]["configViolations"]["items"]["properties"];
    assert!(v["ruleIndex"].is_object() && v["pointer"].is_object() && v["message"].is_object(), "{v}");
}

#[test]
fn printer_columns() {
    let cols = crd()["spec"]["versions"][0]["additionalPrinterColumns"].clone();
    let names: Vec<_> = cols.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["Phase", "Priority", "Ready", "Digest", "Age"]);
    assert_eq!(cols[2]["jsonPath"], ".status.conditions[?(@.type==\"Ready\")].status");
    assert_eq!(cols[3]["jsonPath"], ".status.imageDigest");
    assert_eq!(cols[4]["type"], "date");
}

#[test]
fn committed_crd_yaml_is_current() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crd.yaml")).unwrap();
    let committed: Value = serde_saphyr::from_str(&committed).unwrap();
    assert_eq!(committed, crd(), "deploy/crd.yaml is stale: run `make generated`");
}

#[test]
fn higress_manifest_ports_by_changing_the_api_version() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/higress-request-block.yaml"))
            .unwrap();
    let wp: WasmPlugin = serde_saphyr::from_str(&text).unwrap();
    let s = &wp.spec;
    assert_eq!(wp.metadata.namespace.as_deref(), Some("higress-system"));
    assert!(s.url.starts_with("oci://higress-registry"));
    assert_eq!(s.sha256.len(), 64);
    assert_eq!(s.image_pull_policy, Some(PullPolicy::IfNotPresent));
    assert_eq!(s.image_pull_secret, "registry-cred");
    assert_eq!((s.phase, s.priority, s.fail_strategy), (Some(Phase::Authz), Some(320), Some(FailStrategy::FailOpen)));
    assert_eq!(s.default_config.as_ref().unwrap()["block_urls"][0], "swagger.html");
    assert_eq!(s.match_rules.len(), 3);
    assert_eq!(s.match_rules[0].ingress, ["default/foo"]);
    assert_eq!(s.match_rules[1].domain, ["*.example.com", "test.com"]);
    assert!(s.match_rules[2].config_disable && s.match_rules[2].config.is_none());
    let env = &s.vm_config.as_ref().unwrap().env;
    assert_eq!((env[1].name.as_str(), env[1].value_from), ("POD_NAME", Some(EnvValueSource::Host)));
    assert_eq!(s.effective_targets(), [Target::Envoy]);
    // The same text with Higress's apiVersion: only the group differs.
    let higress = text.replace("apiVersion: wasmplug.io/v1alpha1", "apiVersion: extensions.higress.io/v1alpha1");
    let raw: Value = serde_saphyr::from_str(&higress).unwrap();
    let spec: wasmplug_controller::WasmPluginSpec = serde_json::from_value(raw["spec"].clone()).unwrap();
    assert_eq!(&spec, s);
}
