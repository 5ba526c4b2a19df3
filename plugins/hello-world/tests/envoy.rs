//! hello-world (built with the SDK) in a real Envoy: global config, per-route and per-domain
//! rules, running without any configuration, and a refused configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_testkit::upstream::Upstream;
use wasmplug_testkit::{Envoy, EnvoyConfig, Route, VirtualHost, WasmFilter, client, wasm};

fn hello(configuration: Option<&str>) -> WasmFilter {
    let filter = WasmFilter::new("hello-world", wasm::plugin_module("hello-world"));
    match configuration {
        Some(c) => filter.configuration(c),
        None => filter,
    }
}

#[test]
fn mock_enable_answers_locally_and_default_adds_header() {
    let upstream = Upstream::start();
    let envoy =
        Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(hello(Some(r#"{"mockEnable":true}"#)))).unwrap();
    let resp = client::get(envoy.http_port(), "/").unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "hello world"));
    assert!(upstream.requests().is_empty());

    let upstream = Upstream::start();
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(hello(Some("{}")))).unwrap();
    let resp = client::post(envoy.http_port(), "/p", "body").unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "upstream ok"));
    let req = upstream.last_request().unwrap();
    assert_eq!(req.header("hello"), Some("world"));
    assert_eq!(req.body_text(), "body");
}

#[test]
fn runs_without_any_configuration() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(hello(None))).unwrap();
    let resp = client::get(envoy.http_port(), "/").unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(upstream.last_request().unwrap().header("hello"), Some("world"));
}

#[test]
fn rules_select_config_per_route_and_domain() {
    let upstream = Upstream::start();
    let config = r#"{
        "mockEnable": false,
        "_rules_": [
            {"_match_route_": ["mocked-route"], "mockEnable": true},
            {"_match_domain_": ["*.mock.test"], "mockEnable": true}
        ]}"#;
    let envoy = Envoy::start(
        EnvoyConfig::new()
            .filter(hello(Some(config)))
            .cluster("upstream", upstream.port())
            .virtual_host(VirtualHost::new("mock-domain", ["api.mock.test", "api.mock.test:*"]).route(Route::new(
                "domain-route",
                "/",
                "upstream",
            )))
            .virtual_host(
                VirtualHost::new("default", ["*"])
                    .route(Route::new("mocked-route", "/mock", "upstream"))
                    .route(Route::new("plain-route", "/", "upstream")),
            ),
    )
    .unwrap();
    let port = envoy.http_port();

    let by_route = client::get(port, "/mock/x").unwrap();
    assert_eq!(by_route.text(), "hello world");
    let by_domain = client::get_host(port, "api.mock.test", "/other").unwrap();
    assert_eq!(by_domain.text(), "hello world");
    let global = client::get(port, "/other").unwrap();
    assert_eq!(global.text(), "upstream ok");
    let forwarded = upstream.requests();
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert_eq!(forwarded[0].header("hello"), Some("world"));
}

#[test]
fn rules_only_config_leaves_other_requests_untouched() {
    let upstream = Upstream::start();
    let config = r#"{"_rules_": [{"_match_route_": ["mocked-route"], "mockEnable": true}]}"#;
    let envoy = Envoy::start(
        EnvoyConfig::new().filter(hello(Some(config))).cluster("upstream", upstream.port()).virtual_host(
            VirtualHost::new("default", ["*"])
                .route(Route::new("mocked-route", "/mock", "upstream"))
                .route(Route::new("plain-route", "/", "upstream")),
        ),
    )
    .unwrap();
    assert_eq!(client::get(envoy.http_port(), "/mock").unwrap().text(), "hello world");
    assert_eq!(client::get(envoy.http_port(), "/plain").unwrap().text(), "upstream ok");
    assert_eq!(upstream.last_request().unwrap().header("hello"), None);
}

#[test]
fn wrong_type_is_refused_and_the_log_names_the_field() {
    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(hello(Some(r#"{"mockEnable":"yes"}"#))));
    assert!(log.contains("invalid configuration at `mockEnable`"), "{log}");
    assert!(log.contains("expected a boolean"), "{log}");
    assert!(log.contains("Unable to create Wasm plugin hello-world"), "{log}");

    let log = Envoy::start_expect_rejection(
        EnvoyConfig::proxy_to(1).filter(hello(Some(r#"{"_rules_":[{"_match_route_":["r"],"mockEnabled":true}]}"#))),
    );
    assert!(log.contains("invalid configuration at `_rules_[0].mockEnabled`: unknown field"), "{log}");
}
