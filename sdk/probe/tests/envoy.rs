//! SDK behaviour in a real Envoy, through the `sdk-probe` plugin: access-log attributes,
//! metrics, ticks, buffered bodies and their limit, streaming response chunks, headers on
//! the plugin's own local replies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use wasmplug_testkit::upstream::{Upstream, UpstreamResponse};
use wasmplug_testkit::{Envoy, EnvoyConfig, WasmFilter, client, wasm};

fn probe(upstream: &Upstream, configuration: &str) -> Envoy {
    let filter = WasmFilter::new("sdk-probe", wasm::plugin_module("sdk-probe")).configuration(configuration);
    Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter)).unwrap()
}

#[test]
fn user_attributes_reach_the_access_log() {
    let upstream = Upstream::start();
    let envoy = probe(&upstream, "{}");
    client::get(envoy.http_port(), "/logged?x=1").unwrap();
    assert!(
        envoy.wait_for_access_log(
            r#"custom_log={"probe_method":"GET","probe_path":"/logged?x=1"}"#,
            Duration::from_secs(10)
        ),
        "{}",
        envoy.access_log()
    );
}

#[test]
fn metrics_and_ticks_are_exported() {
    let upstream = Upstream::start();
    let envoy = probe(&upstream, "{}");
    for _ in 0..3 {
        client::get(envoy.http_port(), "/").unwrap();
    }
    assert_eq!(envoy.stat("wasmcustom.probe_requests"), Some(3), "{}", envoy.stats());
    let deadline = Instant::now() + Duration::from_secs(5);
    while envoy.stat("wasmcustom.probe_ticks").unwrap_or(0) < 3 {
        assert!(Instant::now() < deadline, "ticks did not run: {}", envoy.stats());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn buffered_request_body_is_rewritten_and_limited() {
    let upstream = Upstream::start();
    let envoy = probe(&upstream, r#"{"uppercaseRequestBody": true, "requestBodyLimit": 64}"#);
    let ok = client::post(envoy.http_port(), "/up", "small body").unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(upstream.last_request().unwrap().body_text(), "SMALL BODY");

    upstream.clear_requests();
    let big = client::post(envoy.http_port(), "/up", "x".repeat(65)).unwrap();
    assert_eq!((big.status, big.text().as_str()), (413, "Payload Too Large"));
    assert!(upstream.requests().is_empty());

    // A request without a body is not held waiting for one.
    let get = client::get(envoy.http_port(), "/nobody").unwrap();
    assert_eq!(get.status, 200);
}

#[test]
fn streaming_response_chunks_are_replaced() {
    let upstream = Upstream::start();
    upstream.set_default_response(UpstreamResponse::new(200, "streamed from upstream"));
    let envoy = probe(&upstream, r#"{"uppercaseResponse": true}"#);
    let resp = client::get(envoy.http_port(), "/").unwrap();
    assert_eq!(resp.text(), "STREAMED FROM UPSTREAM");
    assert_eq!(resp.header("x-probe-local-reply"), Some("false"));
}

#[test]
fn local_replies_pass_the_response_headers_phase() {
    let upstream = Upstream::start();
    let envoy = probe(&upstream, r#"{"denyPrefix": "/deny"}"#);
    let resp = client::get(envoy.http_port(), "/deny/x").unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (401, "denied by probe"));
    assert_eq!(resp.header("x-probe-local-reply"), Some("true"));
    assert!(upstream.requests().is_empty());
}

/// Envoy fails the stream during which the VM crashed (503 `wasm_fail_stream`) under either
/// policy; afterwards FAIL_CLOSED keeps refusing while FAIL_OPEN lets requests through.
#[test]
fn a_panic_is_logged_and_the_fail_policy_applies() {
    let upstream = Upstream::start();
    let filter = |fail_open: bool| {
        WasmFilter::new("sdk-probe", wasm::plugin_module("sdk-probe"))
            .configuration(r#"{"panicPrefix": "/boom"}"#)
            .fail_open(fail_open)
    };
    let closed = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(false))).unwrap();
    assert_eq!(client::get(closed.http_port(), "/boom").unwrap().status, 503);
    assert!(closed.wait_for_log("probe panics on /boom", Duration::from_secs(5)), "{}", closed.logs());
    assert!(closed.logs().contains("critical"), "{}", closed.logs());
    assert_eq!(client::get(closed.http_port(), "/after").unwrap().status, 503);
    assert!(upstream.requests().is_empty());

    let open = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(true))).unwrap();
    assert_eq!(client::get(open.http_port(), "/boom").unwrap().status, 503);
    assert_eq!(client::get(open.http_port(), "/after").unwrap().status, 200);
    assert_eq!(upstream.requests().len(), 1);
    assert_eq!(upstream.last_request().unwrap().path, "/after");
}
