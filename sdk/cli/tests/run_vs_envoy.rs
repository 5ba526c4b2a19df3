//! `wasmplug run` against Envoy with plugins built elsewhere: the same module, configuration and
//! services behind both, and everything observable must match (what the client gets, what the
//! upstream and the called services receive). `grpc-plugin` (plain proxy-wasm) makes gRPC calls
//! and streams; `go-plugin` (Go, raw ABI, built as Higress builds its plugins) rewrites a body
//! and makes an HTTP callout slower than the plugin's 1 s budget per call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gateway;

use std::path::Path;
use std::time::Duration;

use gateway::{Gateway, s, write};
use wasmplug_testkit::client;
use wasmplug_testkit::grpc::GrpcEcho;
use wasmplug_testkit::upstream::{Upstream, UpstreamResponse};
use wasmplug_testkit::wasm::{go_module, plugin_module, workspace_root};
use wasmplug_testkit::{Envoy, EnvoyConfig, WasmFilter};

/// Envoy sends the cluster name as `:authority`, and the h2 server refuses one with `|` in it.
const CLUSTER: &str = "grpc-echo";

/// `wasmplug run` with one plugin, its configuration, and one cluster on 127.0.0.1:`port`.
fn run_gateway(dir: &Path, upstream: &Upstream, module: &Path, config: &str, cluster: &str, port: u16) -> Gateway {
    Gateway::start(&[
        s("--upstream"),
        format!("http://127.0.0.1:{}", upstream.port()),
        s("--plugin"),
        module.display().to_string(),
        s("--config"),
        write(dir, "plugin.conf", config),
        s("--cluster"),
        format!("{cluster}=http://127.0.0.1:{port}"),
    ])
}

/// Observes each request through Envoy (on `envoy_port`) and through `gw`; fails on any
/// difference and returns what Envoy showed.
fn same_in_both<R>(gw: &Gateway, requests: &[R], observe: impl Fn(u16, &R) -> String, envoy_port: u16) -> Vec<String> {
    let mut differences = Vec::new();
    let mut from_envoy = Vec::new();
    for request in requests {
        let envoy_saw = observe(envoy_port, request);
        let run_saw = observe(gw.port, request);
        if envoy_saw != run_saw {
            differences.push(format!("envoy: {envoy_saw}\n  run:   {run_saw}"));
        }
        from_envoy.push(envoy_saw);
    }
    assert!(differences.is_empty(), "wasmplug run differs from Envoy:\n{}\n{}", differences.join("\n"), gw.output());
    from_envoy
}

/// The requests, by the headers that choose what the plugin does.
fn requests() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        ("/greet", vec![("x-grpc", "unary")]),
        ("/denied", vec![("x-grpc", "unary"), ("x-grpc-method", "Fail")]),
        ("/missing", vec![("x-grpc", "unary"), ("x-grpc-method", "Nope")]),
        ("/late", vec![("x-grpc", "unary"), ("x-grpc-method", "Slow"), ("x-grpc-timeout-ms", "300")]),
        ("/chat", vec![("x-grpc", "stream")]),
        ("/plain", vec![]),
    ]
}

/// Sends a request; returns the client's answer and what the upstream received (its headers
/// starting with `prefix`, and its body).
fn exchange(port: u16, upstream: &Upstream, request: &TestRequest, prefix: &str) -> String {
    upstream.clear_requests();
    let (method, path, headers, body) = request;
    let mut request = client::request(port, method, path).timeout(Duration::from_secs(20));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if !body.is_empty() {
        request = request.body(*body);
    }
    let response = request.send().unwrap();
    let seen = upstream.last_request().map(|r| {
        let mut ours: Vec<_> = r.headers.iter().filter(|(k, _)| k.starts_with(prefix)).cloned().collect();
        ours.sort();
        (ours, r.body_text())
    });
    format!("{method} {path}: {} {:?} upstream {seen:?}", response.status, response.text())
}

/// Method, path, headers, body.
type TestRequest = (&'static str, &'static str, Vec<(&'static str, &'static str)>, &'static str);

/// What one request looked like from outside, with the calls the gRPC service received.
fn observe(
    port: u16,
    upstream: &Upstream,
    echo: &GrpcEcho,
    path: &'static str,
    headers: &[(&'static str, &'static str)],
) -> String {
    let before = echo.calls().len();
    let seen = exchange(port, upstream, &("GET", path, headers.to_vec(), ""), "x-grpc-");
    // The service may still be reading a call that timed out.
    std::thread::sleep(Duration::from_millis(50));
    let calls: Vec<String> = echo.calls()[before..]
        .iter()
        .map(|c| {
            let messages: Vec<String> = c.messages.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect();
            format!("{} x-from={:?} te={:?} {messages:?}", c.path, c.header("x-from"), c.header("te"))
        })
        .collect();
    format!("{seen} grpc {calls:?}")
}

#[test]
fn grpc_callouts_behave_in_wasmplug_run_as_in_envoy() {
    let tmp = tempfile::tempdir().unwrap();
    let (upstream, echo) = (Upstream::start(), GrpcEcho::start());
    let module = plugin_module("grpc-plugin");

    let filter = WasmFilter::new("grpc-plugin", &module).configuration(CLUSTER);
    let config = EnvoyConfig::proxy_to(upstream.port()).grpc_cluster(CLUSTER, echo.port()).filter(filter);
    let envoy = Envoy::start(config).unwrap();
    let gw = run_gateway(tmp.path(), &upstream, &module, CLUSTER, CLUSTER, echo.port());

    let from_envoy = same_in_both(
        &gw,
        &requests(),
        |port, (path, headers)| observe(port, &upstream, &echo, path, headers),
        envoy.http_port(),
    );

    // And what they agree on is what the plugin is meant to do.
    let expected = [
        r#"GET /greet: 200 "upstream ok" upstream Some(([("x-grpc-reply", "hello /greet")], "")) grpc ["/echo.Echo/Say x-from=Some(\"grpc-plugin\") te=Some(\"trailers\") [\"/greet\"]"]"#,
        r#"GET /denied: 503 "grpc status 7: denied{via_upstream}""#,
        r#"GET /late: 503 "grpc status 13: response_timeout""#,
        r#"GET /chat: 200 "upstream ok" upstream Some(([("x-grpc-messages", "echo: one|echo: two"), ("x-grpc-metadata", "initial=yes;trailing=2"), ("x-grpc-status", "0")], ""))"#,
        r#"GET /plain: 200 "upstream ok" upstream Some(([], "")) grpc []"#,
    ];
    for want in expected {
        assert!(from_envoy.iter().any(|seen| seen.starts_with(want)), "{want}\nnot in:\n{}", from_envoy.join("\n"));
    }
}

const TOKEN_CLUSTER: &str = "outbound|8080||token.static";

#[test]
fn a_go_plugin_with_a_body_and_a_slow_callout_behaves_in_wasmplug_run_as_in_envoy() {
    let tmp = tempfile::tempdir().unwrap();
    let module = go_module(&workspace_root().join("sdk/host/tests/go-plugin")).unwrap();
    let (upstream, token) = (Upstream::start(), Upstream::start());
    // Slower than the plugin's 1 s budget per call: waiting must not count against it.
    let slow = UpstreamResponse::new(200, "").header("x-token", "t-9").delayed(Duration::from_millis(1500));
    token.respond("/token", slow);

    let filter = WasmFilter::new("go-plugin", &module).configuration("/deny");
    let envoy =
        Envoy::start(EnvoyConfig::proxy_to(upstream.port()).cluster(TOKEN_CLUSTER, token.port()).filter(filter))
            .unwrap();
    let gw = run_gateway(tmp.path(), &upstream, &module, "/deny", TOKEN_CLUSTER, token.port());
    let requests: Vec<TestRequest> = vec![
        ("GET", "/call", vec![], ""),
        ("GET", "/call", vec![("x-go-timeout-ms", "300")], ""),
        ("POST", "/upper", vec![], "go body"),
        ("POST", "/upload", vec![], "go body"),
        ("GET", "/deny/x", vec![], ""),
    ];
    let from_envoy =
        same_in_both(&gw, &requests, |port, request| exchange(port, &upstream, request, "x-go-"), envoy.http_port());
    let expected = [
        r#"GET /call: 200 "upstream ok" upstream Some(([("x-go-plugin", "5"), ("x-go-token", "t-9")], ""))"#,
        // Envoy answers a callout past its timeout itself (504, no x-token): no failure.
        r#"GET /call: 200 "upstream ok" upstream Some(([("x-go-plugin", "5"), ("x-go-timeout-ms", "300"), ("x-go-token", "")], ""))"#,
        r#"POST /upper: 200 "upstream ok" upstream Some(([("x-go-plugin", "5")], "GO BODY"))"#,
        r#"GET /deny/x: 403 "denied by go-plugin\n" upstream None"#,
    ];
    for want in expected {
        assert!(from_envoy.iter().any(|seen| seen == want), "{want}\nnot in:\n{}", from_envoy.join("\n"));
    }
}
