//! hello-world through the host, asserting what its Envoy tests assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_host::{Callback, HostError, Request, VmOptions};
use wasmplug_testkit::host::{upstream_ok, vm};

#[test]
fn mock_enable_answers_locally_and_default_adds_header() {
    let mut mocked = vm("hello-world", r#"{"mockEnable":true}"#);
    let ex = mocked.run(&Request::get("/"), &mut upstream_ok()).unwrap();
    assert_eq!((ex.response.status, ex.response.text().as_str()), (200, "hello world"));
    assert_eq!(ex.response.get_header("content-type"), Some("text/plain"));
    assert!(ex.upstream_request.is_none());

    let mut plain = vm("hello-world", "{}");
    let ex = plain.run(&Request::post("/p", "body"), &mut upstream_ok()).unwrap();
    assert_eq!((ex.response.status, ex.response.text().as_str()), (200, "upstream ok"));
    let req = ex.upstream_request.unwrap();
    assert_eq!(req.header("hello"), Some("world"));
    assert_eq!(req.body_text(), "body");
}

#[test]
fn runs_without_any_configuration() {
    let mut vm = vm("hello-world", "");
    let ex = vm.run(&Request::get("/"), &mut upstream_ok()).unwrap();
    assert_eq!(ex.response.status, 200);
    assert_eq!(ex.upstream_request.unwrap().header("hello"), Some("world"));
}

#[test]
fn rules_select_config_per_route_and_domain() {
    let config = r#"{
        "mockEnable": false,
        "_rules_": [
            {"_match_route_": ["mocked-route"], "mockEnable": true},
            {"_match_domain_": ["*.mock.test"], "mockEnable": true}
        ]}"#;
    let mut vm = vm("hello-world", config);
    let by_route = vm.run(&Request::get("/mock/x").route("mocked-route"), &mut upstream_ok()).unwrap();
    assert_eq!(by_route.response.text(), "hello world");
    let by_domain =
        vm.run(&Request::get("/other").host("api.mock.test").route("domain-route"), &mut upstream_ok()).unwrap();
    assert_eq!(by_domain.response.text(), "hello world");
    let global = vm.run(&Request::get("/other").route("plain-route"), &mut upstream_ok()).unwrap();
    assert_eq!(global.response.text(), "upstream ok");
    assert_eq!(global.upstream_request.unwrap().header("hello"), Some("world"));
}

#[test]
fn rules_only_config_leaves_other_requests_untouched() {
    let mut vm = vm("hello-world", r#"{"_rules_": [{"_match_route_": ["mocked-route"], "mockEnable": true}]}"#);
    let mock = vm.run(&Request::get("/mock").route("mocked-route"), &mut upstream_ok()).unwrap();
    assert_eq!(mock.response.text(), "hello world");
    let plain = vm.run(&Request::get("/plain").route("plain-route"), &mut upstream_ok()).unwrap();
    assert_eq!(plain.response.text(), "upstream ok");
    assert_eq!(plain.upstream_request.unwrap().header("hello"), None);
}

#[test]
fn wrong_type_is_refused_and_the_log_names_the_field() {
    let plugin = wasmplug_testkit::host::plugin("hello-world");
    let err = plugin.start(VmOptions::default().configuration(r#"{"mockEnable":"yes"}"#)).err().unwrap();
    assert!(matches!(err, HostError::Refused { phase: Callback::Configure, .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("plugin `hello-world`"), "{text}");
    assert!(text.contains("invalid configuration at `mockEnable`"), "{text}");
    assert!(text.contains("expected a boolean"), "{text}");

    let config = r#"{"_rules_":[{"_match_route_":["r"],"mockEnabled":true}]}"#;
    let err = plugin.start(VmOptions::default().configuration(config)).err().unwrap();
    assert!(err.to_string().contains("invalid configuration at `_rules_[0].mockEnabled`: unknown field"), "{err}");
}
