//! request-block in a real Envoy: each kind of rule, body inspection, case-insensitive
//! matching, per-domain rules and refused configurations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_testkit::upstream::Upstream;
use wasmplug_testkit::{Envoy, EnvoyConfig, Route, VirtualHost, WasmFilter, client, wasm};

fn filter(configuration: &str) -> WasmFilter {
    WasmFilter::new("request-block", wasm::plugin_module("request-block")).configuration(configuration)
}

fn assert_blocked(resp: &client::Response, status: u16, message: &str) {
    assert_eq!((resp.status, resp.text().as_str()), (status, message), "{resp:?}");
}

#[test]
fn each_kind_of_rule_blocks_and_clean_requests_pass() {
    let upstream = Upstream::start();
    let config = r#"{"block_urls":["swagger.html","foo=bar"],"block_exact_urls":["/admin"],
        "block_regexp_urls":["^/v[0-9]+/internal/"],"block_headers":["example-key","example-value"],
        "blocked_code":451,"blocked_message":"blocked"}"#;
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(config))).unwrap();
    let port = envoy.http_port();

    assert_blocked(&client::get(port, "/docs/swagger.html").unwrap(), 451, "blocked");
    assert_blocked(&client::get(port, "/search?q=1&foo=bar").unwrap(), 451, "blocked");
    assert_blocked(&client::get(port, "/admin").unwrap(), 451, "blocked");
    assert_blocked(&client::get(port, "/v2/internal/users").unwrap(), 451, "blocked");
    let by_name = client::request(port, "GET", "/ok").header("example-key", "123").send().unwrap();
    assert_blocked(&by_name, 451, "blocked");
    assert_eq!(by_name.header("content-type"), Some("text/plain; charset=utf-8"));
    let by_value = client::request(port, "GET", "/ok").header("my-header", "an example-value").send().unwrap();
    assert_blocked(&by_value, 451, "blocked");
    assert!(upstream.requests().is_empty());

    // Near misses pass: exact URL with more path, case differences, regex not at the start.
    for path in ["/admin/page", "/Swagger.HTML", "/?foo=Bar", "/api/v2/internal/x", "/ok"] {
        let resp = client::request(port, "GET", path).header("my-header", "fine").send().unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (200, "upstream ok"), "{path}");
    }
    let paths: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/admin/page", "/Swagger.HTML", "/?foo=Bar", "/api/v2/internal/x", "/ok"]);
}

#[test]
fn default_answer_is_403_without_body() {
    let upstream = Upstream::start();
    let envoy =
        Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(r#"{"block_urls":["/secret"]}"#))).unwrap();
    let resp = client::get(envoy.http_port(), "/secret/x").unwrap();
    assert_blocked(&resp, 403, "");
    assert!(upstream.requests().is_empty());
}

#[test]
fn bodies_are_inspected() {
    let upstream = Upstream::start();
    let config = r#"{"block_bodies":["DROP TABLE"],"blocked_message":"bad body"}"#;
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(config))).unwrap();
    let port = envoy.http_port();

    let padding = "x".repeat(40_000);
    let resp = client::post(port, "/sql", format!("{padding} DROP TABLE users; {padding}")).unwrap();
    assert_blocked(&resp, 403, "bad body");
    assert!(upstream.requests().is_empty());

    let clean = format!("{padding} SELECT 1; {padding}");
    let resp = client::post(port, "/sql", clean.clone()).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "upstream ok"));
    let req = upstream.last_request().unwrap();
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/sql"));
    assert_eq!(req.body_text(), clean);
    // Bodies are matched case-sensitively by default, and GETs have no body to inspect.
    assert_eq!(client::post(port, "/sql", "drop table users").unwrap().status, 200);
    assert_eq!(client::get(port, "/DROP%20TABLE").unwrap().status, 200);
}

#[test]
fn case_insensitive_matching() {
    let upstream = Upstream::start();
    let config = r#"{"block_urls":["swagger.html","foo=bar"],"block_headers":["Evil-Bot"],
        "block_regexp_urls":["^/Private"],"block_bodies":["hello world"],"case_sensitive":false}"#;
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(config))).unwrap();
    let port = envoy.http_port();

    assert_eq!(client::get(port, "/Swagger.HTML").unwrap().status, 403);
    assert_eq!(client::get(port, "/?FOO=Bar").unwrap().status, 403);
    assert_eq!(client::get(port, "/PRIVATE/data").unwrap().status, 403);
    assert_eq!(client::request(port, "GET", "/").header("user-agent", "EVIL-BOT/1.0").send().unwrap().status, 403);
    assert_eq!(client::post(port, "/", "say Hello World").unwrap().status, 403);
    assert!(upstream.requests().is_empty());
    assert_eq!(client::post(port, "/fine", "hello there").unwrap().status, 200);
    assert_eq!(upstream.last_request().unwrap().body_text(), "hello there");
}

#[test]
fn rules_configure_two_domains_differently() {
    let upstream = Upstream::start();
    let config = r#"{"_rules_":[
        {"_match_domain_":["*.example.com"],"block_urls":["swagger.html"],"blocked_code":404},
        {"_match_domain_":["test.com"],"block_bodies":["hello world"]}]}"#;
    let envoy = Envoy::start(
        EnvoyConfig::new()
            .filter(filter(config))
            .cluster("upstream", upstream.port())
            .virtual_host(VirtualHost::new("default", ["*"]).route(Route::new("default", "/", "upstream"))),
    )
    .unwrap();
    let port = envoy.http_port();

    let req = |host: &str, method: &str, path: &str, body: &str| {
        client::request(port, method, path).host(host).body(body).send().unwrap().status
    };
    assert_eq!(req("api.example.com", "GET", "/swagger.html", ""), 404);
    assert_eq!(req("api.example.com", "POST", "/", "hello world"), 200);
    assert_eq!(req("test.com", "GET", "/swagger.html", ""), 200);
    assert_eq!(req("test.com", "POST", "/", "hello world"), 403);
    assert_eq!(req("other.org", "POST", "/swagger.html", "hello world"), 200);

    let seen: Vec<(String, String)> =
        upstream.requests().into_iter().map(|r| (r.header("host").unwrap_or_default().to_string(), r.path)).collect();
    assert_eq!(
        seen,
        vec![
            ("api.example.com".to_string(), "/".to_string()),
            ("test.com".to_string(), "/swagger.html".to_string()),
            ("other.org".to_string(), "/swagger.html".to_string()),
        ]
    );
}

#[test]
fn bad_configs_are_refused_and_the_log_names_the_field() {
    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(filter("{}")));
    assert!(
        log.contains(
            "invalid configuration at `.`: at least one of block_urls, block_exact_urls, block_regexp_urls, \
             block_headers, block_bodies is required"
        ),
        "{log}"
    );
    assert!(log.contains("Unable to create Wasm plugin request-block"), "{log}");

    let log = Envoy::start_expect_rejection(
        EnvoyConfig::proxy_to(1).filter(filter(r#"{"block_regexp_urls":["^/ok","(unclosed"]}"#)),
    );
    assert!(log.contains("invalid configuration at `block_regexp_urls[1]`:"), "{log}");

    let log = Envoy::start_expect_rejection(
        EnvoyConfig::proxy_to(1).filter(filter(r#"{"_rules_":[{"_match_domain_":["a.com"],"block_urls":"/x"}]}"#)),
    );
    assert!(log.contains("invalid configuration at `_rules_[0].block_urls`"), "{log}");
}

#[test]
fn bodies_over_envoys_buffer_limit_are_refused_when_bodies_are_inspected() {
    let upstream = Upstream::start();
    let envoy =
        Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(r#"{"block_bodies":["x"]}"#))).unwrap();
    let resp = client::post(envoy.http_port(), "/big", "a".repeat(3 * 1024 * 1024)).unwrap();
    assert_eq!(resp.status, 413);
    assert!(upstream.requests().is_empty());

    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(r#"{"block_urls":["x"]}"#))).unwrap();
    let resp = client::post(envoy.http_port(), "/big", "a".repeat(3 * 1024 * 1024)).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(upstream.last_request().unwrap().body.len(), 3 * 1024 * 1024);
}
