//! The crate's error type.

use std::fmt;

/// A phase of a plugin's life, named in faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
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
    Tick,
    QueueReady,
    Done,
    Log,
    Delete,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Phase::Initialize => "_initialize",
            Phase::VmStart => "proxy_on_vm_start",
            Phase::Configure => "proxy_on_configure",
            Phase::ContextCreate => "proxy_on_context_create",
            Phase::RequestHeaders => "proxy_on_request_headers",
            Phase::RequestBody => "proxy_on_request_body",
            Phase::RequestTrailers => "proxy_on_request_trailers",
            Phase::ResponseHeaders => "proxy_on_response_headers",
            Phase::ResponseBody => "proxy_on_response_body",
            Phase::ResponseTrailers => "proxy_on_response_trailers",
            Phase::HttpCallResponse => "proxy_on_http_call_response",
            Phase::RedisCallResponse => "proxy_on_redis_call_response",
            Phase::Tick => "proxy_on_tick",
            Phase::QueueReady => "proxy_on_queue_ready",
            Phase::Done => "proxy_on_done",
            Phase::Log => "proxy_on_log",
            Phase::Delete => "proxy_on_delete",
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
    pub phase: Phase,
    pub kind: FaultKind,
    /// The trap message (and wasm backtrace when wasmtime gives one).
    pub message: String,
    /// The last critical log line before the trap: the panic message of Rust SDKs.
    pub panic_message: Option<String>,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin `{}` failed in {} ({:?}): {}", self.plugin, self.phase, self.kind, self.message)?;
        if let Some(panic) = &self.panic_message {
            write!(f, "; it logged: {panic}")?;
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
    #[error("{0}")]
    Fault(Fault),
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false; `log` holds what the
    /// plugin logged at warn level or above while starting.
    #[error("plugin `{plugin}`: {phase} returned false (configuration refused): {log}")]
    Refused { plugin: String, phase: Phase, log: String },
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
