//! The harness end to end, with the `raw-hello` benchmark plugin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use wasmplug_testkit::upstream::Upstream;
use wasmplug_testkit::{Envoy, EnvoyConfig, Route, VirtualHost, WasmFilter, client, wasm};

fn raw_hello(configuration: &str) -> WasmFilter {
    WasmFilter::new("raw-hello", wasm::plugin_module("raw-hello")).configuration(configuration)
}

#[test]
fn mock_enabled_answers_locally() {
    let upstream = Upstream::start();
    let envoy =
        Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(raw_hello(r#"{"mockEnable":true}"#))).unwrap();

    let resp = client::get(envoy.http_port(), "/anything?x=1").unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "hello world");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert!(upstream.requests().is_empty(), "upstream got {:?}", upstream.requests());
}

#[test]
fn mock_disabled_adds_header_and_proxies() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(raw_hello("{}"))).unwrap();

    let resp = client::get(envoy.http_port(), "/path?q=1").unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "upstream ok");
    let req = upstream.last_request().unwrap();
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/path?q=1");
    assert_eq!(req.header("hello"), Some("world"));

    // Bodies (fixed and chunked by Envoy), keep-alive reuse, per-prefix responses, the
    // access log with the route name and a `|` cluster name are all covered below.
    let resp = client::post(envoy.http_port(), "/post", "payload").unwrap();
    assert_eq!(resp.status, 200);
    let req = upstream.last_request().unwrap();
    assert_eq!((req.method.as_str(), req.body_text().as_str()), ("POST", "payload"));
    assert_eq!(upstream.requests().len(), 2);
    assert!(envoy.wait_for_access_log("route=default", Duration::from_secs(10)), "{}", envoy.access_log());
}

#[test]
fn routes_virtual_hosts_and_higress_cluster_names() {
    let upstream = Upstream::start();
    upstream.respond(
        "/teapot",
        wasmplug_testkit::upstream::UpstreamResponse::new(418, "short and stout").header("x-up", "1"),
    );
    let cluster = "outbound|8080||token.example.com";
    let config = EnvoyConfig::new()
        .virtual_host(VirtualHost::new("api", ["api.example.com"]).route(Route::new("api-route", "/", cluster)))
        .virtual_host(VirtualHost::new("other", ["*"]).route(Route::new("catch-all", "/", "upstream")))
        .cluster(cluster, upstream.port())
        .cluster("upstream", upstream.port())
        .filter(raw_hello(""));
    let envoy = Envoy::start(config).unwrap();

    let resp = client::get_host(envoy.http_port(), "api.example.com", "/teapot/1").unwrap();
    assert_eq!(resp.status, 418);
    assert_eq!(resp.text(), "short and stout");
    assert_eq!(resp.header("x-up"), Some("1"));
    let resp =
        client::request(envoy.http_port(), "GET", "/x").host("else.example.com").header("X-Test", "a").send().unwrap();
    assert_eq!(resp.status, 200);
    let req = upstream.last_request().unwrap();
    assert_eq!(req.header("x-test"), Some("a"));
    assert_eq!(req.header("hello"), Some("world"));

    assert!(envoy.wait_for_access_log("route=catch-all", Duration::from_secs(10)), "{}", envoy.access_log());
    let log = envoy.access_log();
    assert!(log.contains(&format!("route=api-route cluster={cluster}")), "{log}");
    assert!(envoy.stats().contains("cluster.outbound|8080||token.example.com."), "no stats for {cluster}");
}

#[test]
fn invalid_config_is_rejected() {
    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(raw_hello(r#"{"mockEnable":"yes"}"#)));
    assert!(log.contains("raw-hello: invalid plugin configuration"), "{log}");
    assert!(log.contains("Unable to create Wasm plugin raw-hello"), "{log}");
}
