//! What the host keeps for one VM: streams, logs, metrics, callouts, and the data shared
//! between the VMs of one [`crate::Host`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use wasmtime::{Memory, ResourceLimiter, TypedFunc};

use crate::abi::{LogLevel, Pairs};
use crate::callout::{CalloutHandler, CalloutReply, HttpCall, HttpResponse, RedisCall, RedisReply};
use crate::grpc::{GrpcCall, GrpcEvent};

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
    /// The context that logged it: an HTTP stream's id, the root context's, or 0 (VM-wide).
    pub context: u32,
}

/// Log records a VM keeps; past this the older half is dropped.
pub const MAX_LOG_RECORDS: usize = 10_000;

/// Kinds of metrics (`proxy_define_metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric a plugin defined; Envoy exports it as `wasmcustom.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
    /// Counter or gauge value (a histogram's last recorded value).
    pub value: u64,
    /// Every value recorded into a histogram.
    pub samples: Vec<u64>,
}

/// A response a plugin sent itself (`proxy_send_local_response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub details: String,
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub grpc_status: i32,
}

/// Per-stream (HTTP context) data.
#[derive(Debug, Default)]
pub struct StreamState {
    pub request_headers: Pairs,
    pub request_body: Vec<u8>,
    pub request_trailers: Pairs,
    pub response_headers: Pairs,
    pub response_body: Vec<u8>,
    pub response_trailers: Pairs,
    pub local_response: Option<LocalResponse>,
    /// `proxy_continue_stream` was called for the request / response.
    pub continue_request: bool,
    pub continue_response: bool,
    /// `proxy_close_stream` was called.
    pub closed: bool,
    /// Header and trailer maps (by map type 0-3) whose phase continued: Envoy no longer lets
    /// the plugin read or change them.
    pub released: [bool; 4],
    /// Properties (request attributes, route, cluster) and what the plugin set.
    pub properties: HashMap<String, Vec<u8>>,
}

/// Shared data and queues, shared by every VM of one host (Envoy shares them per VM id).
#[derive(Debug, Default)]
pub struct SharedStore {
    pub data: HashMap<String, (Vec<u8>, u32)>,
    pub queues: Vec<Queue>,
}

#[derive(Debug)]
pub struct Queue {
    pub vm_id: String,
    pub name: String,
    pub items: VecDeque<Vec<u8>>,
}

/// A handle on the shared store.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<SharedStore>>);

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, SharedStore> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Something to hand to the plugin once the current handler has returned.
#[derive(Debug, Clone)]
pub enum Delivery {
    Http { token: u32, reply: CalloutReply },
    Redis { token: u32, reply: RedisReply },
    Grpc { token: u32, event: GrpcEvent },
    QueueReady { queue_id: u32 },
}

/// A callout and whether it was answered.
#[derive(Debug, Clone)]
pub struct CallRecord<C> {
    pub call: C,
    pub answered: bool,
}

pub struct HostState {
    pub plugin: String,
    pub vm_id: String,
    pub limits: Limiter,
    pub memory: Option<Memory>,
    pub malloc: Option<TypedFunc<i32, i32>>,
    pub root_id: u32,
    /// The context whose handler runs now (0 outside a call).
    pub current: u32,
    /// `proxy_set_effective_context`, else `current`.
    pub effective: u32,
    pub streams: HashMap<u32, StreamState>,
    pub plugin_config: Vec<u8>,
    pub vm_config: Vec<u8>,
    pub properties: HashMap<String, Vec<u8>>,
    pub log_level: LogLevel,
    pub logs: Vec<LogRecord>,
    pub last_critical: Option<String>,
    /// The first WASI function the host does not provide that the plugin called (answered `ENOSYS`).
    pub unsupported_wasi: Option<String>,
    pub tick_period: Option<Duration>,
    pub clock_offset: Duration,
    pub frozen_clock: Option<SystemTime>,
    pub shared: Shared,
    pub metrics: Vec<Metric>,
    pub callouts: Box<dyn CalloutHandler>,
    pub next_token: u32,
    pub http_calls: Vec<CallRecord<HttpCall>>,
    pub redis_calls: Vec<CallRecord<RedisCall>>,
    /// gRPC calls and streams; `answered` once closed.
    pub grpc_calls: Vec<CallRecord<GrpcCall>>,
    pub redis_clusters: HashSet<String>,
    pub deliveries: VecDeque<Delivery>,
    /// The callout answer being delivered (`proxy_on_http_call_response`).
    pub call_response: Option<HttpResponse>,
    /// The Redis reply being delivered (buffer type 9).
    pub redis_response: Option<Vec<u8>>,
    /// The gRPC message being delivered (buffer type 5).
    pub grpc_message: Option<Vec<u8>>,
    /// The gRPC metadata being delivered (map types 4 and 5).
    pub grpc_metadata: Option<Pairs>,
    /// What `proxy_get_status` answers: the status of the gRPC call being closed.
    pub grpc_status: (u32, String),
    /// Environment variables the module sees (WASI `environ_get`).
    pub env: Vec<(String, String)>,
    /// Echo plugin logs to the `log` crate.
    pub echo_logs: bool,
}

impl HostState {
    /// The plugin's clock: real time, until the harness takes it over with `Vm::advance`.
    pub fn now(&self) -> SystemTime {
        self.frozen_clock.unwrap_or_else(|| SystemTime::now() + self.clock_offset)
    }

    /// The stream the current call acts on.
    pub fn stream(&mut self) -> Option<&mut StreamState> {
        self.streams.get_mut(&self.effective)
    }

    pub fn log(&mut self, level: LogLevel, message: String) {
        if level == LogLevel::Critical {
            self.last_critical = Some(message.clone());
        }
        if level < self.log_level {
            return;
        }
        if self.echo_logs {
            let lvl = match level {
                LogLevel::Trace => log::Level::Trace,
                LogLevel::Debug => log::Level::Debug,
                LogLevel::Info => log::Level::Info,
                LogLevel::Warn => log::Level::Warn,
                LogLevel::Error | LogLevel::Critical => log::Level::Error,
            };
            log::log!(target: "wasmplug_host::plugin", lvl, "wasm log {}: {message}", self.plugin);
        }
        if self.logs.len() >= MAX_LOG_RECORDS {
            self.logs.drain(..MAX_LOG_RECORDS / 2);
        }
        self.logs.push(LogRecord { level, message, context: self.effective });
    }

    pub fn next_token(&mut self) -> u32 {
        self.next_token = self.next_token.wrapping_add(1).max(1);
        self.next_token
    }

    /// Looks a property up: the stream's first, then the VM's.
    pub fn property(&self, path: &[String]) -> Option<Vec<u8>> {
        let key = path.join(".");
        if let Some(value) = self.streams.get(&self.effective).and_then(|s| s.properties.get(&key)) {
            return Some(value.clone());
        }
        self.properties.get(&key).cloned()
    }
}

/// Caps a VM's linear memory; remembers a refused growth so the trap that follows (a Rust
/// module aborts when its allocator gets no memory) is reported as out-of-memory.
#[derive(Debug, Clone, Copy)]
pub struct Limiter {
    pub max_memory: usize,
    pub denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
