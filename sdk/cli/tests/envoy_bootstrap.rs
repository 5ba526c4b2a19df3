//! `wasmplug envoy-bootstrap`: the YAML it prints is a bootstrap Envoy 1.40 accepts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{ok, wasmplug};

fn envoy_validates(yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, yaml).unwrap();
    let envoy = wasmplug_testkit::envoy::envoy_binary().unwrap();
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--use-dynamic-base-id", "-l", "warning", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy refused:\n{yaml}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_bootstrap_validates_in_envoy() {
    let yaml = ok(&wasmplug(&[
        "envoy-bootstrap",
        "--xds",
        "127.0.0.1:18000",
        "--node",
        "gw-1",
        "--upstream",
        "http://127.0.0.1:8080",
        "--label",
        "tier=edge",
        "--label",
        "zone=a",
    ]));
    for needle in [
        "id: gw-1",
        "tier: edge",
        "WASMPLUG_LISTENER: 127.0.0.1:10000",
        "cluster_name: wasmplug-xds",
        "name: wasmplug-modules",
        "name: upstream",
    ] {
        assert!(yaml.contains(needle), "{needle} missing in\n{yaml}");
    }
    envoy_validates(&yaml);

    // DNS names, TLS upstream, explicit module server.
    let yaml = ok(&wasmplug(&[
        "envoy-bootstrap",
        "--xds",
        "wasmplug-controller.wasmplug-system.svc:18000",
        "--node",
        "gw-2",
        "--upstream",
        "https://example.com",
        "--modules",
        "modules.example.com:8081",
    ]));
    assert!(yaml.contains("STRICT_DNS") && yaml.contains("sni: example.com"), "{yaml}");
    envoy_validates(&yaml);

    // No upstream: listens on every address, no upstream cluster.
    let yaml = ok(&wasmplug(&["envoy-bootstrap", "--xds", "10.0.0.1:18000", "--node", "gw-3"]));
    assert!(yaml.contains("WASMPLUG_LISTENER: 0.0.0.0:10000") && yaml.contains("port_value: 8081"), "{yaml}");
    envoy_validates(&yaml);
}

#[test]
fn bad_arguments_are_refused() {
    for args in [
        &["envoy-bootstrap", "--xds", "nope", "--node", "gw"][..],
        &["envoy-bootstrap", "--xds", "127.0.0.1:1", "--node", "gw", "--label", "novalue"],
        &["envoy-bootstrap", "--xds", "127.0.0.1:1", "--node", "gw", "--upstream", "ftp://x"],
    ] {
        let out = wasmplug(args);
        assert!(!out.status.success(), "{args:?} was accepted");
    }
}
