//! The `wasmplug` binary end to end: build a real plugin, push it to a real registry, inspect,
//! validate and pull it back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, wasmplug};
use std::path::Path;

use wasmplug_testkit::registry::{Options, TestRegistry};

#[test]
fn build_push_inspect_validate_pull() {
    let r = TestRegistry::start(Options::default());
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out_dir = tmp.path().join("image");
    let built: serde_json::Value = serde_json::from_str(&ok(&wasmplug(&[
        "build",
        root.join("plugins/request-block").to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--output",
        "json",
    ])))
    .unwrap();
    assert_eq!(built["name"], "request-block");
    assert_eq!(built["hasSchema"], true, "{built}");
    for f in ["plugin.wasm", "spec.yaml", "README.md"] {
        assert!(out_dir.join(f).exists(), "{f}");
    }
    let spec = std::fs::read_to_string(out_dir.join("spec.yaml")).unwrap();
    assert!(spec.contains("apiVersion: 1.0.0") && spec.contains("openAPIV3Schema:"), "{spec}");

    let reference = format!("oci://{}/plugins/request-block:1.0.0", r.host);
    // No plain HTTP unless asked for.
    let refused = wasmplug(&["push", out_dir.to_str().unwrap(), &reference]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--plain-http"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let pushed: serde_json::Value = serde_json::from_str(&ok(&wasmplug(&[
        "push",
        out_dir.to_str().unwrap(),
        &reference,
        "--plain-http",
        "--output",
        "json",
    ])))
    .unwrap();
    let digest = pushed["manifestDigest"].as_str().unwrap().to_string();

    let inspected: serde_json::Value =
        serde_json::from_str(&ok(&wasmplug(&["inspect", &reference, "--plain-http", "--output", "json"]))).unwrap();
    assert_eq!(inspected["format"], "higress");
    assert_eq!(inspected["manifestDigest"], digest.as_str());
    assert_eq!(inspected["metadata"]["name"], "request-block");
    assert_eq!(inspected["layers"].as_array().unwrap().len(), 3);
    assert_eq!(inspected["abiVersion"], "0.2.1");
    let text = ok(&wasmplug(&["inspect", &reference, "--plain-http"]));
    assert!(text.contains("format:          higress") && text.contains("plugin.tar.gz"), "{text}");
    assert!(text.contains("proxy-wasm ABI:  0.2.1 (loads in Envoy and Higress)"), "{text}");

    let good = tmp.path().join("good.yaml");
    std::fs::write(&good, "block_urls: [swagger.html]\n_rules_:\n  - _match_route_: [r1]\n    blocked_code: 404\n")
        .unwrap();
    assert!(
        ok(&wasmplug(&["validate", "--config", good.to_str().unwrap(), &reference, "--plain-http"])).contains("valid")
    );
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"block_urls": ["a"], "nope": 1, "_rules_": [{"_match_route_": ["r"], "block_urls": [1]}, {"_match_domain_": ["x"], "blocked_code": "x"}]}"#,
    )
    .unwrap();
    let out =
        wasmplug(&["validate", "--config", bad.to_str().unwrap(), &reference, "--plain-http", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pointers: Vec<&str> =
        report["violations"].as_array().unwrap().iter().map(|v| v["pointer"].as_str().unwrap()).collect();
    for want in ["", "/_rules_/0/block_urls/0", "/_rules_/1/blocked_code"] {
        assert!(pointers.contains(&want), "{want} in {pointers:?}");
    }
    // Validating against a local module works too.
    let out = wasmplug(&["validate", "--config", bad.to_str().unwrap(), out_dir.join("plugin.wasm").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));

    let pulled = tmp.path().join("pulled.wasm");
    ok(&wasmplug(&["pull", &reference, "-o", pulled.to_str().unwrap(), "--sha256", &digest, "--plain-http"]));
    assert_eq!(std::fs::read(&pulled).unwrap(), std::fs::read(out_dir.join("plugin.wasm")).unwrap());
    let wrong =
        wasmplug(&["pull", &reference, "-o", pulled.to_str().unwrap(), "--sha256", &"0".repeat(64), "--plain-http"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("digest mismatch"));
}

#[test]
fn a_module_without_schema_does_not_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("bare.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let config = tmp.path().join("c.json");
    std::fs::write(&config, "{}").unwrap();
    let out = wasmplug(&["validate", "--config", config.to_str().unwrap(), module.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no config schema"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspected = ok(&wasmplug(&["inspect", module.to_str().unwrap()]));
    assert!(inspected.contains("metadata:        none"), "{inspected}");
    assert!(inspected.contains("proxy-wasm ABI:  none known (no gateway loads it)"), "{inspected}");

    // Higress's ABI 0.2.100: shown as loading in Higress only.
    let higress = tmp.path().join("higress.wasm");
    let text = r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_100")))"#;
    std::fs::write(&higress, wat::parse_str(text).unwrap()).unwrap();
    let inspected = ok(&wasmplug(&["inspect", higress.to_str().unwrap()]));
    assert!(inspected.contains("0.2.100 (loads in Higress only; upstream Envoy refuses it)"), "{inspected}");
}
