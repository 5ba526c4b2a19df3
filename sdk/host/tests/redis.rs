//! Higress's Redis host functions, answered from the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_host::{CalloutHandler, CalloutReply, HttpCall, Plugin, RedisCall, RedisReply, Request, VmOptions};
use wasmplug_testkit::host::upstream_ok;

struct FakeRedis;

impl CalloutHandler for FakeRedis {
    fn http_call(&mut self, _call: &HttpCall) -> CalloutReply {
        CalloutReply::UnknownCluster
    }
    fn redis_init(&mut self, cluster: &str, username: &str, password: &str, timeout_ms: u32) -> bool {
        (cluster, username, password, timeout_ms) == ("redis", "u", "p", 500)
    }
    fn redis_call(&mut self, call: &RedisCall) -> RedisReply {
        match call.args().as_slice() {
            [cmd, key] if cmd == "GET" && key == "k" => RedisReply::Reply(b"$3\r\nbar\r\n".to_vec()),
            _ => RedisReply::Failure,
        }
    }
}

#[test]
fn redis_calls_are_answered_by_the_handler() {
    let plugin = Plugin::from_bytes("redis-user", wasmplug_testkit::fixtures::REDIS.as_bytes()).unwrap();
    let mut vm = plugin.start(VmOptions::default().callouts(FakeRedis)).unwrap();
    let ex = vm.run(&Request::get("/"), &mut upstream_ok()).unwrap();
    assert_eq!(ex.redis_calls.len(), 1);
    assert_eq!(ex.redis_calls[0].args(), vec!["GET", "k"]);
    assert_eq!(ex.upstream_request.unwrap().header("x-redis"), Some("$3\r\nbar\r\n"));
}

#[test]
fn redis_calls_answered_by_hand_and_failures() {
    let plugin = Plugin::from_bytes("redis-user", wasmplug_testkit::fixtures::REDIS.as_bytes()).unwrap();
    let mut vm = plugin.start(VmOptions::default()).unwrap();
    let mut stream = vm.stream().unwrap();
    stream.request_headers(&[(":method", "GET"), (":path", "/"), (":authority", "a")], true);
    let call = stream.pending_redis_calls().remove(0);
    assert_eq!(call.cluster, "redis");
    stream.answer_redis_call(call.token, RedisReply::Reply(b"+OK\r\n".to_vec()));
    assert!(stream.take_request_resumed());
    assert_eq!(stream.request_header("x-redis").as_deref(), Some("+OK\r\n"));
    drop(stream);

    // Unanswered: fails like a timeout, and the module answers 502.
    let ex = vm.run(&Request::get("/"), &mut upstream_ok()).unwrap();
    assert_eq!(ex.response.status, 502);

    // An init the handler refuses fails the configuration.
    struct Refuse;
    impl CalloutHandler for Refuse {
        fn http_call(&mut self, _call: &HttpCall) -> CalloutReply {
            CalloutReply::UnknownCluster
        }
        fn redis_init(&mut self, _: &str, _: &str, _: &str, _: u32) -> bool {
            false
        }
    }
    assert!(plugin.start(VmOptions::default().callouts(Refuse)).is_err());
}
