//! # wasmplug-host
//!
//! A proxy-wasm host (ABI 0.2.1, plus Higress's Redis functions) on wasmtime: run and test
//! Envoy/Higress plugins without a gateway.
//!
//! ```no_run
//! use wasmplug_host::{HttpResponse, Plugin, Request, VmOptions};
//!
//! let plugin = Plugin::load("hello-world", "target/wasm32-wasip1/wasm/hello_world.wasm").unwrap();
//! let mut vm = plugin.start(VmOptions::default().configuration(r#"{"mockEnable":false}"#)).unwrap();
//! let mut upstream = HttpResponse::new(200, "upstream ok");
//! let exchange = vm.run(&Request::get("/"), &mut upstream).unwrap();
//! assert_eq!(exchange.upstream_request.unwrap().header("hello"), Some("world"));
//! ```
//!
//! - [`Plugin`] compiles a module once (or loads it compiled from a [`CompileCache`]); [`Plugin::start`] starts a [`Vm`] (instantiate,
//!   `_initialize`, `proxy_on_vm_start`, `proxy_on_configure`) with a memory cap and a time
//!   budget per call (epoch interruption).
//! - [`Vm::run`] drives a whole request as Envoy does and returns an [`Exchange`]: what the
//!   upstream and the client saw, the local reply, callouts, a fault.
//! - [`run_shared`] does the same for a VM shared by concurrent requests (as on an Envoy
//!   worker): the upstream and callout answers ([`Answers`]) are awaited outside the plugin.
//! - [`Vm::stream`] gives a [`Stream`] to drive each phase by hand, answer callouts
//!   ([`Stream::answer_http_call`], [`Stream::answer_redis_call`]) and read back headers and bodies.
//! - A fault (trap, panic, timeout, memory cap) never takes the host down: it is reported as a
//!   [`Fault`] naming the plugin and phase, and the [`FailStrategy`] decides the request.

pub mod abi;
mod callout;
mod compile_cache;
mod drive;
mod error;
mod exchange;
mod grpc;
mod imports;
mod memory;
mod state;
mod stream;
mod vm;
mod wasi;

pub use abi::{Action, LogLevel, Pairs};
pub use callout::{
    CalloutHandler, CalloutReply, FnCallouts, HttpCall, HttpResponse, ManualCallouts, RedisCall, RedisReply,
    decode_command, encode_command,
};
pub use compile_cache::{Compilation, CompileCache};
pub use drive::run_shared;
pub use error::{Callback, Fault, FaultKind, HostError, Result};
pub use exchange::{Answer, Answers, AsyncUpstream, Exchange, NoAnswers, Request, Upstream, UpstreamRequest};
pub use grpc::{
    GrpcCall, GrpcEnd, GrpcEvent, GrpcKind, GrpcReply, MessageReader as GrpcMessageReader, code as grpc_status,
    frame_message as frame_grpc_message,
};
pub use state::{LocalResponse, LogRecord, Metric, MetricKind};
pub use stream::Stream;
pub use vm::{EPOCH_TICK, FailStrategy, Plugin, Vm, VmOptions, callout_response};
