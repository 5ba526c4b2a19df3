//! gRPC calls and streams (`proxy_grpc_call`, `proxy_grpc_stream`), answered from the test, as
//! `tests/grpc-plugin` (a plugin on plain proxy-wasm) makes them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use wasmplug_host::{
    Action, CalloutHandler, CalloutReply, GrpcCall, GrpcEnd, GrpcEvent, GrpcKind, GrpcReply, HttpCall, Plugin, Request,
    VmOptions, grpc_status,
};
use wasmplug_testkit::host::upstream_ok;
use wasmplug_testkit::wasm::plugin_module;

const CLUSTER: &str = "outbound|50051||echo.static";

/// Answers every gRPC call to [`CLUSTER`] with `reply`, and records what the plugin did.
#[derive(Clone, Default)]
struct Echo {
    reply: Option<Vec<GrpcEvent>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl CalloutHandler for Echo {
    fn http_call(&mut self, _call: &HttpCall) -> CalloutReply {
        CalloutReply::UnknownCluster
    }
    fn grpc_call(&mut self, call: &GrpcCall) -> GrpcReply {
        if call.cluster != CLUSTER {
            return GrpcReply::UnknownCluster;
        }
        self.seen.lock().unwrap().push(format!("open {} {:?}", call.path(), call.kind));
        match &self.reply {
            Some(events) => GrpcReply::Events(events.clone()),
            None => GrpcReply::Pending,
        }
    }
    fn grpc_send(&mut self, token: u32, message: &[u8], end_stream: bool) {
        let message = String::from_utf8_lossy(message);
        self.seen.lock().unwrap().push(format!("send {token} {message} end={end_stream}"));
    }
    fn grpc_end(&mut self, token: u32, how: GrpcEnd) {
        self.seen.lock().unwrap().push(format!("end {token} {how:?}"));
    }
}

fn start(handler: Echo, cluster: &str) -> wasmplug_host::Vm {
    let plugin = Plugin::load("grpc-plugin", plugin_module("grpc-plugin")).unwrap();
    plugin.start(VmOptions::default().configuration(cluster).callouts(handler)).unwrap()
}

fn unary(path: &str) -> Request {
    Request::get(path).header("x-grpc", "unary")
}

#[test]
fn a_unary_call_reaches_the_cluster_and_its_answer_the_plugin() {
    let handler = Echo { reply: Some(vec![GrpcEvent::Message(b"hello /greet".to_vec())]), ..Echo::default() };
    let mut vm = start(handler.clone(), CLUSTER);
    let ex = vm.run(&unary("/greet").header("x-grpc-timeout-ms", "1500"), &mut upstream_ok()).unwrap();
    assert_eq!(ex.upstream_request.unwrap().header("x-grpc-reply"), Some("hello /greet"));
    let call = vm.grpc_calls().remove(0);
    assert_eq!((call.cluster.as_str(), call.path(), call.kind), (CLUSTER, "/echo.Echo/Say".into(), GrpcKind::Unary));
    assert_eq!(call.initial_metadata, vec![("x-from".to_string(), "grpc-plugin".to_string())]);
    assert_eq!((call.sent, call.timeout_ms), (vec![b"/greet".to_vec()], 1500));

    // Metadata is not reported for unary calls, as in Envoy: the message still is.
    let handler = Echo {
        reply: Some(vec![
            GrpcEvent::InitialMetadata(vec![("x-echo".into(), "1".into())]),
            GrpcEvent::Message(b"m".to_vec()),
        ]),
        ..Echo::default()
    };
    let ex = start(handler, CLUSTER).run(&unary("/"), &mut upstream_ok()).unwrap();
    assert_eq!(ex.upstream_request.unwrap().header("x-grpc-reply"), Some("m"));
}

#[test]
fn a_failed_unary_call_closes_with_its_status_and_message() {
    let denied = GrpcEvent::Close { status: 7, message: "denied".into() };
    let mut vm = start(Echo { reply: Some(vec![denied]), ..Echo::default() }, CLUSTER);
    let ex = vm.run(&unary("/"), &mut upstream_ok()).unwrap();
    assert_eq!((ex.response.status, ex.response.text().as_str()), (503, "grpc status 7: denied"));
    assert!(ex.upstream_request.is_none());

    // Nobody answers: it fails as Envoy's timeout does.
    let mut vm = start(Echo::default(), CLUSTER);
    let ex = vm.run(&unary("/"), &mut upstream_ok()).unwrap();
    let expected = format!("grpc status {}: response_timeout", grpc_status::INTERNAL);
    assert_eq!((ex.response.status, ex.response.text()), (503, expected));
    assert!(ex.fault.is_none());

    // No such cluster: the call itself fails with BadArgument, which proxy-wasm's Rust SDK
    // does not expect and panics on (in Envoy too): the fail strategy answers.
    let ex = start(Echo::default(), "nowhere").run(&unary("/"), &mut upstream_ok()).unwrap();
    assert_eq!((ex.response.status, ex.response.text().as_str()), (503, ""));
    let fault = ex.fault.unwrap();
    assert!(fault.panic_message.unwrap_or_default().contains("unexpected status: 2"), "{}", fault.message);
}

#[test]
fn a_stream_reports_metadata_messages_and_its_close() {
    let handler = Echo::default();
    let mut vm = start(handler.clone(), CLUSTER);
    let mut stream = vm.stream().unwrap();
    let headers = [(":method", "GET"), (":path", "/chat"), (":authority", "a"), ("x-grpc", "stream")];
    assert_eq!(stream.request_headers(&headers, true), Action::Pause);
    let call = stream.pending_grpc_calls().remove(0);
    assert_eq!((call.path(), call.kind, call.half_closed), ("/echo.Echo/Chat".into(), GrpcKind::Stream, true));
    assert_eq!(call.sent, vec![b"one".to_vec(), b"two".to_vec()]);
    let token = call.token;
    assert_eq!(
        *handler.seen.lock().unwrap(),
        [
            "open /echo.Echo/Chat Stream".to_string(),
            format!("send {token} one end=false"),
            format!("send {token} two end=true")
        ]
    );

    for event in [
        GrpcEvent::InitialMetadata(vec![("x-echo".into(), "yes".into())]),
        GrpcEvent::Message(b"echo: one".to_vec()),
        GrpcEvent::Message(b"echo: two".to_vec()),
        GrpcEvent::TrailingMetadata(vec![("x-done".into(), "2".into())]),
    ] {
        stream.answer_grpc(token, event);
        assert!(!stream.take_request_resumed());
    }
    stream.answer_grpc(token, GrpcEvent::Close { status: 0, message: String::new() });
    assert!(stream.take_request_resumed());
    assert_eq!(stream.request_header("x-grpc-messages").as_deref(), Some("echo: one|echo: two"));
    assert_eq!(stream.request_header("x-grpc-metadata").as_deref(), Some("initial=yes;trailing=2"));
    assert_eq!(stream.request_header("x-grpc-status").as_deref(), Some("0"));
    assert!(stream.pending_grpc_calls().is_empty());
    // A closed stream takes no more events.
    stream.answer_grpc(token, GrpcEvent::Message(b"late".to_vec()));
    assert_eq!(stream.request_header("x-grpc-messages").as_deref(), Some("echo: one|echo: two"));
}
