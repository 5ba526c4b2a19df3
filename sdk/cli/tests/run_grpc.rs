//! gRPC callouts in `wasmplug run` and in Envoy: the same plugin (`grpc-plugin`, on plain
//! proxy-wasm) calls the same h2c gRPC service through both, and everything observable must
//! match: what the client gets, what the upstream receives, what the gRPC service receives.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gateway;

use std::time::Duration;

use gateway::{Gateway, s, write};
use wasmplug_testkit::client;
use wasmplug_testkit::grpc::GrpcEcho;
use wasmplug_testkit::upstream::Upstream;
use wasmplug_testkit::wasm::plugin_module;
use wasmplug_testkit::{Envoy, EnvoyConfig, WasmFilter};

/// Envoy sends the cluster name as `:authority`, and the h2 server refuses one with `|` in it.
const CLUSTER: &str = "grpc-echo";

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

/// What one request looked like from outside: the client's answer, the upstream's request
/// (its `x-grpc-*` headers) and the calls the gRPC service received.
fn observe(port: u16, upstream: &Upstream, echo: &GrpcEcho, path: &str, headers: &[(&str, &str)]) -> String {
    upstream.clear_requests();
    let before = echo.calls().len();
    let mut request = client::request(port, "GET", path).timeout(Duration::from_secs(20));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let seen = upstream.last_request().map(|r| {
        let mut grpc: Vec<_> = r.headers.iter().filter(|(k, _)| k.starts_with("x-grpc-")).cloned().collect();
        grpc.sort();
        grpc
    });
    // The service may still be reading a call that timed out.
    std::thread::sleep(Duration::from_millis(50));
    let calls: Vec<String> = echo.calls()[before..]
        .iter()
        .map(|c| {
            let messages: Vec<String> = c.messages.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect();
            format!("{} x-from={:?} te={:?} {messages:?}", c.path, c.header("x-from"), c.header("te"))
        })
        .collect();
    format!("{path}: {} {:?} upstream {seen:?} grpc {calls:?}", response.status, response.text())
}

#[test]
fn grpc_callouts_behave_in_wasmplug_run_as_in_envoy() {
    let tmp = tempfile::tempdir().unwrap();
    let (upstream, echo) = (Upstream::start(), GrpcEcho::start());
    let module = plugin_module("grpc-plugin");

    let filter = WasmFilter::new("grpc-plugin", &module).configuration(CLUSTER);
    let config = EnvoyConfig::proxy_to(upstream.port()).grpc_cluster(CLUSTER, echo.port()).filter(filter);
    let envoy = Envoy::start(config).unwrap();
    let gw = Gateway::start(&[
        s("--upstream"),
        format!("http://127.0.0.1:{}", upstream.port()),
        s("--plugin"),
        module.display().to_string(),
        s("--config"),
        write(tmp.path(), "cluster.txt", CLUSTER),
        s("--cluster"),
        format!("{CLUSTER}=http://127.0.0.1:{}", echo.port()),
    ]);

    let mut differences = Vec::new();
    let mut from_envoy = Vec::new();
    for (path, headers) in requests() {
        let envoy_saw = observe(envoy.http_port(), &upstream, &echo, path, &headers);
        let run_saw = observe(gw.port, &upstream, &echo, path, &headers);
        if envoy_saw != run_saw {
            differences.push(format!("envoy: {envoy_saw}\n  run:   {run_saw}"));
        }
        from_envoy.push(envoy_saw);
    }
    assert!(differences.is_empty(), "wasmplug run differs from Envoy:\n{}\n{}", differences.join("\n"), gw.output());

    // And what they agree on is what the plugin is meant to do.
    let expected = [
        r#"/greet: 200 "upstream ok" upstream Some([("x-grpc-reply", "hello /greet")]) grpc ["/echo.Echo/Say x-from=Some(\"grpc-plugin\") te=Some(\"trailers\") [\"/greet\"]"]"#,
        r#"/denied: 503 "grpc status 7: denied{via_upstream}""#,
        r#"/late: 503 "grpc status 13: response_timeout""#,
        r#"/chat: 200 "upstream ok" upstream Some([("x-grpc-messages", "echo: one|echo: two"), ("x-grpc-metadata", "initial=yes;trailing=2"), ("x-grpc-status", "0")])"#,
        r#"/plain: 200 "upstream ok" upstream Some([]) grpc []"#,
    ];
    for want in expected {
        assert!(from_envoy.iter().any(|seen| seen.starts_with(want)), "{want}\nnot in:\n{}", from_envoy.join("\n"));
    }
}
