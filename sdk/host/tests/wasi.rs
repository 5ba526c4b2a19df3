//! What a module may import and export, differentially against a real Envoy 1.40: the ABI
//! versions it loads, and the WASI surface: one small module per WASI function, each calling
//! that function during a request and answering with the errno it got (one byte,
//! `'0' + errno`). Whether the module loads at all, and the errno, must be the same in both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use wasmplug_host::{Plugin, Request, VmOptions};
use wasmplug_testkit::fixtures;
use wasmplug_testkit::host::upstream_ok;
use wasmplug_testkit::upstream::Upstream;
use wasmplug_testkit::{Envoy, EnvoyConfig, WasmFilter, client};

/// (name, the import's signature, the call leaving its i32 errno on the stack). Pointers go to
/// scratch memory at 1024; a clock subscription for `poll_oneoff` sits at 2048.
const PROBES: &[(&str, &str, &str)] = &[
    ("fd_prestat_get", "(param i32 i32) (result i32)", "(call $f (i32.const 3) (i32.const 1024))"),
    (
        "fd_prestat_dir_name",
        "(param i32 i32 i32) (result i32)",
        "(call $f (i32.const 3) (i32.const 1024) (i32.const 16))",
    ),
    ("fd_fdstat_get", "(param i32 i32) (result i32)", "(call $f (i32.const 1) (i32.const 1024))"),
    ("fd_fdstat_get_closed", "(param i32 i32) (result i32)", "(call $f (i32.const 7) (i32.const 1024))"),
    ("fd_fdstat_set_flags", "(param i32 i32) (result i32)", "(call $f (i32.const 1) (i32.const 0))"),
    ("fd_filestat_get", "(param i32 i32) (result i32)", "(call $f (i32.const 1) (i32.const 1024))"),
    ("fd_close", "(param i32) (result i32)", "(call $f (i32.const 7))"),
    (
        "fd_seek",
        "(param i32 i64 i32 i32) (result i32)",
        "(call $f (i32.const 1) (i64.const 0) (i32.const 0) (i32.const 1024))",
    ),
    (
        "fd_read",
        "(param i32 i32 i32 i32) (result i32)",
        "(call $f (i32.const 0) (i32.const 1024) (i32.const 0) (i32.const 1040))",
    ),
    (
        "fd_write_closed",
        "(param i32 i32 i32 i32) (result i32)",
        "(call $f (i32.const 7) (i32.const 1024) (i32.const 0) (i32.const 1040))",
    ),
    (
        "path_open",
        "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)",
        "(call $f (i32.const 3) (i32.const 0) (i32.const 1100) (i32.const 1) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 1024))",
    ),
    (
        "path_filestat_get",
        "(param i32 i32 i32 i32 i32) (result i32)",
        "(call $f (i32.const 3) (i32.const 0) (i32.const 1100) (i32.const 1) (i32.const 1024))",
    ),
    (
        "poll_oneoff",
        "(param i32 i32 i32 i32) (result i32)",
        "(call $f (i32.const 2048) (i32.const 3072) (i32.const 1) (i32.const 1024))",
    ),
    ("sched_yield", "(result i32)", "(call $f)"),
    ("clock_res_get", "(param i32 i32) (result i32)", "(call $f (i32.const 0) (i32.const 1024))"),
    (
        "clock_time_get_monotonic",
        "(param i32 i64 i32) (result i32)",
        "(call $f (i32.const 1) (i64.const 0) (i32.const 1024))",
    ),
    (
        "clock_time_get_cputime",
        "(param i32 i64 i32) (result i32)",
        "(call $f (i32.const 2) (i64.const 0) (i32.const 1024))",
    ),
    ("args_sizes_get", "(param i32 i32) (result i32)", "(call $f (i32.const 1024) (i32.const 1028))"),
    ("proc_raise", "(param i32) (result i32)", "(call $f (i32.const 6))"),
    ("sock_accept", "(param i32 i32 i32) (result i32)", "(call $f (i32.const 3) (i32.const 0) (i32.const 1024))"),
    // What the calls above wrote: fdstat's rights of stdout, poll_oneoff's event count and
    // event userdata, the clock resolution (capped at 200).
    (
        "fd_fdstat_get_rights",
        "(param i32 i32) (result i32)",
        "(drop (call $f (i32.const 1) (i32.const 1024))) (i32.load8_u (i32.const 1032))",
    ),
    (
        "poll_oneoff_events",
        "(param i32 i32 i32 i32) (result i32)",
        "(drop (call $f (i32.const 2048) (i32.const 3072) (i32.const 1) (i32.const 1024))) (i32.load (i32.const 1024))",
    ),
    (
        "poll_oneoff_userdata",
        "(param i32 i32 i32 i32) (result i32)",
        "(drop (call $f (i32.const 2048) (i32.const 3072) (i32.const 1) (i32.const 1024))) (i32.load8_u (i32.const 3072))",
    ),
    (
        "poll_oneoff_type",
        "(param i32 i32 i32 i32) (result i32)",
        "(drop (call $f (i32.const 2048) (i32.const 3072) (i32.const 1) (i32.const 1024))) (i32.load8_u (i32.const 3082))",
    ),
    (
        "clock_res_get_value",
        "(param i32 i32) (result i32)",
        "(drop (call $f (i32.const 0) (i32.const 1024))) (select (i32.load (i32.const 1024)) (i32.const 200) (i32.lt_u (i32.load (i32.const 1024)) (i32.const 200)))",
    ),
    // The rest of preview1, called with zeros: does Envoy provide it, and what does it answer?
    ("fd_advise", "(param i32 i64 i64 i32) (result i32)", ""),
    ("fd_allocate", "(param i32 i64 i64) (result i32)", ""),
    ("fd_datasync", "(param i32) (result i32)", ""),
    ("fd_fdstat_set_rights", "(param i32 i64 i64) (result i32)", ""),
    ("fd_filestat_set_size", "(param i32 i64) (result i32)", ""),
    ("fd_filestat_set_times", "(param i32 i64 i64 i32) (result i32)", ""),
    ("fd_pread", "(param i32 i32 i32 i64 i32) (result i32)", ""),
    ("fd_pwrite", "(param i32 i32 i32 i64 i32) (result i32)", ""),
    ("fd_readdir", "(param i32 i32 i32 i64 i32) (result i32)", ""),
    ("fd_renumber", "(param i32 i32) (result i32)", ""),
    ("fd_sync", "(param i32) (result i32)", ""),
    ("fd_tell", "(param i32 i32) (result i32)", ""),
    ("path_create_directory", "(param i32 i32 i32) (result i32)", ""),
    ("path_filestat_set_times", "(param i32 i32 i32 i32 i64 i64 i32) (result i32)", ""),
    ("path_link", "(param i32 i32 i32 i32 i32 i32 i32) (result i32)", ""),
    ("path_readlink", "(param i32 i32 i32 i32 i32 i32) (result i32)", ""),
    ("path_remove_directory", "(param i32 i32 i32) (result i32)", ""),
    ("path_rename", "(param i32 i32 i32 i32 i32 i32) (result i32)", ""),
    ("path_symlink", "(param i32 i32 i32 i32 i32) (result i32)", ""),
    ("path_unlink_file", "(param i32 i32 i32) (result i32)", ""),
    ("sock_recv", "(param i32 i32 i32 i32 i32 i32) (result i32)", ""),
    ("sock_send", "(param i32 i32 i32 i32 i32) (result i32)", ""),
    ("sock_shutdown", "(param i32 i32) (result i32)", ""),
    ("environ_get", "(param i32 i32) (result i32)", ""),
    ("environ_sizes_get", "(param i32 i32) (result i32)", ""),
    ("args_get", "(param i32 i32) (result i32)", ""),
    ("random_get", "(param i32 i32) (result i32)", ""),
];

/// A call of `$f` with zeros for every parameter of `signature`.
fn zeros(signature: &str) -> String {
    let params = signature.split("(result").next().unwrap_or_default();
    let args: Vec<&str> = params
        .split_whitespace()
        .filter_map(|t| match t.trim_end_matches(')') {
            "i32" => Some("(i32.const 0)"),
            "i64" => Some("(i64.const 0)"),
            _ => None,
        })
        .collect();
    format!("(call $f {})", args.join(" "))
}

/// The WASI function a probe imports (probes of one function in another case share it).
fn function(probe: &str) -> &str {
    ["_closed", "_monotonic", "_cputime", "_rights", "_events", "_userdata", "_type", "_value"]
        .iter()
        .fold(probe, |p, suffix| p.strip_suffix(suffix).unwrap_or(p))
}

fn module(probe: &str, signature: &str, call: &str) -> Vec<u8> {
    let call = if call.is_empty() { zeros(signature) } else { call.to_string() };
    let imports = format!(
        r#"(import "wasi_snapshot_preview1" "{}" (func $f {signature}))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        function(probe)
    );
    // A path, and a relative clock subscription: userdata 7, tag clock, monotonic, 1 ms.
    let data = r#"(data (i32.const 1100) ".")
  (data (i32.const 2048) "\07\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\01\00\00\00\00\00\00\00\40\42\0f\00\00\00\00\00")"#;
    let request_headers = format!(
        "(i32.store8 (i32.const 4000) (i32.add (i32.const 48) {call}))
    (drop (call $reply (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 4000) (i32.const 1)
                       (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1)"
    );
    let text = fixtures::custom_module(&imports, data, "(i32.const 1)", &request_headers);
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{probe}: {e}"))
}

/// "not loaded", "errno N", or the status and body when the call did not answer as expected.
fn outcome(status: u16, body: &str) -> String {
    match body.as_bytes() {
        [b] if status == 200 => format!("errno {}", b.saturating_sub(48)),
        _ => format!("status {status} body {body:?}"),
    }
}

fn in_envoy(name: &str, path: &Path, upstream: u16) -> String {
    match Envoy::start(EnvoyConfig::proxy_to(upstream).filter(WasmFilter::new(name, path))) {
        Ok(envoy) => {
            let r = client::get(envoy.http_port(), "/").unwrap();
            outcome(r.status, &r.text())
        }
        Err(_) => "not loaded".into(),
    }
}

fn in_host(name: &str, path: &Path) -> String {
    let Ok(plugin) = Plugin::load(name, path) else { return "not loaded".into() };
    let Ok(mut vm) = plugin.start(VmOptions::default()) else { return "not started".into() };
    let ex = vm.run(&Request::get("/"), &mut upstream_ok()).unwrap();
    outcome(ex.response.status, &ex.response.text())
}

#[test]
fn each_wasi_function_answers_as_in_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let mut table = Vec::new();
    let mut differences = Vec::new();
    for (probe, signature, call) in PROBES {
        let path = dir.path().join(format!("{probe}.wasm"));
        std::fs::write(&path, module(probe, signature, call)).unwrap();
        let (envoy, host) = (in_envoy(probe, &path, upstream.port()), in_host(probe, &path));
        table.push(format!("{probe}: envoy {envoy}, host {host}"));
        if envoy != host {
            differences.push(format!("{probe}: envoy {envoy}, host {host}"));
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(differences.is_empty(), "the host answers WASI differently:\n{}", differences.join("\n"));
}

#[test]
fn abi_versions_load_as_in_envoy_and_higress_0_2_100_in_the_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    for abi in ["0_1_0", "0_2_0", "0_2_1", "0_2_100", "0_3_0", "1_0_0"] {
        let text = format!(
            r#"(module (memory (export "memory") 2)
  (func (export "proxy_abi_version_{abi}"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1)))"#
        );
        let path = dir.path().join(format!("abi-{abi}.wasm"));
        std::fs::write(&path, wat::parse_str(&text).unwrap()).unwrap();
        let envoy = Envoy::start(EnvoyConfig::proxy_to(upstream.port()).filter(WasmFilter::new("abi", &path)));
        let in_envoy = match &envoy {
            Ok(_) => true,
            Err(log) => {
                assert!(log.contains("Missing or unknown Proxy-Wasm ABI version"), "{abi}: {log}");
                false
            }
        };
        let in_host = Plugin::load("abi", &path).and_then(|p| p.start(VmOptions::default())).is_ok();
        assert_eq!(in_envoy, ["0_1_0", "0_2_0", "0_2_1"].contains(&abi), "Envoy 1.40 and ABI {abi}");
        assert_eq!(in_host, in_envoy || abi == "0_2_100", "the host and ABI {abi}");
    }
}
