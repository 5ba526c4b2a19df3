//! The pre-flight host on real plugin modules and on hostile ones: what a refusal, a loop, a
//! memory blow-up, a trap and a module the host cannot judge become, and that each pair runs once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wasmplug_controller::WasmPlugin;
use wasmplug_controller::preflight::{Limits, Preflight, Verdict};
use wasmplug_controller::resolve::{Resolved, ResolvedModule};
use wasmplug_testkit::fixtures;

fn plugin(config: Value) -> WasmPlugin {
    serde_json::from_value(json!({
        "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": { "name": "p", "namespace": "gw", "generation": 1 },
        "spec": { "url": "oci://r.example/p:1", "defaultConfig": config },
    }))
    .unwrap()
}

fn resolved(path: &Path) -> Resolved {
    let bytes = std::fs::read(path).unwrap();
    Resolved {
        module: ResolvedModule { image_digest: None, module_sha256: hex::encode(Sha256::digest(&bytes)) },
        path: path.to_path_buf(),
        size: bytes.len() as u64,
        schema: None,
        schema_source: None,
        abi: None,
    }
}

fn wat(dir: &Path, name: &str, text: &str) -> Resolved {
    let path = dir.join(format!("{name}.wat"));
    std::fs::write(&path, text).unwrap();
    resolved(&path)
}

fn limits() -> Limits {
    Limits { memory: 16 << 20, call_timeout: Duration::from_millis(200) }
}

#[tokio::test]
async fn a_real_plugin_passes_or_refuses_with_the_field_it_names_and_each_pair_runs_once() {
    let pf = Arc::new(Preflight::new(limits()));
    let module = resolved(&wasmplug_testkit::wasm::plugin_module("request-block"));

    let good = plugin(json!({ "block_urls": ["/a"] }));
    assert_eq!(pf.check(&good, &module).await.unwrap(), Verdict::Passed);
    let bad = plugin(json!({ "block_regexp_urls": ["("] }));
    let err = pf.check(&bad, &module).await.unwrap_err();
    assert_eq!(err.reason(), "PluginRefused");
    let text = err.to_string();
    assert!(text.contains("proxy_on_configure returned false"), "{text}");
    assert!(text.contains("block_regexp_urls[0]"), "the plugin's own message, naming the field: {text}");
    assert_eq!(pf.runs(), 2);

    // Again: answered from the results, the plugin does not run.
    assert_eq!(pf.check(&good, &module).await.unwrap(), Verdict::Passed);
    assert_eq!(pf.check(&bad, &module).await.unwrap_err().reason(), "PluginRefused");
    assert_eq!(pf.runs(), 2);
    // A new config of the same module runs, on the module compiled once.
    assert_eq!(pf.check(&plugin(json!({ "block_urls": ["/b"] })), &module).await.unwrap(), Verdict::Passed);
    assert_eq!((pf.runs(), pf.compiled()), (3, 1));
}

#[tokio::test]
async fn loops_blowups_traps_and_broken_modules_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pf = Arc::new(Preflight::new(limits()));
    let cfg = plugin(json!({}));
    for (name, body, reason, says) in [
        ("loop", fixtures::INFINITE_LOOP, "PluginFailed", "proxy_on_configure ran past its time budget"),
        ("oom", fixtures::OOM, "PluginFailed", "proxy_on_configure outgrew its memory cap"),
        ("panic", fixtures::PANIC, "PluginFailed", "it logged: panicked at src/lib.rs:7:5:\nboom"),
        ("refuses", "(i32.const 0)", "PluginRefused", "proxy_on_configure returned false"),
    ] {
        let started = Instant::now();
        let err = pf.check(&cfg, &wat(dir.path(), name, &fixtures::configure_module(body))).await.unwrap_err();
        assert_eq!(err.reason(), reason, "{name}: {err}");
        assert!(err.to_string().contains(says), "{name}: {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{name}: {:?}", started.elapsed());
    }
    let not_wasm = dir.path().join("junk.wasm");
    std::fs::write(&not_wasm, b"\0asm\x01\0\0\0 not a module").unwrap();
    let err = pf.check(&cfg, &resolved(&not_wasm)).await.unwrap_err();
    assert_eq!(err.reason(), "InvalidModule", "{err}");
}

#[tokio::test]
async fn a_fault_after_a_wasi_call_the_host_lacks_is_not_judged_and_off_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pf = Arc::new(Preflight::new(limits()));
    let module = wat(dir.path(), "go-like", fixtures::UNSUPPORTED_WASI);
    match pf.check(&plugin(json!({})), &module).await.unwrap() {
        Verdict::NotRun(why) => assert!(why.contains("fd_fdstat_set_flags"), "{why}"),
        other => panic!("{other:?}"),
    }
    let off = Arc::new(Preflight::off());
    let bad = plugin(json!({ "block_regexp_urls": ["("] }));
    let module = resolved(&wasmplug_testkit::wasm::plugin_module("request-block"));
    assert!(matches!(off.check(&bad, &module).await.unwrap(), Verdict::NotRun(_)));
    assert_eq!(off.runs(), 0);
}

#[tokio::test]
async fn what_may_be_the_hosts_gap_is_not_judged_but_loops_always_are() {
    let dir = tempfile::tempdir().unwrap();
    let pf = Arc::new(Preflight::new(limits()));
    let cfg = plugin(json!({}));

    // An import this host does not provide (Envoy may): not judged, the import named.
    let unknown = fixtures::configure_module("(i32.const 1)")
        .replace("(memory", "(import \"env\" \"proxy_not_in_this_host\" (func))\n  (memory");
    match pf.check(&cfg, &wat(dir.path(), "unknown-import", &unknown)).await.unwrap() {
        Verdict::NotRun(why) => assert!(why.contains("env.proxy_not_in_this_host"), "{why}"),
        other => panic!("{other:?}"),
    }

    // A loop after an unsupported WASI call is still the plugin's: refused.
    let spins = fixtures::UNSUPPORTED_WASI.replace("(then unreachable)", "(then (loop $spin (br $spin)))");
    let err = pf.check(&cfg, &wat(dir.path(), "wasi-then-loop", &spins)).await.unwrap_err();
    assert_eq!(err.reason(), "PluginFailed", "{err}");

    // A plugin reading host environment variables fails here without them: not judged.
    let mut with_host_env = plugin(json!({ "block_regexp_urls": ["("] }));
    with_host_env.spec.vm_config =
        serde_json::from_value(json!({ "env": [{ "name": "REGION", "valueFrom": "HOST" }] })).unwrap();
    let module = resolved(&wasmplug_testkit::wasm::plugin_module("request-block"));
    match pf.check(&with_host_env, &module).await.unwrap() {
        Verdict::NotRun(why) => assert!(why.contains("host environment variables (REGION)"), "{why}"),
        other => panic!("{other:?}"),
    }
    // ...but a loop is the plugin's, whatever it reads.
    let looping = wat(dir.path(), "env-then-loop", &fixtures::configure_module(fixtures::INFINITE_LOOP));
    let err = pf.check(&with_host_env, &looping).await.unwrap_err();
    assert_eq!(err.reason(), "PluginFailed", "{err}");
}
