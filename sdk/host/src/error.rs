//! The crate's error type.

use std::fmt;

/// The proxy-wasm callback (or `_initialize`) a fault or refusal happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Callback {
    Initialize,
    VmStart,
    Configure,
    ContextCreate,
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    HttpCallResponse,
    RedisCallResponse,
    GrpcReceiveInitialMetadata,
    GrpcReceive,
    GrpcReceiveTrailingMetadata,
    GrpcClose,
    Tick,
    QueueReady,
    Done,
    Log,
    Delete,
}

impl fmt::Display for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Callback::Initialize => "_initialize",
            Callback::VmStart => "proxy_on_vm_start",
            Callback::Configure => "proxy_on_configure",
            Callback::ContextCreate => "proxy_on_context_create",
            Callback::RequestHeaders => "proxy_on_request_headers",
            Callback::RequestBody => "proxy_on_request_body",
            Callback::RequestTrailers => "proxy_on_request_trailers",
            Callback::ResponseHeaders => "proxy_on_response_headers",
            Callback::ResponseBody => "proxy_on_response_body",
            Callback::ResponseTrailers => "proxy_on_response_trailers",
            Callback::HttpCallResponse => "proxy_on_http_call_response",
            Callback::RedisCallResponse => "proxy_on_redis_call_response",
            Callback::GrpcReceiveInitialMetadata => "proxy_on_grpc_receive_initial_metadata",
            Callback::GrpcReceive => "proxy_on_grpc_receive",
            Callback::GrpcReceiveTrailingMetadata => "proxy_on_grpc_receive_trailing_metadata",
            Callback::GrpcClose => "proxy_on_grpc_close",
            Callback::Tick => "proxy_on_tick",
            Callback::QueueReady => "proxy_on_queue_ready",
            Callback::Done => "proxy_on_done",
            Callback::Log => "proxy_on_log",
            Callback::Delete => "proxy_on_delete",
        };
        f.write_str(name)
    }
}

/// Why a plugin call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A WebAssembly trap (`unreachable`, out-of-bounds access, ...). A Rust panic in a
    /// `panic = "abort"` module ends this way; [`Fault::panic_message`] holds what it logged.
    Trap,
    /// The call ran past its time budget (epoch interruption).
    Timeout,
    /// The module tried to grow its memory past the cap.
    OutOfMemory,
    /// The module called `proc_exit`.
    Exit,
    /// The VM had already failed: the call was not made.
    VmFailed,
}

/// A misbehaving plugin: what happened, in which plugin and phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub plugin: String,
    pub phase: Callback,
    pub kind: FaultKind,
    /// The trap message (and wasm backtrace when wasmtime gives one).
    pub message: String,
    /// The last critical log line before the trap: the panic message of Rust SDKs.
    pub panic_message: Option<String>,
    /// A WASI function the host does not provide that the plugin called before the fault (it was
    /// answered `ENOSYS`): the fault may be the host's gap rather than the plugin's.
    pub unsupported_wasi: Option<String>,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin `{}` failed in {} ({:?}): {}", self.plugin, self.phase, self.kind, self.message)?;
        if let Some(panic) = &self.panic_message {
            write!(f, "; it logged: {panic}")?;
        }
        if let Some(name) = &self.unsupported_wasi {
            write!(f, "; it called the WASI function `{name}`, which this host answers ENOSYS")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in the host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("plugin `{plugin}`: invalid module: {reason}")]
    InvalidModule { plugin: String, reason: String },
    #[error("plugin `{plugin}`: the host does not provide the import `{import}`")]
    MissingImport { plugin: String, import: String },
    #[error("plugin `{plugin}`: the module does not export `{export}`")]
    MissingExport { plugin: String, export: String },
    #[error("plugin `{plugin}`: cannot instantiate: {reason}")]
    Instantiate { plugin: String, reason: String },
    /// The host's own engine could not start (no plugin is at fault).
    #[error("the host's wasmtime engine cannot start: {reason}")]
    Engine { reason: String },
    #[error("{0}")]
    Fault(Fault),
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false; `log` holds what the
    /// plugin logged at warn level or above while starting.
    #[error("plugin `{plugin}`: {phase} returned false (configuration refused): {log}")]
    Refused { plugin: String, phase: Callback, log: String },
    #[error("plugin `{plugin}`: {reason}")]
    Usage { plugin: String, reason: String },
}

impl HostError {
    /// The fault, when the error is a misbehaving plugin.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            HostError::Fault(fault) => Some(fault),
            _ => None,
        }
    }
}

pub type Result<T, E = HostError> = std::result::Result<T, E>;
