//! Mutual TLS on the xDS and module servers, with real Envoy gateways and curl: a gateway with
//! a certificate gets its plugins; one without a certificate, or claiming a node id its
//! certificate does not carry, gets nothing; modules go only to the gateways that use them; the
//! servers' certificate rotates under connected gateways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmplug_envoy::bootstrap::GatewayTls;
use wasmplug_testenv::gateway::{ControlPlane, Gateway, TIMEOUT, labels, wait_for};

/// The plugin's filter config in a gateway's `/config_dump` (none: it never got it).
fn has_plugin_config(gw: &Gateway, name: &str) -> bool {
    gw.admin("/config_dump").is_some_and(|d| d.contains(&format!("\"name\": \"{name}\"")))
}

/// `curl` of a module URL with these client files (`None`: no client certificate); the HTTP
/// status, or None when the TLS connection failed.
fn curl(url: &str, ca: &str, client: Option<&GatewayTls>) -> Option<u16> {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert", ca]);
    if let Some(c) = client {
        cmd.args(["--cert", &c.cert_chain, "--key", &c.private_key]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (out.status.success() && code != 0).then_some(code)
}

#[test]
fn only_certified_gateways_get_plugins_and_modules() {
    // Refusals are counted as the controller's metric does.
    let refusals: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = Arc::clone(&refusals);
    let cp = ControlPlane::start_mtls_reporting(Arc::new(move |r| {
        seen.lock().unwrap().push((r.server.to_string(), r.reason.as_str().to_string()));
    }));
    let [hello] = <[String; 1]>::try_from(cp.allow(&["hello-world"])).unwrap();
    cp.update(vec![cp.plugin("hello", &hello, r#"{"mockEnable":true}"#)]);
    let module_url = wasmplug_envoy::filter::module_url(&cp.modules.base_url(), &hello);
    assert!(module_url.starts_with("https://127.0.0.1:"), "{module_url}");

    let gw = cp.gateway("gw-1", labels(&[]));
    assert!(wait_for(TIMEOUT, || gw.get("/").text() == "hello world").is_some(), "{}", gw.logs());
    assert_eq!(cp.xds.plugin_status("hello").unwrap().acked(), ["gw-1"]);

    // No certificate: the handshake is refused, the gateway gets no listener and no plugin.
    let plain = Gateway::spawn(&cp.bootstrap_with("intruder", labels(&[]), 0, None));
    // A certificate from the same CA, but for another node id.
    let spoofed_files = cp.pki.as_ref().unwrap().gateway_files("gw-2");
    let spoof = Gateway::spawn(&cp.bootstrap_with("gw-1", labels(&[]), 0, Some(spoofed_files.clone())));
    let refused = |server: &str, reason: &str| refusals.lock().unwrap().iter().any(|(s, r)| s == server && r == reason);
    assert!(
        wait_for(TIMEOUT, || refused("xds", "handshake") && refused("xds", "node_id")).is_some(),
        "{:?}",
        refusals.lock().unwrap()
    );
    // Give both the time a certified gateway needs to get everything (well under a second here).
    std::thread::sleep(Duration::from_secs(2));
    for gw in [&plain, &spoof] {
        assert!(!has_plugin_config(gw, "hello"), "{}", gw.admin("/config_dump").unwrap_or_default());
        assert_eq!(gw.listener_port(), None);
    }
    let nodes: Vec<String> = cp.xds.nodes().into_iter().map(|n| n.id).collect();
    assert_eq!(nodes, ["gw-1"]);

    // The module: no certificate, no TLS; a certificate of a gateway that is not connected
    // (or whose plugins do not use it): 403; the gateway that uses it: 200.
    let gw1_files = cp.pki.as_ref().unwrap().gateway_files("gw-1");
    assert_eq!(curl(&module_url, &gw1_files.ca, None), None);
    assert_eq!(curl(&module_url, &gw1_files.ca, Some(&spoofed_files)), Some(403));
    assert!(refused("modules", "module"));
    assert_eq!(curl(&module_url, &gw1_files.ca, Some(&gw1_files)), Some(200));
    // Plain HTTP to the TLS port gets no answer.
    let plain_http = wasmplug_testkit::client::get(cp.modules.local_addr().port(), "/modules");
    assert!(plain_http.is_err(), "{:?}", plain_http.map(|r| r.status));

    // Rotation: a new server certificate for new connections; the connected gateway stays.
    let before = cp.xds.nodes()[0].connected_at;
    let pki = cp.pki.as_ref().unwrap();
    let renewed = pki.ca.issue_server(&["127.0.0.1".into()], Duration::from_secs(7200)).unwrap();
    pki.tls.set(&renewed.server_material()).unwrap();
    let gw2 = cp.gateway("gw-2", labels(&[]));
    assert!(wait_for(TIMEOUT, || gw2.get("/").text() == "hello world").is_some(), "{}", gw2.logs());
    let nodes = cp.xds.nodes();
    let gw1 = nodes.iter().find(|n| n.id == "gw-1").expect("gw-1 still connected");
    assert_eq!(gw1.connected_at, before, "gw-1 kept its stream");
    assert_eq!(gw.get("/").text(), "hello world");
}

/// What `--tls-dir` does: the directory of a mounted TLS Secret is re-read, renewed files
/// (here: from another CA, as after a CA rotation) take over for new connections, and files that
/// do not make a valid pair are refused while the current ones stay.
#[test]
fn a_renewed_secret_directory_takes_over_and_broken_files_are_refused() {
    use wasmplug_testenv::gateway::Pki;
    use wasmplug_xds::{ServerTls, TlsMaterial};
    let (old, new) = (Pki::new(), Pki::new());
    let dir = tempfile::tempdir().unwrap();
    old.server.write_dir(dir.path()).unwrap();
    let tls = ServerTls::new(&TlsMaterial::read_dir(dir.path()).unwrap()).unwrap();
    let cp = ControlPlane::start_mtls_with(Arc::clone(&tls));
    let _enter = cp.rt.enter();
    let _watch = tls.watch_dir(dir.path().to_path_buf(), Duration::from_millis(100));
    let [hello] = <[String; 1]>::try_from(cp.allow(&["hello-world"])).unwrap();
    let url = wasmplug_envoy::filter::module_url(&cp.modules.base_url(), &hello);
    let (old_client, new_client) = (old.gateway_files("gw-1"), new.gateway_files("gw-1"));
    // Not connected over xDS, so the module is refused (403), but the TLS handshake tells which
    // certificates the server holds.
    let handshake = |files: &GatewayTls| curl(&url, &files.ca, Some(files)).is_some();
    assert!(handshake(&old_client) && !handshake(&new_client));

    new.server.write_dir(dir.path()).unwrap();
    assert!(wait_for(TIMEOUT, || handshake(&new_client)).is_some(), "the renewed files never took over");
    assert!(!handshake(&old_client), "the old CA's clients are no longer accepted");

    // A key that does not match the certificate: refused, the current pair keeps serving
    // (five re-reads later), and the watch goes on: the next good files take over.
    std::fs::write(dir.path().join("tls.key"), old.server.key_pem.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(handshake(&new_client), "a broken pair must not replace the working one");
    let third = Pki::new();
    let third_client = third.gateway_files("gw-1");
    third.server.write_dir(dir.path()).unwrap();
    assert!(wait_for(TIMEOUT, || handshake(&third_client)).is_some(), "the watch stopped after the broken pair");
}
