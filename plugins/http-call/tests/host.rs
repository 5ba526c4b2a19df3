//! http-call through the host: callouts answered from the test, as its Envoy tests assert.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_host::{
    CalloutReply, FnCallouts, HttpCall, HttpResponse, ManualCallouts, Request, Vm, VmOptions, callout_response,
};
use wasmplug_testkit::host::{plugin, upstream_ok};

const TOKEN_CLUSTER: &str = "outbound|8080||token.static";
const CONFIG: &str = r#"{"serviceSource":"ip","serviceName":"token","servicePort":8080,
    "requestPath":"/token?scope=api","tokenHeader":"x-token","timeoutMs":1000}"#;

fn token_service(call: &HttpCall) -> CalloutReply {
    match call.cluster.as_str() {
        TOKEN_CLUSTER if call.path().starts_with("/admin-token") => {
            callout_response(200, &[("x-admin-token", "root")], "")
        }
        TOKEN_CLUSTER => callout_response(200, &[("x-token", "secret-abc")], ""),
        _ => CalloutReply::UnknownCluster,
    }
}

fn start(config: &str, reply: fn(&HttpCall) -> CalloutReply) -> Vm {
    plugin("http-call").start(VmOptions::default().configuration(config).callouts(FnCallouts(reply))).unwrap()
}

#[test]
fn token_is_copied_onto_the_request() {
    let mut vm = start(CONFIG, token_service);
    let ex = vm.run(&Request::get("/api").header("x-token", "forged"), &mut upstream_ok()).unwrap();
    assert_eq!((ex.response.status, ex.response.text().as_str()), (200, "upstream ok"));
    let call = &ex.http_calls[0];
    assert_eq!((call.cluster.as_str(), call.method(), call.path()), (TOKEN_CLUSTER, "GET", "/token?scope=api"));
    assert_eq!(call.authority(), "token");
    assert_eq!(call.timeout_ms, 1000);
    let req = ex.upstream_request.unwrap();
    assert_eq!(req.header_all("x-token"), vec!["secret-abc"]);
}

#[test]
fn post_body_passes_through_intact_after_the_callout() {
    let mut vm = start(CONFIG, token_service);
    let body: String = (0..20_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let ex = vm.run(&Request::post("/upload", body.clone()).chunk_size(8192), &mut upstream_ok()).unwrap();
    assert_eq!(ex.response.status, 200);
    let req = ex.upstream_request.unwrap();
    assert_eq!(req.header("x-token"), Some("secret-abc"));
    assert_eq!(req.body_text(), body);
    assert_eq!(ex.http_calls.len(), 1);
}

#[test]
fn failures_answer_500() {
    let error = |_: &HttpCall| callout_response(503, &[("x-token", "ignored")], "down");
    for reply in [error as fn(&HttpCall) -> CalloutReply, |_| CalloutReply::Failure, |_| CalloutReply::UnknownCluster] {
        let mut vm = start(CONFIG, reply);
        let ex = vm.run(&Request::post("/api", "payload"), &mut upstream_ok()).unwrap();
        assert_eq!((ex.response.status, ex.response.text().as_str()), (500, "http call failed"));
        assert!(ex.upstream_request.is_none());
    }
    let mut vm = start(CONFIG, |_| CalloutReply::UnknownCluster);
    vm.run(&Request::get("/api"), &mut upstream_ok()).unwrap();
    assert!(vm.logged("dispatch refused by the host"), "{:?}", vm.logs());
}

#[test]
fn an_unanswered_call_times_out_like_envoy() {
    // Nobody answers: when nothing else can happen the call fails as Envoy's timeout does.
    let mut vm =
        plugin("http-call").start(VmOptions::default().configuration(CONFIG).callouts(ManualCallouts)).unwrap();
    let ex = vm.run(&Request::get("/api"), &mut upstream_ok()).unwrap();
    assert_eq!(ex.response.status, 500);
    assert!(!ex.hung);
}

#[test]
fn the_test_answers_the_callout_by_hand() {
    let mut vm = plugin("http-call").start(VmOptions::default().configuration(CONFIG)).unwrap();
    let mut stream = vm.stream().unwrap();
    let headers = [(":method", "GET"), (":path", "/api"), (":authority", "gw"), (":scheme", "http")];
    assert_eq!(stream.request_headers(&headers, true), wasmplug_host::Action::Pause);
    let pending = stream.pending_http_calls();
    assert_eq!(pending.len(), 1);
    stream
        .answer_http_call(pending[0].token, CalloutReply::Response(HttpResponse::new(200, "").header("x-token", "t1")));
    assert!(stream.take_request_resumed());
    assert_eq!(stream.request_header("x-token").as_deref(), Some("t1"));
}

#[test]
fn rules_select_the_token_source_per_route() {
    let config = r#"{"serviceSource":"ip","serviceName":"token","servicePort":8080,
        "requestPath":"/token","tokenHeader":"x-token",
        "_rules_":[{"_match_route_":["admin"],"requestPath":"/admin-token","tokenHeader":"x-admin-token"}]}"#;
    let mut vm = start(config, token_service);
    let admin = vm.run(&Request::get("/admin/x").route("admin"), &mut upstream_ok()).unwrap();
    let other = vm.run(&Request::get("/other").route("default"), &mut upstream_ok()).unwrap();
    assert_eq!(admin.http_calls[0].path(), "/admin-token");
    assert_eq!(other.http_calls[0].path(), "/token");
    let (a, o) = (admin.upstream_request.unwrap(), other.upstream_request.unwrap());
    assert_eq!((a.header("x-admin-token"), a.header("x-token")), (Some("root"), None));
    assert_eq!((o.header("x-admin-token"), o.header("x-token")), (None, Some("secret-abc")));
}
