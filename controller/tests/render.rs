//! Validation and rendering, pure, against golden files in tests/golden.
//! Re-bless with `BLESS=1 cargo test -p wasmplug-controller --test render`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use wasmplug_controller::WasmPlugin;
use wasmplug_controller::config::{ConfigCheck, check, plugin_config};
use wasmplug_controller::crd::ConfigViolation;
use wasmplug_controller::render::{
    ModuleSource, Plugin, envoy_filter, envoy_filter_chain, higress_wasmplugin, istio_wasmplugin,
};
use wasmplug_controller::resolve::ResolvedModule;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");

fn fixture(name: &str) -> WasmPlugin {
    serde_saphyr::from_str(&std::fs::read_to_string(format!("{DIR}/fixtures/{name}")).unwrap()).unwrap()
}

fn plugin(yaml: &str) -> WasmPlugin {
    serde_saphyr::from_str(yaml).unwrap()
}

/// Compares with tests/golden/<name>, or writes it when BLESS is set.
fn golden(name: &str, value: &Value) {
    let path = format!("{DIR}/golden/{name}");
    let text = if name.ends_with(".yaml") {
        serde_saphyr::to_string(value).unwrap()
    } else {
        serde_json::to_string_pretty(value).unwrap() + "\n"
    };
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path} is missing: run with BLESS=1"));
    // Compared as data: key order depends on serde_json features unified across the build.
    let want: Value = serde_saphyr::from_str(&want).unwrap();
    assert_eq!(value, &want, "{path} differs: check the change, then re-bless with BLESS=1\n{text}");
}

fn module() -> ResolvedModule {
    ResolvedModule { image_digest: Some(format!("sha256:{}", "ab".repeat(32))), module_sha256: "cd".repeat(32) }
}

/// request-block's schema, as its build.rs would embed it (the fields the fixture uses).
fn request_block_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "block_urls": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "block_bodies": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "blocked_code": {"type": "integer", "minimum": 100, "maximum": 599}
        }
    })
}

#[test]
fn higress_plugin_config_document() {
    let wp = fixture("higress-request-block.yaml");
    let config = plugin_config(&wp.spec, "higress-system");
    // The configDisable rule (index 2) is dropped; `_rules_` keeps the others in order.
    assert_eq!(config.rule_origin, [0, 1]);
    assert_eq!(config.document["_rules_"][0]["_match_route_"], json!(["default/foo"]));
    golden("request-block.config.json", &config.document);
}

#[test]
fn default_config_disable_leaves_only_rules_and_bare_ingress_gets_the_namespace() {
    let wp = plugin(
        "apiVersion: wasmplug.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: p, namespace: team-a}\nspec:\n  url: file:///m.wasm\n  defaultConfig: {blocked_code: 403}\n  defaultConfigDisable: true\n  matchRules:\n  - ingress: [api]\n    service: [svc.team-a.svc.cluster.local:80]\n    config: {block_urls: [x]}\n",
    );
    let doc = plugin_config(&wp.spec, "team-a").document;
    assert_eq!(
        doc,
        json!({"_rules_": [{"_match_route_": ["team-a/api"], "_match_service_": ["svc.team-a.svc.cluster.local:80"], "block_urls": ["x"]}]})
    );
    let none = plugin(
        "apiVersion: wasmplug.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: p}\nspec:\n  url: file:///m.wasm\n  defaultConfigDisable: true\n",
    );
    assert_eq!(plugin_config(&none.spec, "x").document, json!({"_rules_": []}), "no rules: the plugin touches nothing");
}

#[test]
fn valid_configs_pass() {
    let wp = fixture("higress-request-block.yaml");
    assert_eq!(check(&wp.spec, "higress-system", Some(&request_block_schema())).unwrap(), ConfigCheck::Valid);
}

#[test]
fn violations_in_default_and_rules_name_the_rule_and_pointer() {
    let mut wp = fixture("higress-request-block.yaml");
    let s = &mut wp.spec;
    s.default_config.as_mut().unwrap().insert("blocked_code".into(), json!(42));
    s.match_rules[1].config.as_mut().unwrap().insert("block_urls".into(), json!(["ok", ""]));
    s.match_rules[1].config.as_mut().unwrap().insert("typo".into(), json!(true));
    // A disabled rule is not rendered, so its config is not checked.
    s.match_rules[2].config = Some(serde_json::from_value(json!({"blocked_code": "bad"})).unwrap());
    let ConfigCheck::Invalid(v) = check(s, "higress-system", Some(&request_block_schema())).unwrap() else {
        panic!("expected violations")
    };
    let at = |p: &str| v.iter().find(|x| x.pointer == p).unwrap_or_else(|| panic!("no {p} in {v:#?}")).clone();
    assert_eq!(at("/defaultConfig/blocked_code").rule_index, None);
    assert_eq!(at("/matchRules/1/config/block_urls/1").rule_index, Some(1));
    assert_eq!(at("/matchRules/1/config").rule_index, Some(1), "additionalProperties: typo");
    assert!(at("/matchRules/1/config").message.contains("typo"), "{v:#?}");
    assert_eq!(v.iter().filter(|x| x.pointer == "/defaultConfig/blocked_code").count(), 1, "inherited once: {v:#?}");
    assert!(!v.iter().any(|x| x.rule_index == Some(2)), "{v:#?}");
    let all: Vec<ConfigViolation> = v.clone();
    golden("request-block.violations.json", &serde_json::to_value(all).unwrap());
}

#[test]
fn no_schema_is_not_a_pass() {
    let wp = fixture("higress-request-block.yaml");
    assert_eq!(check(&wp.spec, "higress-system", None).unwrap(), ConfigCheck::NoSchema);
}

#[test]
fn envoy_filter_config() {
    let wp = fixture("higress-request-block.yaml");
    let m = module();
    let f = envoy_filter(&Plugin { object: &wp, module: &m }, &ModuleSource::default());
    let c = &f["typed_config"]["config"];
    assert_eq!(f["typed_config"]["@type"], "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm");
    assert_eq!(c["failure_policy"], "FAIL_OPEN");
    assert_eq!(c["vm_config"]["code"]["remote"]["sha256"], "cd".repeat(32));
    let configuration: Value = serde_json::from_str(c["configuration"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(configuration, plugin_config(&wp.spec, "higress-system").document);
    golden("request-block.envoy.json", &f);
}

#[test]
fn filter_chain_is_ordered_by_phase_priority_then_name() {
    let yaml = |name: &str, phase: &str, priority: &str| {
        plugin(&format!(
            "apiVersion: wasmplug.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: {name}, namespace: gw}}\nspec:\n  url: file:///{name}.wasm\n{phase}{priority}"
        ))
    };
    let objects = [
        yaml("stats", "  phase: STATS\n", ""),
        yaml("plain", "", "  priority: 900\n"),
        yaml("authz-low", "  phase: AUTHZ\n", "  priority: 10\n"),
        yaml("authz-high", "  phase: AUTHZ\n", "  priority: 500\n"),
        yaml("authn-b", "  phase: AUTHN\n", "  priority: 100\n"),
        yaml("authn-a", "  phase: AUTHN\n", "  priority: 100\n"),
        yaml("fail-reload", "  phase: AUTHN\n", "  priority: 1\n  failStrategy: FAIL_RELOAD\n"),
    ];
    let m = ResolvedModule { image_digest: None, module_sha256: "ef".repeat(32) };
    let plugins: Vec<Plugin<'_>> = objects.iter().map(|o| Plugin { object: o, module: &m }).collect();
    let chain = envoy_filter_chain(&plugins, &ModuleSource::default());
    let names: Vec<&str> = chain.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["gw.authn-a", "gw.authn-b", "gw.fail-reload", "gw.authz-high", "gw.authz-low", "gw.stats", "gw.plain"]
    );
    assert_eq!(chain[2]["typed_config"]["config"]["failure_policy"], "FAIL_RELOAD");
    assert_eq!(chain[6]["typed_config"]["config"]["failure_policy"], "FAIL_CLOSED", "the default");
    golden("chain.envoy.json", &Value::Array(chain));
}

#[test]
fn higress_wasmplugin_is_digest_pinned() {
    let wp = fixture("higress-request-block.yaml");
    let m = module();
    let out = higress_wasmplugin(&Plugin { object: &wp, module: &m });
    assert_eq!(out["apiVersion"], "extensions.higress.io/v1alpha1");
    assert_eq!(
        out["spec"]["url"],
        format!("oci://higress-registry.cn-hangzhou.cr.aliyuncs.com/plugins/request-block@sha256:{}", "ab".repeat(32))
    );
    assert_eq!(out["spec"]["sha256"], "ab".repeat(32));
    golden("request-block.higress.yaml", &out);
}

#[test]
fn pinning_keeps_a_registry_port_and_leaves_files_alone() {
    let m = module();
    let wp = plugin(
        "apiVersion: wasmplug.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: p}\nspec:\n  url: 127.0.0.1:5000/plugins/x:1.0\n",
    );
    assert_eq!(
        Plugin { object: &wp, module: &m }.pinned_url(),
        format!("oci://127.0.0.1:5000/plugins/x@sha256:{}", "ab".repeat(32))
    );
    let file = plugin(
        "apiVersion: wasmplug.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: p}\nspec:\n  url: file:///x.wasm\n",
    );
    let local = ResolvedModule { image_digest: None, module_sha256: "cd".repeat(32) };
    let out = higress_wasmplugin(&Plugin { object: &file, module: &local });
    assert_eq!(
        (out["spec"]["url"].as_str(), out["spec"]["sha256"].as_str()),
        (Some("file:///x.wasm"), Some(&*"cd".repeat(32)))
    );
}

#[test]
fn istio_wasmplugin_carries_the_rule_document() {
    let wp = fixture("higress-request-block.yaml");
    let m = module();
    let out = istio_wasmplugin(&Plugin { object: &wp, module: &m });
    assert_eq!(out["apiVersion"], "extensions.istio.io/v1alpha1");
    assert_eq!(out["spec"]["pluginConfig"], plugin_config(&wp.spec, "higress-system").document);
    assert_eq!((out["spec"]["phase"].as_str(), out["spec"]["priority"].as_i64()), (Some("AUTHZ"), Some(320)));
    golden("request-block.istio.yaml", &out);
}
