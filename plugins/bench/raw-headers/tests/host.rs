//! `raw-headers` (written on plain proxy-wasm, no SDK) through the harness.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_host::{Request, VmOptions};
use wasmplug_testkit::host::{upstream_ok, vm};

const CONFIG: &str = r#"{"addRequestHeaders":{"x-added":"1","x-replaced":"new"},"denyPathPrefix":"/admin",
    "addResponseHeaders":{"x-served-by":"raw-headers"}}"#;

#[test]
fn adds_request_and_response_headers() {
    let mut vm = vm("raw-headers", CONFIG);
    let ex = vm.run(&Request::get("/api?q=1").header("x-replaced", "old"), &mut upstream_ok()).unwrap();
    let req = ex.upstream_request.unwrap();
    assert_eq!(req.header("x-added"), Some("1"));
    assert_eq!(req.header("x-replaced"), Some("new"));
    assert_eq!(ex.response.status, 200);
    assert_eq!(ex.response.get_header("x-raw-headers-path"), Some("/api?q=1"));
    assert_eq!(ex.response.get_header("x-served-by"), Some("raw-headers"));
}

#[test]
fn denies_the_prefix_locally() {
    let mut vm = vm("raw-headers", CONFIG);
    let ex = vm.run(&Request::get("/admin/users"), &mut upstream_ok()).unwrap();
    assert_eq!((ex.response.status, ex.response.text().as_str()), (403, "forbidden by raw-headers"));
    assert_eq!(ex.response.get_header("x-raw-headers"), Some("denied"));
    assert!(ex.upstream_request.is_none());
}

#[test]
fn empty_config_passes_and_bad_config_is_refused() {
    let mut vm = vm("raw-headers", "");
    let ex = vm.run(&Request::get("/admin"), &mut upstream_ok()).unwrap();
    assert_eq!(ex.response.status, 200);
    assert!(ex.upstream_request.is_some());
    let err = wasmplug_testkit::host::plugin("raw-headers")
        .start(VmOptions::default().configuration(r#"{"denyPrefix":"/x"}"#))
        .err()
        .unwrap();
    assert!(err.to_string().contains("raw-headers: invalid plugin configuration"), "{err}");
}
