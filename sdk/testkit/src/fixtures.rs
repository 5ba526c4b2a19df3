//! Small proxy-wasm modules written in WebAssembly text, for hostile-plugin and Redis tests.

/// A minimal proxy-wasm module whose `proxy_on_request_headers` body is `request_headers`
/// (a wat instruction sequence leaving an i32 action on the stack).
pub fn module(request_headers: &str) -> String {
    module_with("(i32.const 1)", request_headers)
}

/// The same module with `configure` as the body of `proxy_on_configure` (leaving the i32 it
/// returns: 1 accepts the configuration).
pub fn configure_module(configure: &str) -> String {
    module_with(configure, OK)
}

/// The minimal module with its own `imports` (placed first, as wat requires), `definitions`
/// (globals, data, functions) and the bodies of `proxy_on_configure` (its parameters: root
/// context, configuration size) and `proxy_on_request_headers`. Memory from 65536 on is the
/// allocator's; 1024..4096 is free for scratch use.
pub fn custom_module(imports: &str, definitions: &str, configure: &str, request_headers: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  {definitions}
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    {configure})
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    {request_headers})
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
)"#
    )
}

/// A module whose `proxy_on_configure` calls WASI's `fd_fdstat_set_flags` (which Envoy and the
/// host answer `ENOSYS`) and traps unless it succeeded, as a runtime insisting on non-blocking
/// stdio would.
pub const UNSUPPORTED_WASI: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $set_flags (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (if (i32.ne (call $set_flags (i32.const 1) (i32.const 4)) (i32.const 0)) (then unreachable))
    (i32.const 1))
)"#;

fn module_with(configure: &str, request_headers: &str) -> String {
    custom_module(
        r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#,
        r#"(data (i32.const 1024) "panicked at src/lib.rs:7:5:\nboom")"#,
        configure,
        request_headers,
    )
}

/// Spins forever.
pub const INFINITE_LOOP: &str = "(loop $spin (br $spin)) (i32.const 0)";
/// Traps (`unreachable`).
pub const TRAP: &str = "unreachable";
/// Grows memory 1 MiB at a time until refused, then aborts as Rust's allocator does.
pub const OOM: &str = "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable";
/// Logs a panic message at critical, then aborts: what a Rust proxy-wasm plugin does on panic.
pub const PANIC: &str = "(drop (call $log (i32.const 5) (i32.const 1024) (i32.const 32))) unreachable";
/// Behaves.
pub const OK: &str = "(i32.const 0)";

/// A module using Higress's Redis functions: `proxy_redis_init("redis", "u", "p", 500)` in
/// `proxy_on_configure`; each request sends `GET k` and pauses; the reply (buffer type 9) is
/// added as request header `x-redis`, then the request resumes. A failed call answers 502.
pub const REDIS: &str = r#"(module
  (import "env" "proxy_redis_init" (func $init (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_dispatch_redis_call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (global $stream (mut i32) (i32.const 0))
  (data (i32.const 1024) "redis")
  (data (i32.const 1032) "u")
  (data (i32.const 1036) "p")
  (data (i32.const 1040) "*2\0d\0a$3\0d\0aGET\0d\0a$1\0d\0ak\0d\0a")
  (data (i32.const 1100) "x-redis")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (i32.eqz (call $init (i32.const 1024) (i32.const 5) (i32.const 1032) (i32.const 1)
                         (i32.const 1036) (i32.const 1) (i32.const 500))))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (global.set $stream (local.get $ctx))
    (drop (call $call (i32.const 1024) (i32.const 5) (i32.const 1040) (i32.const 23) (i32.const 2000)))
    (i32.const 1))
  (func (export "proxy_on_redis_call_response") (param i32 i32) (param $status i32) (param $size i32)
    (drop (call $effective (global.get $stream)))
    (if (local.get $status)
      (then
        (drop (call $reply (i32.const 502) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                           (i32.const 0) (i32.const 0) (i32.const -1)))
        (return)))
    (drop (call $get (i32.const 9) (i32.const 0) (local.get $size) (i32.const 2008) (i32.const 2012)))
    (drop (call $add (i32.const 0) (i32.const 1100) (i32.const 7)
                     (i32.load (i32.const 2008)) (i32.load (i32.const 2012))))
    (drop (call $continue (i32.const 0))))
)"#;

/// Answers every request 200 with the plugin configuration it got in `proxy_on_configure`,
/// byte for byte, as the body.
pub fn echo_configuration() -> String {
    custom_module(
        r#"(import "env" "proxy_get_buffer_bytes" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#,
        "(global $config (mut i32) (i32.const 0))\n  (global $config_len (mut i32) (i32.const 0))",
        "(if (local.get 1)
      (then
        (drop (call $get (i32.const 7) (i32.const 0) (local.get 1) (i32.const 1024) (i32.const 1028)))
        (global.set $config (i32.load (i32.const 1024)))
        (global.set $config_len (i32.load (i32.const 1028)))))
    (i32.const 1)",
        "(drop (call $reply (i32.const 200) (i32.const 0) (i32.const 0) (global.get $config) (global.get $config_len)
                       (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1)",
    )
}
