//! custom-response through the host, asserting what its Envoy tests assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_host::{HttpResponse, Request, UpstreamRequest};
use wasmplug_testkit::host::{upstream_ok, vm};

#[test]
fn answers_every_request_with_headers_and_body() {
    let config = r#"{"status_code":418,"headers":["x-teapot = yes","x-multi=a=b"],"body":"{\"hello\":\"world\"}"}"#;
    let ex = vm("custom-response", config).run(&Request::post("/any", "ignored"), &mut upstream_ok()).unwrap();
    assert_eq!((ex.response.status, ex.response.text().as_str()), (418, r#"{"hello":"world"}"#));
    assert_eq!(ex.response.get_header("x-teapot"), Some("yes"));
    assert_eq!(ex.response.get_header("x-multi"), Some("a=b"));
    assert_eq!(ex.response.get_header("content-type"), Some("application/json; charset=utf-8"));
    assert!(ex.upstream_request.is_none());

    let config = r#"{"headers":["Content-Type=text/html"],"body":"<b>hi</b>"}"#;
    let ex = vm("custom-response", config).run(&Request::get("/"), &mut upstream_ok()).unwrap();
    assert_eq!((ex.response.status, ex.response.text().as_str()), (200, "<b>hi</b>"));
    assert_eq!(ex.response.header_all("content-type"), vec!["text/html"]);
}

#[test]
fn replaces_listed_upstream_statuses_only() {
    let config = r#"{"status_code":503,"headers":["x-custom=1"],"body":"{\"error\":\"try later\"}",
        "enable_on_status":[502]}"#;
    let mut vm = vm("custom-response", config);
    let mut upstream = |req: &UpstreamRequest| match req.path.as_str() {
        "/broken" => HttpResponse::new(502, "raw upstream error").header("x-upstream", "1"),
        "/missing" => HttpResponse::new(404, "not here"),
        _ => upstream_ok(),
    };
    let replaced = vm.run(&Request::get("/broken"), &mut upstream).unwrap();
    assert_eq!((replaced.response.status, replaced.response.text().as_str()), (503, r#"{"error":"try later"}"#));
    assert_eq!(replaced.response.get_header("x-custom"), Some("1"));
    assert_eq!(replaced.response.get_header("x-upstream"), None);
    assert!(replaced.upstream_request.is_some() || replaced.local_response.is_some());
    let ok = vm.run(&Request::post("/fine", "data"), &mut upstream).unwrap();
    assert_eq!((ok.response.status, ok.response.text().as_str()), (200, "upstream ok"));
    assert_eq!(ok.response.get_header("x-custom"), None);
    let not_listed = vm.run(&Request::get("/missing"), &mut upstream).unwrap();
    assert_eq!((not_listed.response.status, not_listed.response.text().as_str()), (404, "not here"));
}
