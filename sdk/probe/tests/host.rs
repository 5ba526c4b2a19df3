//! SDK features through the host with the sdk-probe plugin, and raw-hello (plain proxy-wasm).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use wasmplug_host::{HttpResponse, Request};
use wasmplug_testkit::host::{upstream_ok, vm};

#[test]
fn user_attributes_metrics_and_ticks() {
    let mut vm = vm("sdk-probe", "{}");
    for _ in 0..3 {
        let ex = vm.run(&Request::get("/logged?x=1"), &mut upstream_ok()).unwrap();
        assert_eq!(ex.custom_log.as_deref(), Some(r#"{"probe_method":"GET","probe_path":"/logged?x=1"}"#));
    }
    assert_eq!(vm.metric("probe_requests"), Some(3));
    assert_eq!(vm.tick_period(), Some(Duration::from_millis(50)));
    assert_eq!(vm.advance(Duration::from_millis(160)).unwrap(), 3);
    assert!(vm.metric("probe_ticks").unwrap() >= 3, "{:?}", vm.metrics());
}

#[test]
fn buffered_request_body_is_rewritten_and_limited() {
    let mut vm = vm("sdk-probe", r#"{"uppercaseRequestBody": true, "requestBodyLimit": 64}"#);
    let ok = vm.run(&Request::post("/up", "small body"), &mut upstream_ok()).unwrap();
    assert_eq!(ok.upstream_request.unwrap().body_text(), "SMALL BODY");
    let big = vm.run(&Request::post("/up", "x".repeat(65)), &mut upstream_ok()).unwrap();
    assert_eq!((big.response.status, big.response.text().as_str()), (413, "Payload Too Large"));
    assert!(big.upstream_request.is_none());
    assert_eq!(vm.run(&Request::get("/nobody"), &mut upstream_ok()).unwrap().response.status, 200);
}

#[test]
fn streaming_response_chunks_and_local_replies() {
    let mut vm = vm("sdk-probe", r#"{"uppercaseResponse": true, "denyPrefix": "/deny"}"#);
    let mut upstream = HttpResponse::new(200, "streamed from upstream");
    let ex = vm.run(&Request::get("/"), &mut upstream).unwrap();
    assert_eq!(ex.response.text(), "STREAMED FROM UPSTREAM");
    assert_eq!(ex.response.get_header("x-probe-local-reply"), Some("false"));
    let denied = vm.run(&Request::get("/deny/x"), &mut upstream).unwrap();
    assert_eq!((denied.response.status, denied.response.text().as_str()), (401, "denied by probe"));
    assert_eq!(denied.response.get_header("x-probe-local-reply"), Some("true"));
    assert!(denied.upstream_request.is_none());
}

#[test]
fn raw_hello_written_on_proxy_wasm() {
    let mut mocked = vm("raw-hello", r#"{"mockEnable":true}"#);
    let ex = mocked.run(&Request::get("/anything?x=1"), &mut upstream_ok()).unwrap();
    assert_eq!((ex.response.status, ex.response.text().as_str()), (200, "hello world"));
    assert_eq!(ex.response.get_header("content-type"), Some("text/plain"));
    let mut plain = vm("raw-hello", "{}");
    let ex = plain.run(&Request::post("/post", "payload"), &mut upstream_ok()).unwrap();
    let req = ex.upstream_request.unwrap();
    assert_eq!((req.method.as_str(), req.path.as_str(), req.body_text().as_str()), ("POST", "/post", "payload"));
    assert_eq!(req.header("hello"), Some("world"));
    let err = wasmplug_testkit::host::plugin("raw-hello")
        .start(wasmplug_host::VmOptions::default().configuration(r#"{"mockEnable":"yes"}"#))
        .err()
        .unwrap();
    assert!(err.to_string().contains("raw-hello: invalid plugin configuration"), "{err}");
}
