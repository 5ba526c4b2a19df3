//! Hostile plugins: an infinite loop, a trap, allocation past the memory cap and a panic.
//! The host stays up, reports the fault with plugin and phase, and applies the fail strategy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use wasmplug_host::{Callback, FailStrategy, FaultKind, Plugin, Request, VmOptions};
use wasmplug_testkit::host::upstream_ok;

fn hostile(name: &str, body: &str, strategy: FailStrategy) -> wasmplug_host::Vm {
    let plugin = Plugin::from_bytes(name, wasmplug_testkit::fixtures::module(body).as_bytes()).unwrap();
    let options =
        VmOptions::default().fail_strategy(strategy).call_timeout(Duration::from_millis(200)).memory_limit(16 << 20);
    plugin.start(options).unwrap()
}

#[test]
fn each_failure_is_reported_and_fail_close_answers_503() {
    for (body, kind) in [
        (wasmplug_testkit::fixtures::INFINITE_LOOP, FaultKind::Timeout),
        (wasmplug_testkit::fixtures::TRAP, FaultKind::Trap),
        (wasmplug_testkit::fixtures::OOM, FaultKind::OutOfMemory),
        (wasmplug_testkit::fixtures::PANIC, FaultKind::Trap),
    ] {
        let started = Instant::now();
        let mut vm = hostile("evil", body, FailStrategy::FailClose);
        let ex = vm.run(&Request::get("/"), &mut upstream_ok()).unwrap();
        let fault = ex.fault.clone().unwrap();
        assert_eq!(
            (fault.plugin.as_str(), fault.phase, fault.kind),
            ("evil", Callback::RequestHeaders, kind),
            "{body}"
        );
        // Envoy's `wasm_fail_stream` reply: 503, empty body; nothing reaches the upstream.
        assert_eq!((ex.response.status, ex.response.body.len()), (503, 0), "{body}");
        assert_eq!(ex.local_response.unwrap().details, "wasm_fail_stream");
        assert!(ex.upstream_request.is_none());
        // The VM stays failed: later requests are refused without calling the plugin.
        let again = vm.run(&Request::get("/"), &mut upstream_ok()).unwrap();
        assert_eq!(again.response.status, 503);
        assert_eq!(again.fault.unwrap().kind, FaultKind::VmFailed);
        assert!(started.elapsed() < Duration::from_secs(5), "{body}: {:?}", started.elapsed());
    }
}

#[test]
fn panics_are_reported_with_their_message() {
    let mut vm = hostile("panicky", wasmplug_testkit::fixtures::PANIC, FailStrategy::FailClose);
    let ex = vm.run(&Request::get("/"), &mut upstream_ok()).unwrap();
    let fault = ex.fault.unwrap();
    assert_eq!(fault.panic_message.as_deref(), Some("panicked at src/lib.rs:7:5:\nboom"));
    let text = fault.to_string();
    assert!(text.contains("plugin `panicky` failed in proxy_on_request_headers"), "{text}");
    assert!(vm.logged("boom"));
}

#[test]
fn fail_open_lets_later_requests_through() {
    for body in [
        wasmplug_testkit::fixtures::INFINITE_LOOP,
        wasmplug_testkit::fixtures::TRAP,
        wasmplug_testkit::fixtures::OOM,
        wasmplug_testkit::fixtures::PANIC,
    ] {
        let mut vm = hostile("evil", body, FailStrategy::FailOpen);
        // As in Envoy 1.40 (checked by the conformance test): the request during which the
        // VM fails is answered 503 even with FAIL_OPEN; later ones pass without the plugin.
        let failing = vm.run(&Request::get("/"), &mut upstream_ok()).unwrap();
        assert_eq!(failing.response.status, 503, "{body}");
        for _ in 0..2 {
            let ex = vm.run(&Request::post("/p", "data").header("x-a", "1"), &mut upstream_ok()).unwrap();
            assert_eq!((ex.response.status, ex.response.text().as_str()), (200, "upstream ok"), "{body}");
            let req = ex.upstream_request.unwrap();
            assert_eq!((req.header("x-a"), req.body_text().as_str()), (Some("1"), "data"));
            assert!(ex.fault.is_some());
        }
    }
}

#[test]
fn fail_reload_starts_a_fresh_vm() {
    let mut vm = hostile("evil", wasmplug_testkit::fixtures::TRAP, FailStrategy::FailReload);
    assert_eq!(vm.run(&Request::get("/"), &mut upstream_ok()).unwrap().response.status, 503);
    let second = vm.run(&Request::get("/"), &mut upstream_ok()).unwrap();
    assert_eq!(second.fault.unwrap().kind, FaultKind::Trap, "a fresh VM ran (and trapped again)");
    assert_eq!(vm.starts(), 2);
}

#[test]
fn the_host_stays_usable_after_hostile_plugins() {
    let mut evil = hostile("evil", wasmplug_testkit::fixtures::OOM, FailStrategy::FailClose);
    evil.run(&Request::get("/"), &mut upstream_ok()).unwrap();
    assert!(evil.memory_size() <= 16 << 20, "{}", evil.memory_size());
    let mut good = hostile("good", wasmplug_testkit::fixtures::OK, FailStrategy::FailClose);
    assert_eq!(good.run(&Request::get("/"), &mut upstream_ok()).unwrap().response.status, 200);
    let mut sdk = wasmplug_testkit::host::vm("hello-world", "{}");
    let ex = sdk.run(&Request::get("/"), &mut upstream_ok()).unwrap();
    assert_eq!(ex.upstream_request.unwrap().header("hello"), Some("world"));
}

#[test]
fn a_module_that_is_not_proxy_wasm_is_refused() {
    let err = Plugin::from_bytes("x", b"(module)").err().unwrap();
    assert!(err.to_string().contains("missing or unknown Proxy-Wasm ABI version"), "{err}");
    let missing = r#"(module (import "env" "proxy_nope" (func)) (memory (export "memory") 1)
        (func (export "proxy_abi_version_0_2_1")))"#;
    let err = Plugin::from_bytes("x", missing.as_bytes()).err().unwrap();
    assert!(err.to_string().contains("does not provide the import `env.proxy_nope`"), "{err}");
}
