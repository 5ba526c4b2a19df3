//! transformer in a real Envoy: header, query and JSON body transformations of requests and
//! responses, non-JSON bodies left alone, per-route rules, and refused configurations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use wasmplug_testkit::upstream::{RecordedRequest, Upstream, UpstreamResponse};
use wasmplug_testkit::{Envoy, EnvoyConfig, Route, VirtualHost, WasmFilter, client, wasm};

fn transformer(configuration: &str) -> WasmFilter {
    WasmFilter::new("transformer", wasm::plugin_module("transformer")).configuration(configuration)
}

fn start(upstream: &Upstream, configuration: &str) -> Envoy {
    Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(transformer(configuration))).unwrap()
}

/// A body the upstream received must not carry a stale `content-length`.
fn assert_length_consistent(req: &RecordedRequest) {
    if let Some(len) = req.header("content-length") {
        assert_eq!(len.parse::<usize>().unwrap(), req.body.len(), "{req:?}");
    }
}

#[test]
fn header_operations_are_seen_by_the_upstream() {
    let upstream = Upstream::start();
    let config = r#"{"reqRules": [
        {"operate": "remove", "headers": [{"key": "X-Remove"}]},
        {"operate": "rename", "headers": [{"oldKey": "x-old", "newKey": "x-new"}]},
        {"operate": "replace", "headers": [{"key": "x-env", "newValue": "prod"}, {"key": "x-absent", "newValue": "no"}]},
        {"operate": "add", "headers": [{"key": "x-added", "value": 1}, {"key": "x-keep", "value": "overwritten"}]},
        {"operate": "append", "headers": [{"key": "x-list", "appendValue": "b"}]},
        {"operate": "map", "mapSource": "headers", "headers": [{"fromKey": "x-user", "toKey": "x-user-copy"}]},
        {"operate": "map", "mapSource": "querys", "headers": [{"fromKey": "tenant", "toKey": "x-tenant"}]}
    ]}"#;
    let envoy = start(&upstream, config);
    let resp = client::request(envoy.http_port(), "GET", "/h?tenant=t%201")
        .header("x-remove", "gone")
        .header("x-old", "moved")
        .header("x-env", "dev")
        .header("x-keep", "original")
        .header("x-list", "a")
        .header("x-user", "alice")
        .send()
        .unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "upstream ok"));
    let req = upstream.last_request().unwrap();
    assert_eq!(req.header("x-remove"), None);
    assert_eq!(req.header("x-old"), None);
    assert_eq!(req.header("x-new"), Some("moved"));
    assert_eq!(req.header_all("x-env"), vec!["prod"]);
    assert_eq!(req.header("x-absent"), None, "replace does not create");
    assert_eq!(req.header("x-added"), Some("1"));
    assert_eq!(req.header_all("x-keep"), vec!["original"], "add does not overwrite");
    let list: Vec<&str> = req.header_all("x-list").iter().flat_map(|v| v.split(',')).map(str::trim).collect();
    assert_eq!(list, vec!["a", "b"]);
    assert_eq!(req.header("x-user"), Some("alice"));
    assert_eq!(req.header("x-user-copy"), Some("alice"));
    assert_eq!(req.header("x-tenant"), Some("t 1"));
    assert_eq!(req.path, "/h?tenant=t%201");
}

#[test]
fn query_operations_rewrite_the_upstream_path() {
    let upstream = Upstream::start();
    let config = r#"{"reqRules": [
        {"operate": "remove", "querys": [{"key": "debug"}]},
        {"operate": "rename", "querys": [{"oldKey": "q", "newKey": "query"}]},
        {"operate": "replace", "querys": [{"key": "page", "newValue": "2"}]},
        {"operate": "add", "querys": [{"key": "lang", "value": "en us"}, {"key": "sort", "value": "no"}]},
        {"operate": "append", "querys": [{"key": "tag", "appendValue": "b"}]},
        {"operate": "map", "mapSource": "headers", "querys": [{"fromKey": "x-region", "toKey": "region"}]}
    ]}"#;
    let envoy = start(&upstream, config);
    let resp = client::request(envoy.http_port(), "GET", "/search?debug=1&q=a%2Fb&sort=asc&page=1&debug=2&tag=a")
        .header("x-region", "eu")
        .send()
        .unwrap();
    assert_eq!(resp.status, 200);
    let req = upstream.last_request().unwrap();
    assert_eq!(req.path, "/search?query=a%2Fb&sort=asc&page=2&tag=a&lang=en%20us&tag=b&region=eu");

    // Untouched parameters keep their exact encoding (`%7e`, bare `y`); new ones go at the end.
    client::get(envoy.http_port(), "/plain?x=%7e&y").unwrap();
    assert_eq!(upstream.last_request().unwrap().path, "/plain?x=%7e&y&lang=en%20us&sort=no&tag=b");
}

#[test]
fn json_request_body_fields_are_rewritten() {
    let upstream = Upstream::start();
    let config = r#"{"reqRules": [
        {"operate": "remove", "body": [{"key": "password"}, {"key": "user.secret"}]},
        {"operate": "rename", "body": [{"oldKey": "user.name", "newKey": "profile.fullName"}]},
        {"operate": "replace", "body": [{"key": "count", "newValue": "5", "value_type": "number"}]},
        {"operate": "add", "body": [{"key": "meta.source", "value": "gateway", "value_type": "string"},
                                    {"key": "user.id", "value": "overwritten"}]},
        {"operate": "append", "body": [{"key": "tags", "appendValue": "b"}]},
        {"operate": "map", "mapSource": "headers", "body": [{"fromKey": "x-request-tag", "toKey": "meta.tag"}]},
        {"operate": "map", "mapSource": "body", "body": [{"fromKey": "user.id", "toKey": "owner"}]}
    ]}"#;
    let envoy = start(&upstream, config);
    let sent = json!({"password": "p", "count": 1, "tags": "a",
                      "user": {"id": 7, "name": "Alice", "secret": "s"}});
    let resp = client::request(envoy.http_port(), "POST", "/json")
        .header("content-type", "application/json")
        .header("x-request-tag", "t1")
        .body(sent.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status, 200);
    let req = upstream.last_request().unwrap();
    let got: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        got,
        json!({"count": 5, "tags": ["a", "b"], "user": {"id": 7},
               "profile": {"fullName": "Alice"}, "meta": {"source": "gateway", "tag": "t1"}, "owner": 7})
    );
    assert_length_consistent(&req);
    assert_ne!(req.header("content-length"), Some(sent.to_string().len().to_string().as_str()));
    assert_eq!(req.header("content-type"), Some("application/json"));
}

#[test]
fn json_response_body_field_change_is_seen_by_the_client() {
    let upstream = Upstream::start();
    upstream.respond(
        "/api",
        UpstreamResponse::new(200, r#"{"data":{"token":"secret","id":1},"status":"ok"}"#)
            .header("content-type", "application/json; charset=utf-8")
            .header("x-internal", "1"),
    );
    let config = r#"{"respRules": [
        {"operate": "remove", "headers": [{"key": "x-internal"}], "body": [{"key": "data.token"}]},
        {"operate": "rename", "body": [{"oldKey": "status", "newKey": "result.status"}]},
        {"operate": "add", "headers": [{"key": "x-transformed", "value": "yes"}],
                           "body": [{"key": "data.flags", "value": "[1,2]", "value_type": "array"}]}
    ]}"#;
    let envoy = start(&upstream, config);
    let resp = client::get(envoy.http_port(), "/api/x").unwrap();
    assert_eq!(resp.status, 200);
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body, json!({"data": {"id": 1, "flags": [1, 2]}, "result": {"status": "ok"}}));
    assert_eq!(resp.header("x-internal"), None);
    assert_eq!(resp.header("x-transformed"), Some("yes"));
    if let Some(len) = resp.header("content-length") {
        assert_eq!(len.parse::<usize>().unwrap(), resp.body.len());
    }

    // A non-JSON response keeps its body (header rules still apply).
    upstream.respond("/text", UpstreamResponse::new(200, "data.token stays").header("content-type", "text/plain"));
    let resp = client::get(envoy.http_port(), "/text").unwrap();
    assert_eq!(resp.text(), "data.token stays");
    assert_eq!(resp.header("content-length"), Some("16"));
    assert_eq!(resp.header("x-transformed"), Some("yes"));
}

#[test]
fn non_json_bodies_pass_through_untouched() {
    let upstream = Upstream::start();
    let config = r#"{"reqRules": [
        {"operate": "remove", "body": [{"key": "password"}]},
        {"operate": "add", "headers": [{"key": "x-seen", "value": "1"}], "body": [{"key": "added", "value": "x"}]}
    ]}"#;
    let envoy = start(&upstream, config);

    let text = r#"{"password":"p"} as text"#;
    client::request(envoy.http_port(), "POST", "/text").header("content-type", "text/plain").body(text).send().unwrap();
    let req = upstream.last_request().unwrap();
    assert_eq!(req.body_text(), text);
    assert_eq!(req.header("content-length"), Some(text.len().to_string().as_str()));
    assert_eq!(req.header("x-seen"), Some("1"));

    let broken = r#"{"password": "p", "#;
    client::request(envoy.http_port(), "POST", "/broken")
        .header("content-type", "application/json")
        .body(broken)
        .send()
        .unwrap();
    let req = upstream.last_request().unwrap();
    assert_eq!(req.body_text(), broken);
    assert_length_consistent(&req);

    // Valid JSON that no rule changes keeps its exact bytes (formatting included).
    let spaced = "{ \"keep\" : 1,\n  \"added\": true }";
    client::request(envoy.http_port(), "POST", "/same")
        .header("content-type", "application/json")
        .body(spaced)
        .send()
        .unwrap();
    let req = upstream.last_request().unwrap();
    assert_eq!(req.body_text(), spaced);
    assert_length_consistent(&req);
}

#[test]
fn rules_configure_two_routes_differently() {
    let upstream = Upstream::start();
    let config = r#"{
        "reqRules": [{"operate": "add", "headers": [{"key": "x-global", "value": "g"}]}],
        "_rules_": [
            {"_match_route_": ["route-a"],
             "reqRules": [{"operate": "add", "headers": [{"key": "x-route", "value": "a"}]},
                          {"operate": "remove", "querys": [{"key": "secret"}]}]},
            {"_match_route_": ["route-b"],
             "reqRules": [{"operate": "add", "body": [{"key": "route", "value": "b"}]}],
             "respRules": [{"operate": "add", "headers": [{"key": "x-route-b", "value": "1"}]}]}
        ]}"#;
    let envoy = Envoy::start(
        EnvoyConfig::new().filter(transformer(config)).cluster("upstream", upstream.port()).virtual_host(
            VirtualHost::new("default", ["*"])
                .route(Route::new("route-a", "/a", "upstream"))
                .route(Route::new("route-b", "/b", "upstream"))
                .route(Route::new("other", "/", "upstream")),
        ),
    )
    .unwrap();
    let port = envoy.http_port();

    client::get(port, "/a?secret=1&keep=2").unwrap();
    let a = upstream.last_request().unwrap();
    assert_eq!((a.header("x-route"), a.header("x-global")), (Some("a"), None));
    assert_eq!(a.path, "/a?keep=2");

    let resp = client::request(port, "POST", "/b?secret=1")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(resp.header("x-route-b"), Some("1"));
    let b = upstream.last_request().unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&b.body).unwrap(), json!({"route": "b"}));
    assert_eq!((b.header("x-route"), b.header("x-global")), (None, None));
    assert_eq!(b.path, "/b?secret=1");

    let resp = client::get(port, "/other?secret=1").unwrap();
    assert_eq!(resp.header("x-route-b"), None);
    let other = upstream.last_request().unwrap();
    assert_eq!((other.header("x-global"), other.header("x-route")), (Some("g"), None));
    assert_eq!(other.path, "/other?secret=1");
}

#[test]
fn refused_configs_name_the_field() {
    let missing = r#"{"reqRules": [
        {"operate": "add", "headers": [{"key": "x-a", "value": "1"}]},
        {"operate": "rename", "headers": [{"oldKey": "x-old"}]}]}"#;
    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(transformer(missing)));
    assert!(
        log.contains("invalid configuration at `reqRules[1].headers[0].newKey`: required when operate is `rename`"),
        "{log}"
    );
    assert!(log.contains("Unable to create Wasm plugin transformer"), "{log}");

    let wrong_type = r#"{"reqRules": [{"operate": "remove", "headers": [{"key": ["x"]}]}]}"#;
    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(transformer(wrong_type)));
    assert!(log.contains("invalid configuration at `reqRules[0].headers[0].key`"), "{log}");

    let in_rule = r#"{"_rules_": [{"_match_route_": ["r"],
        "respRules": [{"operate": "remove", "querys": [{"key": "a"}]}]}]}"#;
    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(transformer(in_rule)));
    assert!(
        log.contains(
            "invalid configuration at `_rules_[0].respRules[0].querys`: query parameters can only be changed in reqRules"
        ),
        "{log}"
    );
}
