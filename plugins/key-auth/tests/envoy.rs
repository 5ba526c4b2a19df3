//! key-auth in a real Envoy: global authentication from headers (explicit, or implied by an
//! unset global_auth without rules), keys in query parameters, per-route allow lists, and
//! refused configurations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_testkit::client::{self, Response};
use wasmplug_testkit::upstream::Upstream;
use wasmplug_testkit::{Envoy, EnvoyConfig, Route, VirtualHost, WasmFilter, wasm};

const KEY1: &str = "2bda943c-ba2b-11ec-ba07-00163e1250b5";
const KEY2: &str = "c8c8e9ca-558e-4a2d-bb62-e700dcc40e35";

const CONSUMERS: &str = r#""consumers": [
    {"name": "consumer1", "credential": "2bda943c-ba2b-11ec-ba07-00163e1250b5"},
    {"name": "consumer2", "credential": "c8c8e9ca-558e-4a2d-bb62-e700dcc40e35"}]"#;

const NO_KEY: &str = "Request denied by Key Auth check. No API key found in request.";
const MULTIPLE: &str = "Request denied by Key Auth check. Multiple API keys found in request.";
const INVALID: &str = "Request denied by Key Auth check. Invalid API key.";
const UNAUTHORIZED: &str = "Request denied by Key Auth check. Unauthorized consumer.";

fn key_auth(configuration: &str) -> WasmFilter {
    WasmFilter::new("key-auth", wasm::plugin_module("key-auth")).configuration(configuration)
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = client::request(port, "GET", path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().unwrap()
}

#[track_caller]
fn assert_denied(resp: &Response, status: u16, body: &str) {
    assert_eq!((resp.status, resp.text().as_str()), (status, body));
    let challenge = if status == 401 { Some("Key realm=MSE Gateway") } else { None };
    assert_eq!(resp.header("www-authenticate"), challenge);
}

#[test]
fn global_auth_with_keys_in_headers() {
    let upstream = Upstream::start();
    let config = format!(r#"{{ {CONSUMERS}, "keys": ["x-api-key", "token"], "global_auth": true }}"#);
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(key_auth(&config))).unwrap();
    let port = envoy.http_port();

    let ok = get(port, "/x", &[("x-api-key", KEY1), ("x-mse-consumer", "consumer2")]);
    assert_eq!((ok.status, ok.text().as_str()), (200, "upstream ok"));
    let forwarded = upstream.last_request().unwrap();
    assert_eq!(forwarded.header_all("x-mse-consumer"), ["consumer1"], "set by the plugin, replacing the client's");
    assert_eq!(forwarded.header("x-api-key"), Some(KEY1), "the key is not stripped");
    assert_eq!(get(port, "/y", &[("Token", KEY2)]).status, 200);
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), Some("consumer2"));
    // The same key twice is one key.
    assert_eq!(get(port, "/z", &[("x-api-key", KEY1), ("token", KEY1)]).status, 200);

    assert_denied(&get(port, "/x", &[]), 401, NO_KEY);
    // The query is not looked at unless in_query is true.
    assert_denied(&get(port, &format!("/x?x-api-key={KEY1}"), &[]), 401, NO_KEY);
    assert_denied(&get(port, "/x", &[("x-api-key", "wrong")]), 401, INVALID);
    assert_denied(&get(port, "/x", &[("x-api-key", KEY1), ("token", KEY2)]), 401, MULTIPLE);

    let forwarded = upstream.requests();
    assert_eq!(forwarded.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/x", "/y", "/z"]);
}

#[test]
fn keys_in_query_parameters() {
    let upstream = Upstream::start();
    let config =
        format!(r#"{{ {CONSUMERS}, "keys": ["apikey"], "in_query": true, "in_header": false, "global_auth": true }}"#);
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(key_auth(&config))).unwrap();
    let port = envoy.http_port();

    // Percent-encoded values are decoded before the comparison (`%2D` is `-`).
    let encoded = KEY1.replacen('-', "%2D", 1);
    let ok = get(port, &format!("/q?a=1&apikey={encoded}"), &[]);
    assert_eq!((ok.status, ok.text().as_str()), (200, "upstream ok"));
    let forwarded = upstream.last_request().unwrap();
    assert_eq!(forwarded.header("x-mse-consumer"), Some("consumer1"));
    assert_eq!(forwarded.path, format!("/q?a=1&apikey={encoded}"), "the query is forwarded unchanged");

    assert_denied(&get(port, "/q", &[("apikey", KEY1)]), 401, NO_KEY);
    assert_denied(&get(port, "/q?apikey=nope", &[]), 401, INVALID);
    assert_denied(&get(port, &format!("/q?apikey={KEY1}&apikey={KEY2}"), &[]), 401, MULTIPLE);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn unset_global_auth_without_rules_authenticates_every_request() {
    // As in Higress: no global_auth and no _rules_ means the plugin acts globally.
    let upstream = Upstream::start();
    let config = format!(r#"{{ {CONSUMERS}, "keys": ["x-api-key"] }}"#);
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(key_auth(&config))).unwrap();
    let port = envoy.http_port();

    assert_denied(&get(port, "/x", &[]), 401, NO_KEY);
    assert_denied(&get(port, "/x", &[("x-api-key", "wrong")]), 401, INVALID);
    assert_eq!(get(port, "/y", &[("x-api-key", KEY2)]).status, 200);
    assert_eq!(upstream.last_request().unwrap().header_all("x-mse-consumer"), ["consumer2"]);
    assert_eq!(upstream.requests().len(), 1);
    drop(envoy);

    // Without consumers the configuration is accepted, but nobody can authenticate.
    let envoy =
        Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(key_auth(r#"{"keys": ["x-api-key"]}"#))).unwrap();
    let port = envoy.http_port();
    assert_denied(&get(port, "/x", &[]), 401, NO_KEY);
    assert_denied(&get(port, "/x", &[("x-api-key", KEY1)]), 401, INVALID);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn global_auth_false_without_rules_passes() {
    let upstream = Upstream::start();
    let config = format!(r#"{{ {CONSUMERS}, "keys": ["x-api-key"], "global_auth": false }}"#);
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(key_auth(&config))).unwrap();
    let port = envoy.http_port();

    let resp = get(port, "/x", &[]);
    assert_eq!((resp.status, resp.text().as_str()), (200, "upstream ok"));
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), None);
    // Keys are not looked at either, valid or not.
    assert_eq!(get(port, "/y", &[("x-api-key", "wrong")]).status, 200);
    assert_eq!(get(port, "/z", &[("x-api-key", KEY1)]).status, 200);
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), None);
    assert_eq!(upstream.requests().len(), 3);
}

#[test]
fn rules_allow_consumers_per_route_and_other_routes_pass() {
    let upstream = Upstream::start();
    let config = format!(
        r#"{{ {CONSUMERS}, "keys": ["x-api-key", "apikey"], "in_query": true, "_rules_": [
            {{"_match_route_": ["route-a"], "allow": ["consumer1"]}},
            {{"_match_route_": ["route-b"], "allow": ["consumer2"]}}] }}"#
    );
    let envoy = Envoy::start(
        EnvoyConfig::new().filter(key_auth(&config)).cluster("upstream", upstream.port()).virtual_host(
            VirtualHost::new("default", ["*"])
                .route(Route::new("route-a", "/a", "upstream"))
                .route(Route::new("route-b", "/b", "upstream"))
                .route(Route::new("plain-route", "/", "upstream")),
        ),
    )
    .unwrap();
    let port = envoy.http_port();

    assert_eq!(get(port, "/a", &[("x-api-key", KEY1)]).status, 200);
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), Some("consumer1"));
    assert_eq!(get(port, &format!("/b?apikey={KEY2}"), &[]).status, 200);
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), Some("consumer2"));

    assert_denied(&get(port, "/a", &[("x-api-key", KEY2)]), 403, UNAUTHORIZED);
    assert_denied(&get(port, &format!("/b?apikey={KEY1}"), &[]), 403, UNAUTHORIZED);
    assert_denied(&get(port, "/a", &[]), 401, NO_KEY);
    assert_denied(&get(port, "/b", &[("x-api-key", "wrong")]), 401, INVALID);

    // No rule matches: no authentication and nothing added.
    assert_eq!(get(port, "/plain", &[]).status, 200);
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), None);
    assert_eq!(get(port, "/plain", &[("x-api-key", "wrong")]).status, 200);
    let forwarded = upstream.requests();
    let paths: Vec<_> = forwarded.iter().map(|r| r.path.split('?').next().unwrap()).collect();
    assert_eq!(paths, ["/a", "/b", "/plain", "/plain"]);
}

#[test]
fn refused_configs_name_the_field() {
    let refused = |config: &str| Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(key_auth(config)));

    let log = refused(&format!(
        r#"{{ {CONSUMERS}, "keys": ["x-api-key"], "_rules_": [{{"_match_route_": ["r"], "allow": ["consumer1", "ghost"]}}] }}"#
    ));
    assert!(log.contains("invalid configuration at `_rules_[0].allow[1]`: unknown consumer `ghost`"), "{log}");
    assert!(log.contains("Unable to create Wasm plugin key-auth"), "{log}");

    let log = refused(
        r#"{"keys": ["k"], "global_auth": true, "consumers": [
            {"name": "c1", "credential": "s1"}, {"name": "c2", "credential": "s1"}]}"#,
    );
    assert!(log.contains("invalid configuration at `consumers[1].credential`: same credential"), "{log}");

    let log = refused(r#"{"keys": ["k"], "in_header": false}"#);
    assert!(
        log.contains("invalid configuration at `in_header`: at least one of in_header and in_query must be true"),
        "{log}"
    );

    let log = refused(&format!(r#"{{ {CONSUMERS}, "global_auth": true }}"#));
    assert!(log.contains("missing field `keys`"), "{log}");

    let log = refused(r#"{"keys": "x-api-key"}"#);
    assert!(log.contains("invalid configuration at `keys`"), "{log}");
}
