//! `wasmplug run` with callouts as Envoy runs them: the plugin's call returns at once, the
//! callout runs with the plugin's own timeout and its answer or failure reaches the plugin
//! later, without counting against the plugin's time budget, while other requests go on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gateway;

use std::thread;
use std::time::Duration;

use gateway::{Gateway, s, write};
use wasmplug_testkit::client;
use wasmplug_testkit::upstream::{Upstream, UpstreamResponse};
use wasmplug_testkit::wasm::plugin_module;

/// A gateway running http-call against `token` with the callout timeout `timeout_ms`.
fn gateway(dir: &std::path::Path, upstream: &Upstream, token: &Upstream, timeout_ms: u32) -> Gateway {
    let config = format!(
        r#"{{"serviceSource":"ip","serviceName":"token","servicePort":8080,"requestPath":"/token","tokenHeader":"x-token","timeoutMs":{timeout_ms}}}"#
    );
    Gateway::start(&[
        s("--upstream"),
        format!("http://127.0.0.1:{}", upstream.port()),
        s("--plugin"),
        plugin_module("http-call").display().to_string(),
        s("--config"),
        write(dir, &format!("call-{timeout_ms}.json"), &config),
        s("--cluster"),
        format!("outbound|8080||token.static=http://127.0.0.1:{}", token.port()),
    ])
}

fn get(gw: &Gateway, path: &str) -> (u16, String) {
    let response = client::request(gw.port, "GET", path).timeout(Duration::from_secs(20)).send().unwrap();
    (response.status, response.text())
}

#[test]
fn a_slow_callout_is_waited_for_outside_the_plugin_and_requests_go_on_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let token = Upstream::start();
    let slow = UpstreamResponse::new(200, "").header("x-token", "t-1").delayed(Duration::from_millis(1500));
    token.respond("/token", slow);
    let gw = gateway(tmp.path(), &upstream, &token, 5000);

    // 1.5 s of waiting is longer than the plugin's 1 s budget per call: it is not counted.
    assert_eq!(get(&gw, "/one"), (200, "upstream ok".to_string()), "{}", gw.output());
    assert_eq!(upstream.last_request().unwrap().header("x-token"), Some("t-1"));

    // The token service answers nobody until two callouts are in flight at once (or 10 s,
    // past the plugin's 5 s timeout): one request at a time would answer 500 here.
    token.hold_until(3, Duration::from_secs(10));
    let parallel: Vec<_> = ["/two", "/three"]
        .into_iter()
        .map(|path| {
            let port = gw.port;
            thread::spawn(move || {
                let response = client::request(port, "GET", path).timeout(Duration::from_secs(20)).send().unwrap();
                (response.status, response.text())
            })
        })
        .collect();
    for request in parallel {
        assert_eq!(request.join().unwrap(), (200, "upstream ok".to_string()), "{}", gw.output());
    }
    let seen: Vec<String> = upstream.requests().iter().map(|r| r.path.clone()).collect();
    assert!(seen.contains(&"/two".to_string()) && seen.contains(&"/three".to_string()), "{seen:?}");
}

#[test]
fn a_callout_past_the_plugins_timeout_fails_into_the_plugin_which_keeps_running() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let token = Upstream::start();
    let slow = UpstreamResponse::new(200, "").header("x-token", "t-1").delayed(Duration::from_secs(3));
    token.respond("/token", slow);
    let gw = gateway(tmp.path(), &upstream, &token, 300);

    // The plugin is told the call failed (no headers) and answers its own 500, as in Envoy;
    // the gateway neither fails the VM (503) nor waits for the slow answer.
    assert_eq!(get(&gw, "/late"), (500, "http call failed".to_string()), "{}", gw.output());
    assert!(upstream.requests().is_empty());

    // The same VM serves the next request once the service is fast again.
    token.respond("/token", UpstreamResponse::new(200, "").header("x-token", "t-2"));
    assert_eq!(get(&gw, "/soon"), (200, "upstream ok".to_string()), "{}", gw.output());
    assert_eq!(upstream.last_request().unwrap().header("x-token"), Some("t-2"));
}
