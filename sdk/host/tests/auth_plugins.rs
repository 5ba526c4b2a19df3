//! basic-auth and key-auth through the host, asserting what their Envoy tests assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{upstream_ok, vm};
use wasmplug_host::{Exchange, Request, Vm};

const CONSUMER1: &str = "Basic YWRtaW46MTIzNDU2";
const CONSUMER2: &str = "Basic Z3Vlc3Q6YWJj";
const WRONG_PASSWORD: &str = "Basic YWRtaW46d3Jvbmc=";
const BASIC_CONSUMERS: &str = r#""consumers": [
    {"name": "consumer1", "credential": "admin:123456"},
    {"name": "consumer2", "credential": "guest:abc"}]"#;
const KEY1: &str = "2bda943c-ba2b-11ec-ba07-00163e1250b5";
const KEY2: &str = "c8c8e9ca-558e-4a2d-bb62-e700dcc40e35";
const KEY_CONSUMERS: &str = r#""consumers": [
    {"name": "consumer1", "credential": "2bda943c-ba2b-11ec-ba07-00163e1250b5"},
    {"name": "consumer2", "credential": "c8c8e9ca-558e-4a2d-bb62-e700dcc40e35"}]"#;

fn send(vm: &mut Vm, request: Request) -> Exchange {
    vm.run(&request, &mut upstream_ok()).unwrap()
}

#[track_caller]
fn assert_denied(ex: &Exchange, status: u16, body: &str, realm: &str) {
    assert_eq!((ex.response.status, ex.response.text().as_str()), (status, body));
    let challenge = (status == 401).then(|| format!("{realm} realm=MSE Gateway"));
    assert_eq!(ex.response.get_header("www-authenticate"), challenge.as_deref());
    assert!(ex.upstream_request.is_none());
}

#[test]
fn basic_auth_global_and_per_route() {
    const NO_CREDENTIALS: &str = "Request denied by Basic Auth check. No Basic Authentication information found.";
    const INVALID: &str = "Request denied by Basic Auth check. Invalid username and/or password.";
    const UNAUTHORIZED: &str = "Request denied by Basic Auth check. Unauthorized consumer.";
    let mut global = vm("basic-auth", &format!(r#"{{ {BASIC_CONSUMERS}, "global_auth": true }}"#));
    let ok = send(&mut global, Request::get("/x").header("authorization", CONSUMER1));
    assert_eq!((ok.response.status, ok.response.text().as_str()), (200, "upstream ok"));
    let forwarded = ok.upstream_request.unwrap();
    assert_eq!(forwarded.header_all("x-mse-consumer"), ["consumer1"]);
    assert_eq!(forwarded.header("authorization"), Some(CONSUMER1));
    let replaced = send(
        &mut global,
        Request::get("/y").header("authorization", "basic Z3Vlc3Q6YWJj").header("x-mse-consumer", "consumer1"),
    );
    assert_eq!(replaced.upstream_request.unwrap().header_all("x-mse-consumer"), ["consumer2"]);
    assert_denied(&send(&mut global, Request::get("/x")), 401, NO_CREDENTIALS, "Basic");
    let bearer = Request::get("/x").header("authorization", "Bearer YWRtaW46MTIzNDU2");
    assert_denied(&send(&mut global, bearer), 401, NO_CREDENTIALS, "Basic");
    assert_denied(
        &send(&mut global, Request::get("/x").header("authorization", WRONG_PASSWORD)),
        401,
        INVALID,
        "Basic",
    );

    let config = format!(
        r#"{{ {BASIC_CONSUMERS}, "_rules_": [
            {{"_match_route_": ["route-a"], "allow": ["consumer1"]}},
            {{"_match_route_": ["route-b"], "allow": ["consumer2"]}}] }}"#
    );
    let mut routes = vm("basic-auth", &config);
    let a = send(&mut routes, Request::get("/a").route("route-a").header("authorization", CONSUMER1));
    assert_eq!(a.upstream_request.unwrap().header("x-mse-consumer"), Some("consumer1"));
    let denied = send(&mut routes, Request::get("/a").route("route-a").header("authorization", CONSUMER2));
    assert_denied(&denied, 403, UNAUTHORIZED, "Basic");
    let plain = send(&mut routes, Request::get("/plain").route("plain-route").header("authorization", WRONG_PASSWORD));
    assert_eq!(plain.response.status, 200);
    assert_eq!(plain.upstream_request.unwrap().header("x-mse-consumer"), None);

    let err = common::plugin("basic-auth")
        .start(wasmplug_host::VmOptions::default().configuration(format!(
            r#"{{ {BASIC_CONSUMERS}, "_rules_": [{{"_match_route_": ["r"], "allow": ["nobody"]}}] }}"#
        )))
        .err()
        .unwrap();
    assert!(err.to_string().contains("invalid configuration at `_rules_[0].allow[0]`: unknown consumer `nobody`"));
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
