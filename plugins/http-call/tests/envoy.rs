//! http-call in a real Envoy: a second upstream plays the token service, reached through the
//! cluster name Higress generates (`outbound|8080||token.static`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use wasmplug_testkit::upstream::{Upstream, UpstreamResponse};
use wasmplug_testkit::{Envoy, EnvoyConfig, Route, VirtualHost, WasmFilter, client, wasm};

const TOKEN_CLUSTER: &str = "outbound|8080||token.static";
const CONFIG: &str = r#"{"serviceSource":"ip","serviceName":"token","servicePort":8080,
    "requestPath":"/token?scope=api","tokenHeader":"x-token","timeoutMs":1000}"#;

fn filter(configuration: &str) -> WasmFilter {
    WasmFilter::new("http-call", wasm::plugin_module("http-call")).configuration(configuration)
}

fn token_service() -> Upstream {
    let token = Upstream::start();
    token.respond("/token", UpstreamResponse::new(200, "").header("x-token", "secret-abc"));
    token
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn token_is_copied_onto_the_request() {
    let (upstream, token) = (Upstream::start(), token_service());
    let envoy = Envoy::start(
        EnvoyConfig::proxy_to(upstream.port()).cluster(TOKEN_CLUSTER, token.port()).filter(filter(CONFIG)),
    )
    .unwrap();
    let resp = client::request(envoy.http_port(), "GET", "/api").header("x-token", "forged").send().unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "upstream ok"));

    let call = token.last_request().unwrap();
    assert_eq!((call.method.as_str(), call.path.as_str()), ("GET", "/token?scope=api"));
    assert_eq!(call.header("host"), Some("token"));
    let req = upstream.last_request().unwrap();
    assert_eq!(req.path, "/api");
    assert_eq!(req.header_all("x-token"), vec!["secret-abc"]);
}

#[test]
fn post_body_passes_through_intact_after_the_callout() {
    // Envoy's default, and Higress's `allow_on_headers_stop_iteration: true`.
    for higress_mode in [false, true] {
        let (upstream, token) = (Upstream::start(), token_service());
        let mut wasm = filter(CONFIG);
        if higress_mode {
            wasm = wasm.allow_on_headers_stop_iteration(true);
        }
        let envoy =
            Envoy::start(EnvoyConfig::proxy_to(upstream.port()).cluster(TOKEN_CLUSTER, token.port()).filter(wasm))
                .unwrap();
        let body: String = (0..20_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let resp = client::post(envoy.http_port(), "/upload", body.clone()).unwrap();
        assert_eq!(resp.status, 200, "higress_mode={higress_mode}");
        let req = upstream.last_request().unwrap();
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/upload"));
        assert_eq!(req.header("x-token"), Some("secret-abc"));
        assert_eq!(req.body_text(), body, "higress_mode={higress_mode}");
        assert_eq!(token.requests().len(), 1);
    }
}

#[test]
fn token_service_error_answers_500() {
    let upstream = Upstream::start();
    let token = Upstream::start();
    token.respond("/token", UpstreamResponse::new(503, "down").header("x-token", "ignored"));
    let envoy = Envoy::start(
        EnvoyConfig::proxy_to(upstream.port()).cluster(TOKEN_CLUSTER, token.port()).filter(filter(CONFIG)),
    )
    .unwrap();
    let resp = client::post(envoy.http_port(), "/api", "payload").unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (500, "http call failed"));
    assert_eq!(token.requests().len(), 1);
    assert!(upstream.requests().is_empty());
}

#[test]
fn unreachable_token_service_answers_500_without_hanging() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(
        EnvoyConfig::proxy_to(upstream.port()).cluster(TOKEN_CLUSTER, closed_port()).filter(filter(CONFIG)),
    )
    .unwrap();
    let started = Instant::now();
    let resp = client::request(envoy.http_port(), "GET", "/api").timeout(Duration::from_secs(5)).send().unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (500, "http call failed"));
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(upstream.requests().is_empty());
}

#[test]
fn unknown_cluster_answers_500() {
    let upstream = Upstream::start();
    // No `outbound|8080||token.static` cluster: Envoy refuses the dispatch itself.
    let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(filter(CONFIG))).unwrap();
    let resp = client::request(envoy.http_port(), "GET", "/api").timeout(Duration::from_secs(5)).send().unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (500, "http call failed"));
    assert!(upstream.requests().is_empty());
    assert!(envoy.wait_for_log("dispatch refused by the host", Duration::from_secs(2)), "{}", envoy.logs());
}

#[test]
fn rules_select_the_token_source_per_route() {
    let (upstream, token) = (Upstream::start(), token_service());
    token.respond("/admin-token", UpstreamResponse::new(200, "").header("x-admin-token", "root"));
    let config = r#"{"serviceSource":"ip","serviceName":"token","servicePort":8080,
        "requestPath":"/token","tokenHeader":"x-token",
        "_rules_":[{"_match_route_":["admin"],"requestPath":"/admin-token","tokenHeader":"x-admin-token"}]}"#;
    let envoy = Envoy::start(
        EnvoyConfig::new()
            .filter(filter(config))
            .cluster("upstream", upstream.port())
            .cluster(TOKEN_CLUSTER, token.port())
            .virtual_host(
                VirtualHost::new("default", ["*"])
                    .route(Route::new("admin", "/admin", "upstream"))
                    .route(Route::new("default", "/", "upstream")),
            ),
    )
    .unwrap();
    assert_eq!(client::get(envoy.http_port(), "/admin/x").unwrap().status, 200);
    assert_eq!(client::get(envoy.http_port(), "/other").unwrap().status, 200);

    let calls: Vec<String> = token.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(calls, vec!["/admin-token", "/token"]);
    let forwarded = upstream.requests();
    assert_eq!(forwarded.len(), 2);
    assert_eq!((forwarded[0].header("x-admin-token"), forwarded[0].header("x-token")), (Some("root"), None));
    assert_eq!((forwarded[1].header("x-admin-token"), forwarded[1].header("x-token")), (None, Some("secret-abc")));
}

#[test]
fn missing_service_name_is_refused() {
    let config = r#"{"servicePort":8080,"requestPath":"/token","tokenHeader":"x-token"}"#;
    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(filter(config)));
    assert!(log.contains("invalid configuration at `.`: missing field `serviceName`"), "{log}");
    assert!(log.contains("Unable to create Wasm plugin http-call"), "{log}");

    let config = r#"{"serviceName":"t","servicePort":70000,"requestPath":"/token","tokenHeader":"x-token"}"#;
    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(filter(config)));
    assert!(log.contains("invalid configuration at `servicePort`"), "{log}");

    let config = r#"{"serviceName":"t","servicePort":80,"requestPath":"/token","tokenHeader":"x-token",
        "_rules_":[{"_match_route_":["r"],"serviceSource":"dns"}]}"#;
    let log = Envoy::start_expect_rejection(EnvoyConfig::proxy_to(1).filter(filter(config)));
    assert!(log.contains("invalid configuration at `_rules_[0].domain`: required when serviceSource"), "{log}");
}
