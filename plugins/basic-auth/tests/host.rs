//! basic-auth through the host, asserting what its Envoy tests assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_host::{Exchange, Request};
use wasmplug_testkit::host::{send, vm};

const CONSUMER1: &str = "Basic YWRtaW46MTIzNDU2";
const CONSUMER2: &str = "Basic Z3Vlc3Q6YWJj";
const WRONG_PASSWORD: &str = "Basic YWRtaW46d3Jvbmc=";
const BASIC_CONSUMERS: &str = r#""consumers": [
    {"name": "consumer1", "credential": "admin:123456"},
    {"name": "consumer2", "credential": "guest:abc"}]"#;

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

    let err = wasmplug_testkit::host::plugin("basic-auth")
        .start(wasmplug_host::VmOptions::default().configuration(format!(
            r#"{{ {BASIC_CONSUMERS}, "_rules_": [{{"_match_route_": ["r"], "allow": ["nobody"]}}] }}"#
        )))
        .err()
        .unwrap();
    assert!(err.to_string().contains("invalid configuration at `_rules_[0].allow[0]`: unknown consumer `nobody`"));
}
