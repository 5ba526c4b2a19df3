//! `wasmplug new`: the scaffolded crate builds for wasm32-wasip1, passes its own test (which
//! runs the module through the wasmplug-host harness) and answers requests under `wasmplug run`; inside a wasmplug workspace it becomes a
//! member that inherits the workspace's dependencies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{ok, wasmplug};

use wasmplug_testkit::client;
use wasmplug_testkit::upstream::Upstream;

/// The workspace's target directory: shared, so the generated crate reuses its compiled dependencies.
fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

#[test]
fn standalone_crate_builds_and_passes_its_harness_test() {
    let tmp = tempfile::tempdir().unwrap();
    let created: serde_json::Value = serde_json::from_str(&ok(&wasmplug(&[
        "new",
        "demo-plugin",
        "--dir",
        tmp.path().to_str().unwrap(),
        "--output",
        "json",
    ])))
    .unwrap();
    let dir = tmp.path().canonicalize().unwrap().join("demo-plugin");
    assert_eq!(created["dir"], dir.to_str().unwrap());
    assert!(created["workspace"].is_null(), "{created}");
    for f in ["Cargo.toml", "build.rs", "src/config.rs", "src/lib.rs", "tests/plugin.rs", "README.md", "Cargo.lock"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("| `headerName` | string | default `\"x-demo-plugin\"` |"), "{readme}");
    assert!(readme.contains("demo_plugin.wasm"), "{readme}");
    // A second `new` with the same name refuses to overwrite.
    let again = wasmplug(&["new", "demo-plugin", "--dir", tmp.path().to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Its own test builds the wasm module and runs it through the host harness.
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{log}");
    assert!(log.contains("test configured_header_and_denied_prefix ... ok"), "{log}");
    assert!(log.contains("test result: ok. 3 passed"), "{log}");
    assert!(target_dir().join("wasm32-wasip1/wasm/demo_plugin.wasm").is_file());

    // The built module carries the metadata and schema `wasmplug inspect` reads.
    let inspected: serde_json::Value = serde_json::from_str(&ok(&wasmplug(&[
        "inspect",
        target_dir().join("wasm32-wasip1/wasm/demo_plugin.wasm").to_str().unwrap(),
        "--output",
        "json",
    ])))
    .unwrap();
    let text = inspected.to_string();
    assert!(text.contains("demo-plugin") && text.contains("denyPathPrefix"), "{text}");

    // And it answers curl under `wasmplug run`.
    let upstream = Upstream::start();
    let config = tmp.path().join("config.json");
    std::fs::write(&config, r#"{"denyPathPrefix": "/admin"}"#).unwrap();
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_wasmplug"))
        .args(["run", "--listen", "127.0.0.1:0", "--upstream", &format!("http://127.0.0.1:{}", upstream.port())])
        .arg("--plugin")
        .arg(target_dir().join("wasm32-wasip1/wasm/demo_plugin.wasm"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    // Keep the pipe open while the gateway runs: it prints more lines after the first one, and a
    // closed stdout would make those prints fail.
    let mut stdout = BufReader::new(gateway.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    let Some(port) =
        first.strip_prefix("listening on http://127.0.0.1:").and_then(|r| r.split(',').next()?.parse::<u16>().ok())
    else {
        let _ = gateway.kill();
        panic!("wasmplug run did not start: {first:?}");
    };
    let ok = client::get(port, "/hello");
    let denied = client::get(port, "/admin/x");
    let _ = gateway.kill();
    let _ = gateway.wait();
    drop(stdout);
    assert_eq!(ok.unwrap().status, 200);
    assert_eq!(upstream.last_request().unwrap().header("x-demo-plugin"), Some("hello"));
    let denied = denied.unwrap();
    assert_eq!((denied.status, denied.text().as_str()), (403, "forbidden by demo-plugin"));
}

#[test]
fn inside_a_wasmplug_workspace_the_crate_becomes_a_member() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\n    \"sdk\",\n]\n\n[workspace.dependencies]\nwasmplug-sdk = { path = \"sdk\" }\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("plugins")).unwrap();
    let out = ok(&wasmplug(&["new", "my-filter", "--dir", root.join("plugins").to_str().unwrap()]));
    assert!(out.contains("added to the workspace members"), "{out}");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("members = [\n    \"sdk\",\n    \"plugins/my-filter\",\n]"), "{manifest}");
    let crate_manifest = std::fs::read_to_string(root.join("plugins/my-filter/Cargo.toml")).unwrap();
    assert!(crate_manifest.contains("wasmplug-sdk.workspace = true"), "{crate_manifest}");
    assert!(crate_manifest.contains("wasmplug-host.workspace = true"), "{crate_manifest}");
    assert!(!crate_manifest.contains("\n[workspace]"), "{crate_manifest}");
    let lib = std::fs::read_to_string(root.join("plugins/my-filter/src/lib.rs")).unwrap();
    assert!(lib.contains("pub struct MyFilter;") && lib.contains("wasmplug_sdk::plugin!(MyFilter);"), "{lib}");
    // Names cargo would refuse are refused up front.
    let bad = wasmplug(&["new", "My_Filter", "--dir", root.join("plugins").to_str().unwrap()]);
    assert!(!bad.status.success());
}
