//! Differential conformance: the same plugin, configuration and requests through a real
//! Envoy 1.40 (the `wasmplug-testkit` harness) and through the host; the status, headers and body
//! the client sees and what the upstream (and a callout's cluster) receives must match.
//!
//! Compared after removing what only the transport or Envoy itself adds (see README.md,
//! "Differences from Envoy"): `date`, `server`, `x-envoy-*`, `x-request-id`, framing headers
//! (`content-length`, `transfer-encoding`, `connection`), `x-envoy-internal` (Envoy's callout
//! client adds it) and the client's own `user-agent`,
//! `accept`, `accept-encoding`. Bodies are compared byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use wasmplug_host::{
    CalloutReply, FailStrategy, FnCallouts, HttpCall, HttpResponse, Plugin, Request, UpstreamRequest, VmOptions,
};
use wasmplug_testkit::client;
use wasmplug_testkit::upstream::{RecordedRequest, Upstream, UpstreamResponse};
use wasmplug_testkit::{Envoy, EnvoyConfig, WasmFilter, wasm};

const TOKEN_CLUSTER: &str = "outbound|8080||token.static";
const IGNORED: [&str; 12] = [
    "x-envoy-internal",
    "date",
    "server",
    "x-envoy-upstream-service-time",
    "x-envoy-expected-rq-timeout-ms",
    "x-request-id",
    "content-length",
    "transfer-encoding",
    "connection",
    "user-agent",
    "accept",
    "accept-encoding",
];

/// One plugin setup and the requests sent to it.
struct Case {
    name: &'static str,
    module: PathBuf,
    config: String,
    fail_open: bool,
    requests: Vec<Request>,
}

fn case(name: &'static str, plugin: &str, config: &str, requests: Vec<Request>) -> Case {
    Case { name, module: wasm::plugin_module(plugin), config: config.to_string(), fail_open: false, requests }
}

/// What the upstream answers, per path (the same for Envoy's upstream and the host's).
fn upstream_answer(path: &str) -> UpstreamResponse {
    if path.starts_with("/broken") {
        UpstreamResponse::new(502, "raw upstream error").header("x-upstream", "1").header("content-type", "text/plain")
    } else if path.starts_with("/api-json") {
        UpstreamResponse::new(200, r#"{"data":{"token":"secret","id":1},"status":"ok"}"#)
            .header("content-type", "application/json")
            .header("x-internal", "1")
    } else {
        UpstreamResponse::default()
    }
}

fn normalized(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| !IGNORED.contains(&k.as_str()))
        .collect();
    out.sort();
    out
}

/// The recording upstream's answer, as the host's upstream.
fn host_upstream(request: &UpstreamRequest) -> HttpResponse {
    let answer = upstream_answer(&request.path);
    let mut response = HttpResponse::new(answer.status, answer.body.clone());
    for (k, v) in &answer.headers {
        response = response.header(k.clone(), v.clone());
    }
    response.header("content-length", answer.body.len().to_string())
}

/// Forwards a callout to the real token service (what Envoy's cluster does).
fn forward_callout(token_port: u16) -> impl FnMut(&HttpCall) -> CalloutReply + Send {
    move |call: &HttpCall| {
        if call.cluster != TOKEN_CLUSTER {
            return CalloutReply::UnknownCluster;
        }
        let mut request = client::request(token_port, call.method(), call.path()).host(call.authority());
        for (k, v) in call.headers.iter().filter(|(k, _)| !k.starts_with(':')) {
            request = request.header(k.clone(), v.clone());
        }
        match request.send() {
            Ok(resp) => {
                let mut response = HttpResponse::new(resp.status, resp.body);
                for (k, v) in resp.headers {
                    response = response.header(k, v);
                }
                CalloutReply::Response(response)
            }
            Err(_) => CalloutReply::Failure,
        }
    }
}

fn token_service() -> Upstream {
    let token = Upstream::start();
    token.respond("/token", UpstreamResponse::new(200, "").header("x-token", "secret-abc"));
    token.respond("/down", UpstreamResponse::new(503, "down"));
    token
}

fn send_to_envoy(port: u16, request: &Request) -> client::Response {
    let mut req = client::request(port, &request.method, &request.path).host(request.authority.clone());
    for (k, v) in &request.headers {
        req = req.header(k.clone(), v.clone());
    }
    if !request.body.is_empty() {
        req = req.body(request.body.clone());
    }
    req.send().unwrap()
}

fn run_case(case: &Case) -> Vec<String> {
    let mut differences = Vec::new();
    let (upstream, token) = (Upstream::start(), token_service());
    for request in &case.requests {
        let answer = upstream_answer(&request.path);
        upstream.respond(request.path.clone(), answer);
    }
    let filter = WasmFilter::new(case.name, &case.module).configuration(case.config.clone()).fail_open(case.fail_open);
    let envoy =
        Envoy::start(EnvoyConfig::proxy_to(upstream.port()).cluster(TOKEN_CLUSTER, token.port()).filter(filter))
            .unwrap();

    let plugin = Plugin::load(case.name, &case.module).unwrap();
    let strategy = if case.fail_open { FailStrategy::FailOpen } else { FailStrategy::FailClose };
    let options = VmOptions::default()
        .configuration(case.config.clone())
        .fail_strategy(strategy)
        .callouts(FnCallouts(forward_callout(token.port())));
    let mut vm = plugin.start(options).unwrap();

    for request in &case.requests {
        let what = format!("{} {} {}", case.name, request.method, request.path);
        upstream.clear_requests();
        token.clear_requests();
        let from_envoy = send_to_envoy(envoy.http_port(), request);
        let envoy_upstream = upstream.last_request();
        let envoy_token = token.last_request();
        token.clear_requests();

        let host_request = request.clone().route("default").cluster("upstream");
        let from_host = vm.run(&host_request, &mut host_upstream).unwrap();
        let host_token = token.last_request();

        let mut differ = |field: &str, envoy: String, host: String| {
            if envoy != host {
                differences.push(format!("{what}: {field}\n  envoy: {envoy}\n  host:  {host}"));
            }
        };
        differ("status", from_envoy.status.to_string(), from_host.response.status.to_string());
        differ("body", from_envoy.text(), from_host.response.text());
        differ(
            "response headers",
            format!("{:?}", normalized(&from_envoy.headers)),
            format!("{:?}", normalized(&from_host.response.headers)),
        );
        let seen = |r: Option<&RecordedRequest>| {
            r.map(|r| format!("{} {} {:?} {:?}", r.method, r.path, normalized(&r.headers), r.body_text()))
        };
        let host_seen = from_host
            .upstream_request
            .as_ref()
            .map(|r| format!("{} {} {:?} {:?}", r.method, r.path, normalized(&r.headers), r.body_text()));
        differ("upstream request", format!("{:?}", seen(envoy_upstream.as_ref())), format!("{host_seen:?}"));
        differ("callout", format!("{:?}", seen(envoy_token.as_ref())), format!("{:?}", seen(host_token.as_ref())));
    }
    differences
}

fn cases() -> Vec<Case> {
    let json = |method: &str, path: &str, body: &str| {
        Request::new(method, path).host("example.com").header("content-type", "application/json").body(body)
    };
    let get = |path: &str| Request::get(path).host("example.com");
    let post = |path: &str, body: &str| Request::post(path, body).host("example.com");
    vec![
        case("hello-world", "hello-world", "{}", vec![get("/p?x=1"), post("/p", "body")]),
        case("hello-world", "hello-world", r#"{"mockEnable":true}"#, vec![get("/")]),
        case("raw-hello", "raw-hello", "{}", vec![get("/path?q=1"), post("/post", "payload")]),
        case("raw-hello", "raw-hello", r#"{"mockEnable":true}"#, vec![get("/anything")]),
        case(
            "raw-headers",
            "raw-headers",
            r#"{"addRequestHeaders":{"x-added":"1","x-replaced":"new"},"denyPathPrefix":"/admin",
                "addResponseHeaders":{"x-served-by":"raw-headers"}}"#,
            vec![
                get("/api?q=1").header("x-replaced", "old"),
                post("/upload", "payload"),
                get("/admin/users"),
                get("/broken"),
            ],
        ),
        case("raw-headers", "raw-headers", "", vec![get("/admin"), post("/p", "b")]),
        case(
            "request-block",
            "request-block",
            r#"{"block_urls":["swagger.html"],"block_headers":["evil"],"block_bodies":["DROP TABLE"],
                "blocked_code":451,"blocked_message":"blocked"}"#,
            vec![
                get("/docs/swagger.html"),
                get("/ok").header("x-bot", "evil-bot"),
                post("/sql", &format!("{} DROP TABLE users", "x".repeat(30_000))),
                post("/sql", "SELECT 1"),
                get("/fine"),
            ],
        ),
        case("request-block", "request-block", r#"{"block_urls":["/secret"]}"#, vec![get("/secret/x")]),
        case(
            "basic-auth",
            "basic-auth",
            r#"{"consumers":[{"name":"consumer1","credential":"admin:123456"}],"global_auth":true}"#,
            vec![
                get("/x").header("authorization", "Basic YWRtaW46MTIzNDU2").header("x-mse-consumer", "forged"),
                get("/x"),
                get("/x").header("authorization", "Basic YWRtaW46d3Jvbmc="),
            ],
        ),
        case(
            "key-auth",
            "key-auth",
            r#"{"consumers":[{"name":"c1","credential":"k1"}],"keys":["x-api-key","apikey"],"in_query":true,
                "global_auth":true}"#,
            vec![get("/x").header("x-api-key", "k1"), get("/q?apikey=k1"), get("/x"), get("/x?apikey=bad")],
        ),
        case(
            "custom-response",
            "custom-response",
            r#"{"status_code":418,"headers":["x-teapot = yes"],"body":"{\"hello\":\"world\"}"}"#,
            vec![post("/any", "ignored")],
        ),
        case(
            "custom-response",
            "custom-response",
            r#"{"status_code":503,"headers":["x-custom=1"],"body":"try later","enable_on_status":[502]}"#,
            vec![get("/broken"), post("/fine", "data")],
        ),
        case(
            "transformer",
            "transformer",
            r#"{"reqRules": [
                {"operate": "remove", "headers": [{"key": "x-remove"}], "querys": [{"key": "debug"}],
                 "body": [{"key": "password"}]},
                {"operate": "add", "headers": [{"key": "x-added", "value": "1"}], "querys": [{"key": "lang", "value": "en us"}],
                 "body": [{"key": "meta.source", "value": "gateway"}]},
                {"operate": "append", "headers": [{"key": "x-list", "appendValue": "b"}]}],
               "respRules": [
                {"operate": "remove", "headers": [{"key": "x-internal"}], "body": [{"key": "data.token"}]},
                {"operate": "add", "headers": [{"key": "x-transformed", "value": "yes"}]}]}"#,
            vec![
                get("/h?debug=1&keep=2").header("x-remove", "gone").header("x-list", "a"),
                json("POST", "/json", r#"{"password":"p","user":"a"}"#),
                get("/api-json/x"),
                post("/text", "plain text"),
            ],
        ),
        case(
            "http-call",
            "http-call",
            r#"{"serviceSource":"ip","serviceName":"token","servicePort":8080,"requestPath":"/token?scope=api",
                "tokenHeader":"x-token","timeoutMs":1000}"#,
            vec![get("/api").header("x-token", "forged"), post("/upload", &"z".repeat(20_000))],
        ),
        case(
            "http-call",
            "http-call",
            r#"{"serviceSource":"ip","serviceName":"token","servicePort":8080,"requestPath":"/down","tokenHeader":"x-token"}"#,
            vec![post("/api", "payload")],
        ),
        case(
            "sdk-probe",
            "sdk-probe",
            r#"{"uppercaseRequestBody":true,"requestBodyLimit":64,"uppercaseResponse":true,"denyPrefix":"/deny"}"#,
            vec![post("/up", "small body"), post("/up", &"x".repeat(65)), get("/deny/x"), get("/")],
        ),
    ]
}

/// Modules not written with the SDK: in text, what FAIL_CLOSED and FAIL_OPEN do with a trapping
/// plugin, and the configuration a plugin reads; in Go, a raw-ABI plugin.
fn hostile_cases(dir: &std::path::Path) -> Vec<Case> {
    let mut out = Vec::new();
    for (name, body) in [("trap", wasmplug_testkit::fixtures::TRAP), ("panic", wasmplug_testkit::fixtures::PANIC)] {
        let path = dir.join(format!("{name}.wasm"));
        std::fs::write(&path, wat::parse_str(wasmplug_testkit::fixtures::module(body)).unwrap()).unwrap();
        for fail_open in [false, true] {
            let requests =
                vec![Request::get("/a").host("example.com"), Request::post("/b", "data").host("example.com")];
            out.push(Case { name: "hostile", module: path.clone(), config: String::new(), fail_open, requests });
        }
    }
    // A plugin built with Go against the raw ABI, as Higress builds its plugins: Go's runtime
    // start (WASI), its configuration, headers, a local reply, a body passed through and one
    // rewritten, and a callout.
    let go = wasm::go_module(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/go-plugin")).unwrap();
    let requests = vec![
        Request::get("/").host("example.com"),
        Request::get("/deny/x").host("example.com"),
        Request::post("/upload", "go body").host("example.com"),
        Request::post("/upper", "go body").host("example.com").chunk_size(3),
        Request::get("/call").host("example.com"),
    ];
    out.push(Case { name: "go-plugin", module: go, config: "/deny".into(), fail_open: false, requests });
    // Once the headers phase continued, Envoy no longer lets the plugin read the headers: the
    // body phase's `proxy_get_header_map_value` answers BadArgument (2), which this module
    // writes into the request body.
    let released = dir.join("released.wasm");
    std::fs::write(&released, wat::parse_str(released_headers_module()).unwrap()).unwrap();
    let requests = vec![Request::post("/upload", "go body").host("example.com")];
    out.push(Case { name: "released", module: released, config: String::new(), fail_open: false, requests });
    // The configuration as the plugin reads it, byte for byte: raw text and JSON with its own
    // spacing.
    let echo = dir.join("echo.wasm");
    std::fs::write(&echo, wat::parse_str(wasmplug_testkit::fixtures::echo_configuration()).unwrap()).unwrap();
    for config in ["deny /admin; allow *", "{ \"a\" :  1,\n  \"b\": [ ] }\n"] {
        let requests = vec![Request::get("/").host("example.com")];
        out.push(Case { name: "echo", module: echo.clone(), config: config.into(), fail_open: false, requests });
    }
    out
}

/// Replaces the first byte of a non-empty request body chunk with the status (a digit) of
/// reading `:path` then (the length stays, so `content-length` holds).
fn released_headers_module() -> String {
    let imports = r#"(import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_body (param i32 i32 i32 i32 i32) (result i32)))"#;
    let definitions = r#"(data (i32.const 1024) ":path")
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (if (local.get 1) (then
      (i32.store8 (i32.const 2048)
        (i32.add (i32.const 48) (call $get (i32.const 0) (i32.const 1024) (i32.const 5) (i32.const 2056) (i32.const 2060))))
      (drop (call $set_body (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 2048) (i32.const 1)))))
    (i32.const 0))"#;
    wasmplug_testkit::fixtures::custom_module(imports, definitions, "(i32.const 1)", "(i32.const 0)")
}

#[test]
fn envoy_and_the_host_agree() {
    let dir = tempfile_dir();
    let mut differences = Vec::new();
    for case in cases().iter().chain(hostile_cases(&dir).iter()) {
        differences.extend(run_case(case));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(differences.is_empty(), "{} difference(s):\n{}", differences.len(), differences.join("\n"));
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmplug-host-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
