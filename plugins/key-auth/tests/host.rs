//! key-auth through the host, asserting what its Envoy tests assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_host::{Exchange, Request};
use wasmplug_testkit::host::{send, vm};

const KEY1: &str = "2bda943c-ba2b-11ec-ba07-00163e1250b5";
const KEY2: &str = "c8c8e9ca-558e-4a2d-bb62-e700dcc40e35";
const KEY_CONSUMERS: &str = r#""consumers": [
    {"name": "consumer1", "credential": "2bda943c-ba2b-11ec-ba07-00163e1250b5"},
    {"name": "consumer2", "credential": "c8c8e9ca-558e-4a2d-bb62-e700dcc40e35"}]"#;

#[track_caller]
fn assert_denied(ex: &Exchange, status: u16, body: &str, realm: &str) {
    assert_eq!((ex.response.status, ex.response.text().as_str()), (status, body));
    let challenge = (status == 401).then(|| format!("{realm} realm=MSE Gateway"));
    assert_eq!(ex.response.get_header("www-authenticate"), challenge.as_deref());
    assert!(ex.upstream_request.is_none());
}

#[test]
fn key_auth_headers_query_and_routes() {
    const NO_KEY: &str = "Request denied by Key Auth check. No API key found in request.";
    const MULTIPLE: &str = "Request denied by Key Auth check. Multiple API keys found in request.";
    const INVALID: &str = "Request denied by Key Auth check. Invalid API key.";
    const UNAUTHORIZED: &str = "Request denied by Key Auth check. Unauthorized consumer.";
    let mut headers =
        vm("key-auth", &format!(r#"{{ {KEY_CONSUMERS}, "keys": ["x-api-key", "token"], "global_auth": true }}"#));
    let ok = send(&mut headers, Request::get("/x").header("x-api-key", KEY1).header("x-mse-consumer", "consumer2"));
    assert_eq!(ok.upstream_request.unwrap().header_all("x-mse-consumer"), ["consumer1"]);
    let same_twice = Request::get("/z").header("x-api-key", KEY1).header("token", KEY1);
    assert_eq!(send(&mut headers, same_twice).response.status, 200);
    assert_denied(&send(&mut headers, Request::get("/x")), 401, NO_KEY, "Key");
    assert_denied(&send(&mut headers, Request::get(&format!("/x?x-api-key={KEY1}"))), 401, NO_KEY, "Key");
    assert_denied(&send(&mut headers, Request::get("/x").header("x-api-key", "wrong")), 401, INVALID, "Key");
    let two = Request::get("/x").header("x-api-key", KEY1).header("token", KEY2);
    assert_denied(&send(&mut headers, two), 401, MULTIPLE, "Key");

    let config = format!(
        r#"{{ {KEY_CONSUMERS}, "keys": ["apikey"], "in_query": true, "in_header": false, "global_auth": true }}"#
    );
    let mut query = vm("key-auth", &config);
    let encoded = KEY1.replacen('-', "%2D", 1);
    let ok = send(&mut query, Request::get(&format!("/q?a=1&apikey={encoded}")));
    let forwarded = ok.upstream_request.unwrap();
    assert_eq!(forwarded.header("x-mse-consumer"), Some("consumer1"));
    assert_eq!(forwarded.path, format!("/q?a=1&apikey={encoded}"));
    assert_denied(&send(&mut query, Request::get(&format!("/q?apikey={KEY1}&apikey={KEY2}"))), 401, MULTIPLE, "Key");

    let config = format!(
        r#"{{ {KEY_CONSUMERS}, "keys": ["x-api-key", "apikey"], "in_query": true, "_rules_": [
            {{"_match_route_": ["route-a"], "allow": ["consumer1"]}},
            {{"_match_route_": ["route-b"], "allow": ["consumer2"]}}] }}"#
    );
    let mut routes = vm("key-auth", &config);
    let b = send(&mut routes, Request::get(&format!("/b?apikey={KEY2}")).route("route-b"));
    assert_eq!(b.upstream_request.unwrap().header("x-mse-consumer"), Some("consumer2"));
    let denied = send(&mut routes, Request::get("/a").route("route-a").header("x-api-key", KEY2));
    assert_denied(&denied, 403, UNAUTHORIZED, "Key");
    assert_eq!(send(&mut routes, Request::get("/plain").route("plain-route")).response.status, 200);
}
