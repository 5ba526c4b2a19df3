//! basic-auth in a real Envoy: global authentication (explicit, or implied by an unset
//! global_auth without rules), per-route allow lists (with and without global_auth), and
//! refused configurations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_testkit::client::{self, Response};
use wasmplug_testkit::upstream::Upstream;
use wasmplug_testkit::{Envoy, EnvoyConfig, Route, VirtualHost, WasmFilter, wasm};

/// `admin:123456` (consumer1).
const CONSUMER1: &str = "Basic YWRtaW46MTIzNDU2";
/// `guest:abc` (consumer2).
const CONSUMER2: &str = "Basic Z3Vlc3Q6YWJj";
/// `admin:wrong`.
const WRONG_PASSWORD: &str = "Basic YWRtaW46d3Jvbmc=";

const CONSUMERS: &str = r#""consumers": [
    {"name": "consumer1", "credential": "admin:123456"},
    {"name": "consumer2", "credential": "guest:abc"}]"#;

const NO_CREDENTIALS: &str = "Request denied by Basic Auth check. No Basic Authentication information found.";
const INVALID: &str = "Request denied by Basic Auth check. Invalid username and/or password.";
const UNAUTHORIZED: &str = "Request denied by Basic Auth check. Unauthorized consumer.";

fn basic_auth(configuration: &str) -> WasmFilter {
    WasmFilter::new("basic-auth", wasm::plugin_module("basic-auth")).configuration(configuration)
}

fn get(port: u16, path: &str, authorization: Option<&str>) -> Response {
    let request = client::request(port, "GET", path);
    match authorization {
        Some(value) => request.header("authorization", value),
        None => request,
    }
    .send()
    .unwrap()
}

#[track_caller]
fn assert_denied(resp: &Response, status: u16, body: &str) {
    assert_eq!((resp.status, resp.text().as_str()), (status, body));
    let challenge = if status == 401 { Some("Basic realm=MSE Gateway") } else { None };
    assert_eq!(resp.header("www-authenticate"), challenge);
}

/// Envoy with three routes: `/a` (route-a), `/b` (route-b) and everything else (plain-route).
fn three_routes(upstream: &Upstream, configuration: &str) -> Envoy {
    Envoy::start(
        EnvoyConfig::new().filter(basic_auth(configuration)).cluster("upstream", upstream.port()).virtual_host(
            VirtualHost::new("default", ["*"])
                .route(Route::new("route-a", "/a", "upstream"))
                .route(Route::new("route-b", "/b", "upstream"))
                .route(Route::new("plain-route", "/", "upstream")),
        ),
    )
    .unwrap()
}

#[test]
fn global_auth_accepts_valid_credentials_only() {
    let upstream = Upstream::start();
    let config = format!(r#"{{ {CONSUMERS}, "global_auth": true }}"#);
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(basic_auth(&config))).unwrap();
    let port = envoy.http_port();

    let ok = get(port, "/x", Some(CONSUMER1));
    assert_eq!((ok.status, ok.text().as_str()), (200, "upstream ok"));
    assert_eq!(ok.header("www-authenticate"), None);
    let forwarded = upstream.last_request().unwrap();
    assert_eq!(forwarded.header_all("x-mse-consumer"), ["consumer1"]);
    assert_eq!(forwarded.header("authorization"), Some(CONSUMER1), "the credentials are not stripped");

    // The scheme is case-insensitive; a consumer name sent by the client is replaced.
    let resp = client::request(port, "GET", "/y")
        .header("authorization", "basic Z3Vlc3Q6YWJj")
        .header("x-mse-consumer", "consumer1")
        .send()
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(upstream.last_request().unwrap().header_all("x-mse-consumer"), ["consumer2"]);

    assert_denied(&get(port, "/x", None), 401, NO_CREDENTIALS);
    assert_denied(&get(port, "/x", Some("Bearer YWRtaW46MTIzNDU2")), 401, NO_CREDENTIALS);
    assert_denied(&get(port, "/x", Some(WRONG_PASSWORD)), 401, INVALID);
    assert_denied(&get(port, "/x", Some("Basic not-base64!")), 401, INVALID);

    // Only the two authenticated requests reached the upstream.
    let forwarded = upstream.requests();
    assert_eq!(forwarded.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/x", "/y"]);
}

#[test]
fn unset_global_auth_without_rules_authenticates_every_request() {
    // As in Higress: no global_auth and no _rules_ means the plugin acts globally.
    let upstream = Upstream::start();
    let config = format!(r#"{{ {CONSUMERS} }}"#);
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(basic_auth(&config))).unwrap();
    let port = envoy.http_port();

    assert_denied(&get(port, "/x", None), 401, NO_CREDENTIALS);
    assert_denied(&get(port, "/x", Some(WRONG_PASSWORD)), 401, INVALID);
    assert_eq!(get(port, "/y", Some(CONSUMER2)).status, 200);
    assert_eq!(upstream.last_request().unwrap().header_all("x-mse-consumer"), ["consumer2"]);
    assert_eq!(upstream.requests().len(), 1);
    drop(envoy);

    // Without consumers the configuration is accepted, but nobody can authenticate.
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(basic_auth("{}"))).unwrap();
    let port = envoy.http_port();
    assert_denied(&get(port, "/x", None), 401, NO_CREDENTIALS);
    assert_denied(&get(port, "/x", Some(CONSUMER1)), 401, INVALID);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn global_auth_false_without_rules_passes() {
    let upstream = Upstream::start();
    let config = format!(r#"{{ {CONSUMERS}, "global_auth": false }}"#);
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(basic_auth(&config))).unwrap();
    let port = envoy.http_port();

    let resp = get(port, "/x", None);
    assert_eq!((resp.status, resp.text().as_str()), (200, "upstream ok"));
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), None);
    // Credentials are not looked at either, valid or not.
    assert_eq!(get(port, "/y", Some(WRONG_PASSWORD)).status, 200);
    assert_eq!(get(port, "/z", Some(CONSUMER1)).status, 200);
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), None);
    assert_eq!(upstream.requests().len(), 3);
}

#[test]
fn rules_allow_consumers_per_route_and_other_routes_pass() {
    let upstream = Upstream::start();
    let config = format!(
        r#"{{ {CONSUMERS}, "_rules_": [
            {{"_match_route_": ["route-a"], "allow": ["consumer1"]}},
            {{"_match_route_": ["route-b"], "allow": ["consumer2"]}}] }}"#
    );
    let envoy = three_routes(&upstream, &config);
    let port = envoy.http_port();

    let a = get(port, "/a", Some(CONSUMER1));
    assert_eq!((a.status, a.text().as_str()), (200, "upstream ok"));
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), Some("consumer1"));
    let b = get(port, "/b", Some(CONSUMER2));
    assert_eq!(b.status, 200);
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), Some("consumer2"));

    assert_denied(&get(port, "/a", Some(CONSUMER2)), 403, UNAUTHORIZED);
    assert_denied(&get(port, "/b", Some(CONSUMER1)), 403, UNAUTHORIZED);
    assert_denied(&get(port, "/a", None), 401, NO_CREDENTIALS);
    assert_denied(&get(port, "/b", Some(WRONG_PASSWORD)), 401, INVALID);

    // No rule matches: no authentication, nothing added, even with (wrong) credentials.
    assert_eq!(get(port, "/plain", None).status, 200);
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), None);
    assert_eq!(get(port, "/plain", Some(WRONG_PASSWORD)).status, 200);
    let forwarded = upstream.requests();
    assert_eq!(forwarded.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/a", "/b", "/plain", "/plain"]);
}

#[test]
fn global_auth_with_a_rule_restricts_that_route_only() {
    let upstream = Upstream::start();
    let config = format!(
        r#"{{ {CONSUMERS}, "global_auth": true,
            "_rules_": [{{"_match_route_": ["route-a"], "allow": ["consumer1"]}}] }}"#
    );
    let envoy = three_routes(&upstream, &config);
    let port = envoy.http_port();

    assert_eq!(get(port, "/a", Some(CONSUMER1)).status, 200);
    assert_denied(&get(port, "/a", Some(CONSUMER2)), 403, UNAUTHORIZED);
    // Routes without a rule still need a valid consumer, any of them.
    assert_eq!(get(port, "/plain", Some(CONSUMER2)).status, 200);
    assert_eq!(upstream.last_request().unwrap().header("x-mse-consumer"), Some("consumer2"));
    assert_denied(&get(port, "/plain", None), 401, NO_CREDENTIALS);
    assert_eq!(upstream.requests().len(), 2);
}

#[test]
fn refused_configs_name_the_field() {
    let refused = |config: &str| Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(basic_auth(config)));

    let log = refused(
        r#"{"global_auth": true, "consumers": [
            {"name": "c1", "credential": "a:1"}, {"name": "c1", "credential": "b:2"}]}"#,
    );
    assert!(log.contains("invalid configuration at `consumers[1].name`: duplicate consumer name `c1`"), "{log}");
    assert!(log.contains("Unable to create Wasm plugin basic-auth"), "{log}");

    let log = refused(&format!(r#"{{ {CONSUMERS}, "_rules_": [{{"_match_route_": ["r"], "allow": ["nobody"]}}] }}"#));
    assert!(log.contains("invalid configuration at `_rules_[0].allow[0]`: unknown consumer `nobody`"), "{log}");

    let log = refused(r#"{"global_auth": true, "consumers": [{"name": "c1", "credential": "no-colon"}]}"#);
    assert!(log.contains("invalid configuration at `consumers[0].credential`: expected `user:password`"), "{log}");

    let log = refused(r#"{"global_auth": "yes", "consumers": []}"#);
    assert!(log.contains("invalid configuration at `global_auth`"), "{log}");
}
