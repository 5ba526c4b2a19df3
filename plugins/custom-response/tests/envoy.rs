//! custom-response in a real Envoy: direct answers, replacing chosen upstream statuses,
//! per-route rules and a refused configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_testkit::upstream::{Upstream, UpstreamResponse};
use wasmplug_testkit::{Envoy, EnvoyConfig, Route, VirtualHost, WasmFilter, client, wasm};

fn filter(configuration: &str) -> WasmFilter {
    WasmFilter::new("custom-response", wasm::plugin_module("custom-response")).configuration(configuration)
}

#[test]
fn answers_every_request_with_headers_and_body() {
    let upstream = Upstream::start();
    let config = r#"{"status_code":418,"headers":["x-teapot = yes","x-multi=a=b"],"body":"{\"hello\":\"world\"}"}"#;
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(config))).unwrap();
    let resp = client::post(envoy.http_port(), "/any", "ignored").unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (418, r#"{"hello":"world"}"#));
    assert_eq!(resp.header("x-teapot"), Some("yes"));
    assert_eq!(resp.header("x-multi"), Some("a=b"));
    assert_eq!(resp.header("content-type"), Some("application/json; charset=utf-8"));
    assert!(upstream.requests().is_empty());

    let envoy = Envoy::start(
        EnvoyConfig::proxy_to(upstream.port())
            .filter(filter(r#"{"headers":["Content-Type=text/html"],"body":"<b>hi</b>"}"#)),
    )
    .unwrap();
    let resp = client::get(envoy.http_port(), "/").unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "<b>hi</b>"));
    assert_eq!(resp.header_all("content-type"), vec!["text/html"]);

    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(r#"{"body":"plain"}"#))).unwrap();
    let resp = client::get(envoy.http_port(), "/").unwrap();
    assert_eq!(resp.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(upstream.requests().is_empty());
}

#[test]
fn replaces_listed_upstream_statuses_only() {
    let upstream = Upstream::start();
    upstream.respond(
        "/broken",
        UpstreamResponse::new(502, "raw upstream error").header("x-upstream", "1").header("content-type", "text/plain"),
    );
    upstream.respond("/missing", UpstreamResponse::new(404, "not here"));
    let config = r#"{"status_code":503,"headers":["x-custom=1"],"body":"{\"error\":\"try later\"}",
        "enable_on_status":[502]}"#;
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(config))).unwrap();

    let replaced = client::get(envoy.http_port(), "/broken").unwrap();
    assert_eq!((replaced.status, replaced.text().as_str()), (503, r#"{"error":"try later"}"#));
    assert_eq!(replaced.header("x-custom"), Some("1"));
    assert_eq!(replaced.header("x-upstream"), None);
    assert_eq!(replaced.header("content-type"), Some("application/json; charset=utf-8"));

    let ok = client::post(envoy.http_port(), "/fine", "data").unwrap();
    assert_eq!((ok.status, ok.text().as_str()), (200, "upstream ok"));
    assert_eq!(ok.header("x-custom"), None);
    let not_listed = client::get(envoy.http_port(), "/missing").unwrap();
    assert_eq!((not_listed.status, not_listed.text().as_str()), (404, "not here"));

    let paths: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/broken", "/fine", "/missing"]);
    assert_eq!(upstream.requests()[1].body_text(), "data");
}

#[test]
fn rules_configure_two_routes_differently() {
    let upstream = Upstream::start();
    upstream.respond("/api/fail", UpstreamResponse::new(502, "bad gateway"));
    let config = r#"{"_rules_":[
        {"_match_route_":["maintenance"],"status_code":503,"body":"down for maintenance"},
        {"_match_route_":["api"],"status_code":500,"body":"{\"error\":1}","enable_on_status":[502]}]}"#;
    let envoy = Envoy::start(
        EnvoyConfig::new().filter(filter(config)).cluster("upstream", upstream.port()).virtual_host(
            VirtualHost::new("default", ["*"])
                .route(Route::new("maintenance", "/maint", "upstream"))
                .route(Route::new("api", "/api", "upstream"))
                .route(Route::new("other", "/", "upstream")),
        ),
    )
    .unwrap();
    let port = envoy.http_port();

    let maint = client::get(port, "/maint/x").unwrap();
    assert_eq!((maint.status, maint.text().as_str()), (503, "down for maintenance"));
    let api_ok = client::get(port, "/api/ok").unwrap();
    assert_eq!((api_ok.status, api_ok.text().as_str()), (200, "upstream ok"));
    let api_fail = client::get(port, "/api/fail").unwrap();
    assert_eq!((api_fail.status, api_fail.text().as_str()), (500, r#"{"error":1}"#));
    let other = client::get(port, "/other").unwrap();
    assert_eq!((other.status, other.text().as_str()), (200, "upstream ok"));

    let paths: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/api/ok", "/api/fail", "/other"]);
}

#[test]
fn bad_configs_are_refused_and_the_log_names_the_field() {
    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(filter(r#"{"status_code":"200"}"#)));
    assert!(log.contains("invalid configuration at `status_code`"), "{log}");
    assert!(log.contains("Unable to create Wasm plugin custom-response"), "{log}");

    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(filter(r#"{"headers":["a=1","oops"]}"#)));
    assert!(log.contains("invalid configuration at `headers[1]`: expected key=value"), "{log}");

    let log = Envoy::start_expect_rejection(
        EnvoyConfig::proxy_to(1).filter(filter(r#"{"_rules_":[{"_match_route_":["r"],"enable_on_status":["502"]}]}"#)),
    );
    assert!(log.contains("invalid configuration at `_rules_[0].enable_on_status[0]`"), "{log}");
}
