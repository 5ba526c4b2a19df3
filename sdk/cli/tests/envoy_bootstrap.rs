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

fn certificates(node: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    wasmplug_testkit::certs::openssl_gateway_certificate(dir.path(), node).unwrap();
    dir
}

#[test]
fn the_bootstrap_validates_in_envoy() {
    let tls = certificates("gw-1");
    let tls_dir = tls.path().to_str().unwrap();
    let yaml = ok(&wasmplug(&[
        "envoy-bootstrap",
        "--tls-dir",
        tls_dir,
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
        "envoy.transport_sockets.tls",
        &format!("filename: {tls_dir}/tls.crt"),
        "san_type: IP_ADDRESS",
    ] {
        assert!(yaml.contains(needle), "{needle} missing in\n{yaml}");
    }
    envoy_validates(&yaml);

    // DNS names, TLS upstream, explicit module server.
    let yaml = ok(&wasmplug(&[
        "envoy-bootstrap",
        "--tls-dir",
        tls_dir,
        "--tls-server-name",
        "wasmplug-controller.wasmplug-system.svc",
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
    assert!(yaml.contains("sni: wasmplug-controller.wasmplug-system.svc"), "{yaml}");
    envoy_validates(&yaml);

    // No upstream: listens on every address, no upstream cluster; plaintext for a demo controller.
    let yaml = ok(&wasmplug(&["envoy-bootstrap", "--insecure-plaintext", "--xds", "10.0.0.1:18000", "--node", "gw-3"]));
    assert!(yaml.contains("WASMPLUG_LISTENER: 0.0.0.0:10000") && yaml.contains("port_value: 8081"), "{yaml}");
    assert!(!yaml.contains("transport_socket"), "{yaml}");
    envoy_validates(&yaml);

    // By default the certificate is where the chart mounts it.
    let yaml = ok(&wasmplug(&["envoy-bootstrap", "--xds", "10.0.0.1:18000", "--node", "gw-4"]));
    assert!(yaml.contains("filename: /etc/wasmplug/tls/tls.key"), "{yaml}");
}

#[test]
fn bad_arguments_are_refused() {
    for args in [
        &["envoy-bootstrap", "--xds", "nope", "--node", "gw"][..],
        &["envoy-bootstrap", "--xds", "127.0.0.1:1", "--node", "gw", "--label", "novalue"],
        &["envoy-bootstrap", "--xds", "127.0.0.1:1", "--node", "gw", "--upstream", "ftp://x"],
        &["envoy-bootstrap", "--xds", "127.0.0.1:1", "--node", "gw", "--insecure-plaintext", "--tls-dir", "/x"],
    ] {
        let out = wasmplug(args);
        assert!(!out.status.success(), "{args:?} was accepted");
    }
}
