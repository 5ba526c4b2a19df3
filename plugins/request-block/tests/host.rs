//! request-block through the host, asserting what its Envoy tests assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_host::Request;
use wasmplug_testkit::host::{upstream_ok, vm};

#[test]
fn each_kind_of_rule_blocks_and_clean_requests_pass() {
    let config = r#"{"block_urls":["swagger.html","foo=bar"],"block_exact_urls":["/admin"],
        "block_regexp_urls":["^/v[0-9]+/internal/"],"block_headers":["example-key","example-value"],
        "blocked_code":451,"blocked_message":"blocked"}"#;
    let mut vm = vm("request-block", config);
    for request in [
        Request::get("/docs/swagger.html"),
        Request::get("/search?q=1&foo=bar"),
        Request::get("/admin"),
        Request::get("/v2/internal/users"),
        Request::get("/ok").header("example-key", "123"),
        Request::get("/ok").header("my-header", "an example-value"),
    ] {
        let ex = vm.run(&request, &mut upstream_ok()).unwrap();
        assert_eq!((ex.response.status, ex.response.text().as_str()), (451, "blocked"), "{request:?}");
        assert_eq!(ex.response.get_header("content-type"), Some("text/plain; charset=utf-8"));
        assert!(ex.upstream_request.is_none());
    }
    for path in ["/admin/page", "/Swagger.HTML", "/?foo=Bar", "/api/v2/internal/x", "/ok"] {
        let ex = vm.run(&Request::get(path).header("my-header", "fine"), &mut upstream_ok()).unwrap();
        assert_eq!((ex.response.status, ex.response.text().as_str()), (200, "upstream ok"), "{path}");
        assert_eq!(ex.upstream_request.unwrap().path, path);
    }
}

#[test]
fn bodies_are_inspected_in_chunks() {
    let mut vm = vm("request-block", r#"{"block_bodies":["DROP TABLE"],"blocked_message":"bad body"}"#);
    let padding = "x".repeat(40_000);
    // Envoy hands the body over in several reads; the plugin buffers it.
    let bad = Request::post("/sql", format!("{padding} DROP TABLE users; {padding}")).chunk_size(16_384);
    let ex = vm.run(&bad, &mut upstream_ok()).unwrap();
    assert_eq!((ex.response.status, ex.response.text().as_str()), (403, "bad body"));
    assert!(ex.upstream_request.is_none());
    let clean = format!("{padding} SELECT 1; {padding}");
    let ex = vm.run(&Request::post("/sql", clean.clone()).chunk_size(16_384), &mut upstream_ok()).unwrap();
    assert_eq!(ex.response.status, 200);
    assert_eq!(ex.upstream_request.unwrap().body_text(), clean);
    assert_eq!(vm.run(&Request::get("/DROP%20TABLE"), &mut upstream_ok()).unwrap().response.status, 200);
}

#[test]
fn rules_configure_two_domains_differently() {
    let config = r#"{"_rules_":[
        {"_match_domain_":["*.example.com"],"block_urls":["swagger.html"],"blocked_code":404},
        {"_match_domain_":["test.com"],"block_bodies":["hello world"]}]}"#;
    let mut vm = vm("request-block", config);
    let mut status =
        |host: &str, request: Request| vm.run(&request.host(host), &mut upstream_ok()).unwrap().response.status;
    assert_eq!(status("api.example.com", Request::get("/swagger.html")), 404);
    assert_eq!(status("api.example.com", Request::post("/", "hello world")), 200);
    assert_eq!(status("test.com", Request::get("/swagger.html")), 200);
    assert_eq!(status("test.com", Request::post("/", "hello world")), 403);
    assert_eq!(status("other.org", Request::post("/swagger.html", "hello world")), 200);
}

#[test]
fn bad_configs_are_refused() {
    let err = wasmplug_testkit::host::plugin("request-block")
        .start(wasmplug_host::VmOptions::default().configuration("{}"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("at least one of block_urls"), "{err}");
}
