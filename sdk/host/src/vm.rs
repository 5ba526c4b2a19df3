//! Loading a module and running one VM of it: the lifecycle calls, the memory cap, the time
//! budget of every call, faults and the fail strategy.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use wasmtime::{Config, Engine, InstancePre, Linker, Module, Store, Trap, TypedFunc, WasmParams, WasmResults};

use crate::abi::LogLevel;
use crate::callout::{CalloutHandler, CalloutReply, HttpResponse, ManualCallouts, RedisReply};
use crate::compile_cache::{Compilation, CompileCache};
use crate::error::{Callback, Fault, FaultKind, HostError, Result};
use crate::grpc::{GrpcCall, GrpcEvent};
use crate::state::{Delivery, HostState, Limiter, LogRecord, Metric, Shared};

/// How often the engine's epoch advances: the granularity of [`VmOptions::call_timeout`].
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

use wasmplug_contract::AbiVersion;
/// What happens to requests when the plugin fails (traps, times out, runs out of memory): as
/// in Envoy, `FailClose` answers 503 to the failing request and every later one, `FailOpen`
/// lets requests through as if the plugin were not there, `FailReload` answers 503 to the
/// failing request and starts a fresh VM for the next one.
pub use wasmplug_contract::FailStrategy;

static ENGINE: OnceLock<std::result::Result<Engine, String>> = OnceLock::new();

/// The process-wide engine (epoch interruption on), with a thread advancing its epoch.
fn engine() -> Result<Engine> {
    let engine = ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasmplug-host-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
        Ok(engine)
    });
    engine.clone().map_err(|reason| HostError::Engine { reason })
}

/// A compiled plugin module, ready to start VMs from. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    name: String,
    engine: Engine,
    pre: InstancePre<HostState>,
    shared: Shared,
    compilation: Compilation,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.inner.name).finish()
    }
}

impl Plugin {
    /// Compiles the `.wasm` (or `.wat`) file at `path`; `name` is the plugin name (Envoy's
    /// `PluginConfig.name`), used in logs, faults and the `plugin_name` property.
    pub fn load(name: impl Into<String>, path: impl AsRef<Path>) -> Result<Plugin> {
        Plugin::build(name.into(), &read_module(path.as_ref())?, None)
    }

    /// Like [`Plugin::load`], through a [`CompileCache`]: a module compiled before on this
    /// machine (same bytes, same engine settings) is loaded instead of compiled.
    pub fn load_cached(name: impl Into<String>, path: impl AsRef<Path>, cache: &CompileCache) -> Result<Plugin> {
        Plugin::build(name.into(), &read_module(path.as_ref())?, Some(cache))
    }

    /// Compiles a module from its bytes (binary wasm, or wat text).
    pub fn from_bytes(name: impl Into<String>, bytes: &[u8]) -> Result<Plugin> {
        Plugin::build(name.into(), bytes, None)
    }

    fn build(name: String, bytes: &[u8], cache: Option<&CompileCache>) -> Result<Plugin> {
        let engine = engine()?;
        let invalid = |reason: String| HostError::InvalidModule { plugin: name.clone(), reason };
        let started = std::time::Instant::now();
        let (module, compilation) = match cache {
            Some(cache) => cache.module(&engine, bytes),
            None => {
                Module::new(&engine, bytes).map(|m| (m, Compilation { took: started.elapsed(), from_cache: false }))
            }
        }
        .map_err(|e| invalid(format!("{e:#}")))?;
        // Every version Envoy 1.40 loads, and Higress's 0.2.100, which upstream Envoy refuses.
        if !module.exports().any(|e| AbiVersion::from_export(e.name()).is_some()) {
            let known: Vec<&str> = AbiVersion::ALL.iter().map(|v| v.export()).collect();
            return Err(invalid(format!(
                "missing or unknown Proxy-Wasm ABI version (exports none of {})",
                known.join(", ")
            )));
        }
        let mut linker = Linker::new(&engine);
        crate::imports::add_to_linker(&mut linker).map_err(|e| invalid(format!("{e:#}")))?;
        crate::wasi::add_to_linker(&mut linker).map_err(|e| invalid(format!("{e:#}")))?;
        crate::wasi::stub_missing(&mut linker, &module).map_err(|e| invalid(format!("{e:#}")))?;
        let pre = linker.instantiate_pre(&module).map_err(|e| {
            let text = format!("{e:#}");
            match text.split('`').nth(1) {
                Some(import) if text.contains("unknown import") => {
                    HostError::MissingImport { plugin: name.clone(), import: import.replace("::", ".") }
                }
                _ => invalid(text),
            }
        })?;
        Ok(Plugin { inner: Arc::new(PluginInner { name, engine, pre, shared: Shared::default(), compilation }) })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How long obtaining the compiled module took, and whether it came from a [`CompileCache`].
    pub fn compilation(&self) -> Compilation {
        self.inner.compilation
    }

    /// The same compiled module under another plugin name, with its own shared data: no
    /// compilation (one module, many plugins).
    pub fn with_name(&self, name: impl Into<String>) -> Plugin {
        let inner = &self.inner;
        Plugin {
            inner: Arc::new(PluginInner {
                name: name.into(),
                engine: inner.engine.clone(),
                pre: inner.pre.clone(),
                shared: Shared::default(),
                compilation: inner.compilation,
            }),
        }
    }

    /// Starts a VM: instantiate, `_initialize`, `proxy_on_vm_start`, the root context and
    /// `proxy_on_configure`. A refused configuration or a fault is an error, as Envoy
    /// refuses such a filter.
    pub fn start(&self, options: VmOptions) -> Result<Vm> {
        Vm::start(self.clone(), options)
    }
}

fn read_module(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| HostError::Read { path: path.display().to_string(), source })
}

/// How to start a VM.
pub struct VmOptions {
    /// The plugin configuration (`PluginConfig.configuration`), usually JSON.
    pub configuration: Vec<u8>,
    /// `vm_config.configuration`.
    pub vm_configuration: Vec<u8>,
    pub root_id: String,
    pub vm_id: String,
    pub fail_strategy: FailStrategy,
    /// Linear memory cap in bytes (default 256 MiB).
    pub memory_limit: usize,
    /// Time budget of one call into the plugin (default 1 s).
    pub call_timeout: Duration,
    /// The level the plugin is told (`proxy_get_log_level`) and below which logs are dropped.
    pub log_level: LogLevel,
    /// Environment variables (`vm_config.environment_variables`).
    pub env: Vec<(String, String)>,
    /// Extra VM-wide properties, e.g. `("node.id", b"gw-1")` (segments joined by `.`).
    pub properties: Vec<(String, Vec<u8>)>,
    /// Also write plugin logs to the `log` crate (target `wasmplug_host::plugin`).
    pub echo_logs: bool,
    pub callouts: Box<dyn CalloutHandler>,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            configuration: Vec::new(),
            vm_configuration: Vec::new(),
            root_id: String::new(),
            vm_id: String::new(),
            fail_strategy: FailStrategy::default(),
            memory_limit: 256 << 20,
            call_timeout: Duration::from_secs(1),
            log_level: LogLevel::Info,
            env: Vec::new(),
            properties: Vec::new(),
            echo_logs: false,
            callouts: Box::new(ManualCallouts),
        }
    }
}

impl VmOptions {
    pub fn configuration(mut self, configuration: impl Into<Vec<u8>>) -> Self {
        self.configuration = configuration.into();
        self
    }
    pub fn fail_strategy(mut self, strategy: FailStrategy) -> Self {
        self.fail_strategy = strategy;
        self
    }
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }
    pub fn property(mut self, path: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.properties.push((path.into(), value.into()));
        self
    }
    pub fn echo_logs(mut self, echo: bool) -> Self {
        self.echo_logs = echo;
        self
    }
    /// Who answers HTTP and Redis callouts (default: nobody, the test answers them).
    pub fn callouts(mut self, handler: impl CalloutHandler + 'static) -> Self {
        self.callouts = Box::new(handler);
        self
    }
}

/// `(context_id, token, headers, body_size, trailers)`.
type CallResponseParams = (i32, i32, i32, i32, i32);

/// The plugin's exports the host calls (absent ones are skipped, as Envoy does).
#[derive(Clone)]
pub(crate) struct Exports {
    pub initialize: Option<TypedFunc<(), ()>>,
    pub on_vm_start: Option<TypedFunc<(i32, i32), i32>>,
    pub on_configure: Option<TypedFunc<(i32, i32), i32>>,
    pub on_context_create: Option<TypedFunc<(i32, i32), ()>>,
    pub on_request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub on_request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub on_request_trailers: Option<TypedFunc<(i32, i32), i32>>,
    pub on_response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub on_response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub on_response_trailers: Option<TypedFunc<(i32, i32), i32>>,
    pub on_http_call_response: Option<TypedFunc<CallResponseParams, ()>>,
    pub on_redis_call_response: Option<TypedFunc<(i32, i32, i32, i32), ()>>,
    pub on_grpc_receive_initial_metadata: Option<TypedFunc<(i32, i32, i32), ()>>,
    pub on_grpc_receive: Option<TypedFunc<(i32, i32, i32), ()>>,
    pub on_grpc_receive_trailing_metadata: Option<TypedFunc<(i32, i32, i32), ()>>,
    pub on_grpc_close: Option<TypedFunc<(i32, i32, i32), ()>>,
    pub on_tick: Option<TypedFunc<i32, ()>>,
    pub on_queue_ready: Option<TypedFunc<(i32, i32), ()>>,
    pub on_done: Option<TypedFunc<i32, i32>>,
    pub on_log: Option<TypedFunc<i32, ()>>,
    pub on_delete: Option<TypedFunc<i32, ()>>,
}

/// A running VM of a plugin: one root context and its HTTP streams.
pub struct Vm {
    pub(crate) plugin: Plugin,
    pub(crate) store: Store<HostState>,
    pub(crate) exports: Exports,
    pub(crate) failed: Option<Fault>,
    pub(crate) fail_strategy: FailStrategy,
    settings: Settings,
    deadline_ticks: u64,
    next_id: u32,
    next_tick: Option<SystemTime>,
    /// VM starts, the first included (more than one with [`FailStrategy::FailReload`]).
    pub(crate) starts: u32,
}

/// What a reload needs to start the VM again.
#[derive(Clone)]
struct Settings {
    configuration: Vec<u8>,
    vm_configuration: Vec<u8>,
    root_id: String,
    vm_id: String,
    memory_limit: usize,
    call_timeout: Duration,
    log_level: LogLevel,
    env: Vec<(String, String)>,
    properties: Vec<(String, Vec<u8>)>,
    echo_logs: bool,
}

pub(crate) const ROOT_ID: u32 = 1;

impl Vm {
    fn start(plugin: Plugin, options: VmOptions) -> Result<Vm> {
        let VmOptions {
            configuration,
            vm_configuration,
            root_id,
            vm_id,
            fail_strategy,
            memory_limit,
            call_timeout,
            log_level,
            env,
            properties,
            echo_logs,
            callouts,
        } = options;
        let settings = Settings {
            configuration,
            vm_configuration,
            root_id,
            vm_id,
            memory_limit,
            call_timeout,
            log_level,
            env,
            properties,
            echo_logs,
        };
        Vm::start_with(plugin, settings, fail_strategy, callouts, 1)
    }

    fn start_with(
        plugin: Plugin,
        settings: Settings,
        fail_strategy: FailStrategy,
        callouts: Box<dyn CalloutHandler>,
        starts: u32,
    ) -> Result<Vm> {
        let name = plugin.inner.name.clone();
        let mut properties: HashMap<String, Vec<u8>> = settings.properties.iter().cloned().collect();
        properties.insert("plugin_name".into(), name.clone().into_bytes());
        properties.insert("plugin_root_id".into(), settings.root_id.clone().into_bytes());
        properties.insert("plugin_vm_id".into(), settings.vm_id.clone().into_bytes());
        let state = HostState {
            plugin: name.clone(),
            vm_id: settings.vm_id.clone(),
            limits: Limiter { max_memory: settings.memory_limit, denied: false },
            memory: None,
            malloc: None,
            root_id: ROOT_ID,
            current: 0,
            effective: 0,
            streams: HashMap::new(),
            plugin_config: settings.configuration.clone(),
            vm_config: settings.vm_configuration.clone(),
            properties,
            log_level: settings.log_level,
            logs: Vec::new(),
            last_critical: None,
            unsupported_wasi: None,
            tick_period: None,
            clock_offset: Duration::ZERO,
            frozen_clock: None,
            shared: plugin.inner.shared.clone(),
            metrics: Vec::new(),
            callouts,
            next_token: 0,
            http_calls: Vec::new(),
            redis_calls: Vec::new(),
            grpc_calls: Vec::new(),
            redis_clusters: Default::default(),
            deliveries: Default::default(),
            call_response: None,
            redis_response: None,
            grpc_message: None,
            grpc_metadata: None,
            grpc_status: (0, String::new()),
            env: settings.env.clone(),
            echo_logs: settings.echo_logs,
        };
        let mut store = Store::new(&plugin.inner.engine, state);
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_trap();
        let deadline_ticks = (settings.call_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1;
        store.set_epoch_deadline(deadline_ticks);
        let instance = plugin
            .inner
            .pre
            .instantiate(&mut store)
            .map_err(|e| HostError::Instantiate { plugin: name.clone(), reason: format!("{e:#}") })?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| HostError::MissingExport { plugin: name.clone(), export: "memory".into() })?;
        let malloc = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut store, "malloc"))
            .map_err(|_| HostError::MissingExport {
                plugin: name.clone(),
                export: "proxy_on_memory_allocate".into(),
            })?;
        store.data_mut().memory = Some(memory);
        store.data_mut().malloc = Some(malloc);
        macro_rules! export {
            ($name:literal) => {
                instance.get_typed_func(&mut store, $name).ok()
            };
        }
        let exports = Exports {
            initialize: export!("_initialize"),
            on_vm_start: export!("proxy_on_vm_start"),
            on_configure: export!("proxy_on_configure"),
            on_context_create: export!("proxy_on_context_create"),
            on_request_headers: export!("proxy_on_request_headers"),
            on_request_body: export!("proxy_on_request_body"),
            on_request_trailers: export!("proxy_on_request_trailers"),
            on_response_headers: export!("proxy_on_response_headers"),
            on_response_body: export!("proxy_on_response_body"),
            on_response_trailers: export!("proxy_on_response_trailers"),
            on_http_call_response: export!("proxy_on_http_call_response"),
            on_redis_call_response: export!("proxy_on_redis_call_response"),
            on_grpc_receive_initial_metadata: export!("proxy_on_grpc_receive_initial_metadata"),
            on_grpc_receive: export!("proxy_on_grpc_receive"),
            on_grpc_receive_trailing_metadata: export!("proxy_on_grpc_receive_trailing_metadata"),
            on_grpc_close: export!("proxy_on_grpc_close"),
            on_tick: export!("proxy_on_tick"),
            on_queue_ready: export!("proxy_on_queue_ready"),
            on_done: export!("proxy_on_done"),
            on_log: export!("proxy_on_log"),
            on_delete: export!("proxy_on_delete"),
        };
        let mut vm = Vm {
            plugin,
            store,
            exports,
            failed: None,
            fail_strategy,
            settings,
            deadline_ticks,
            next_id: ROOT_ID + 1,
            next_tick: None,
            starts,
        };
        vm.lifecycle().map_err(|e| {
            let message = format!("{e}");
            vm.store.data_mut().log(LogLevel::Critical, format!("Plugin {name} failed to load: {message}"));
            e
        })?;
        Ok(vm)
    }

    fn lifecycle(&mut self) -> Result<()> {
        let root = ROOT_ID as i32;
        let exports = self.exports.clone();
        self.call(Callback::Initialize, 0, exports.initialize, ()).map_err(HostError::Fault)?;
        // Envoy's order: the root context first, then the VM start and the configuration.
        self.call(Callback::ContextCreate, ROOT_ID, exports.on_context_create.clone(), (root, 0))
            .map_err(HostError::Fault)?;
        let vm_config_len = self.settings.vm_configuration.len() as i32;
        let started = self.call(Callback::VmStart, ROOT_ID, exports.on_vm_start, (root, vm_config_len));
        if started.map_err(HostError::Fault)? == Some(0) {
            return Err(self.refused(Callback::VmStart));
        }
        let config_len = self.settings.configuration.len() as i32;
        let configured = self.call(Callback::Configure, ROOT_ID, exports.on_configure, (root, config_len));
        if configured.map_err(HostError::Fault)? == Some(0) {
            return Err(self.refused(Callback::Configure));
        }
        self.deliver_all().map_err(HostError::Fault)?;
        Ok(())
    }

    fn refused(&self, phase: Callback) -> HostError {
        let log = self.store.data().logs.iter().filter(|l| l.level >= LogLevel::Warn);
        let log = log.map(|l| l.message.as_str()).collect::<Vec<_>>().join("; ");
        HostError::Refused { plugin: self.plugin.inner.name.clone(), phase, log }
    }

    /// Calls into the guest with the time budget, as context `context`. A fault marks the VM
    /// failed; calls on a failed VM are not made.
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        phase: Callback,
        context: u32,
        func: Option<TypedFunc<P, R>>,
        params: P,
    ) -> std::result::Result<Option<R>, Fault> {
        if let Some(failed) = &self.failed {
            return Err(Fault { phase, kind: FaultKind::VmFailed, ..failed.clone() });
        }
        let Some(func) = func else { return Ok(None) };
        let state = self.store.data_mut();
        let (outer_current, outer_effective) = (state.current, state.effective);
        state.current = context;
        state.effective = context;
        state.limits.denied = false;
        state.last_critical = None;
        self.store.set_epoch_deadline(self.deadline_ticks);
        let result = func.call(&mut self.store, params);
        let state = self.store.data_mut();
        state.current = outer_current;
        state.effective = outer_effective;
        match result {
            Ok(value) => Ok(Some(value)),
            Err(err) => {
                let fault = self.make_fault(phase, &err);
                log::error!("{fault}");
                self.store.data_mut().log(LogLevel::Critical, fault.to_string());
                self.failed = Some(fault.clone());
                Err(fault)
            }
        }
    }

    fn make_fault(&self, phase: Callback, err: &wasmtime::Error) -> Fault {
        let state = self.store.data();
        let message = format!("{err:?}");
        let kind = match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => FaultKind::Timeout,
            _ if state.limits.denied => FaultKind::OutOfMemory,
            Some(_) => FaultKind::Trap,
            None if message.contains("proc_exit") => FaultKind::Exit,
            None => FaultKind::Trap,
        };
        Fault {
            plugin: self.plugin.inner.name.clone(),
            phase,
            kind,
            message,
            panic_message: state.last_critical.clone(),
            unsupported_wasi: state.unsupported_wasi.clone(),
        }
    }

    /// With [`FailStrategy::FailReload`], replaces a failed VM by a fresh one.
    pub(crate) fn reload_if_failed(&mut self) -> Result<()> {
        if self.failed.is_none() || self.fail_strategy != FailStrategy::FailReload {
            return Ok(());
        }
        let callouts = std::mem::replace(&mut self.store.data_mut().callouts, Box::new(ManualCallouts));
        let fresh =
            Vm::start_with(self.plugin.clone(), self.settings.clone(), self.fail_strategy, callouts, self.starts + 1)?;
        *self = fresh;
        Ok(())
    }

    pub(crate) fn next_context_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Hands queued callout answers and queue notifications to the plugin.
    pub(crate) fn deliver_all(&mut self) -> std::result::Result<(), Fault> {
        while let Some(delivery) = self.store.data_mut().deliveries.pop_front() {
            self.deliver(delivery)?;
        }
        Ok(())
    }

    pub(crate) fn deliver(&mut self, delivery: Delivery) -> std::result::Result<(), Fault> {
        let exports = self.exports.clone();
        match delivery {
            Delivery::Http { token, reply } => {
                let state = self.store.data_mut();
                let Some(record) = state.http_calls.iter_mut().find(|r| r.call.token == token && !r.answered) else {
                    return Ok(());
                };
                record.answered = true;
                let context = record.call.context_id;
                if context != ROOT_ID && !state.streams.contains_key(&context) {
                    return Ok(());
                }
                let response = match reply {
                    CalloutReply::Response(response) => Some(response),
                    _ => None,
                };
                let (headers, body, trailers) =
                    response.as_ref().map_or((0, 0, 0), |r| (r.headers.len() + 1, r.body.len(), r.trailers.len()));
                state.call_response = response;
                // Envoy makes every callout on the root context and answers it there: a plugin
                // sets the effective context to the stream itself (the SDKs do).
                let params = (ROOT_ID as i32, token as i32, headers as i32, body as i32, trailers as i32);
                let result = self.call(Callback::HttpCallResponse, ROOT_ID, exports.on_http_call_response, params);
                self.store.data_mut().call_response = None;
                result.map(drop)
            }
            Delivery::Redis { token, reply } => {
                let state = self.store.data_mut();
                let Some(record) = state.redis_calls.iter_mut().find(|r| r.call.token == token && !r.answered) else {
                    return Ok(());
                };
                record.answered = true;
                let (status, bytes) = match reply {
                    RedisReply::Reply(bytes) => (0, bytes),
                    _ => (1, Vec::new()),
                };
                let size = bytes.len() as i32;
                state.redis_response = Some(bytes);
                let params = (ROOT_ID as i32, token as i32, status, size);
                let result = self.call(Callback::RedisCallResponse, ROOT_ID, exports.on_redis_call_response, params);
                self.store.data_mut().redis_response = None;
                result.map(drop)
            }
            Delivery::Grpc { token, event } => self.deliver_grpc(token, event),
            Delivery::QueueReady { queue_id } => {
                let params = (ROOT_ID as i32, queue_id as i32);
                self.call(Callback::QueueReady, ROOT_ID, exports.on_queue_ready, params).map(drop)
            }
        }
    }

    /// Calls `proxy_on_tick` once.
    pub fn tick(&mut self) -> std::result::Result<(), Fault> {
        let on_tick = self.exports.on_tick.clone();
        self.call(Callback::Tick, ROOT_ID, on_tick, ROOT_ID as i32)?;
        self.deliver_all()
    }

    /// Moves the plugin's clock forward by `by` and runs the ticks that fall due, each at its
    /// exact due time. From the first call on, the plugin's clock only moves with `advance`.
    pub fn advance(&mut self, by: Duration) -> std::result::Result<usize, Fault> {
        let start = self.store.data().now();
        let target = start + by;
        self.store.data_mut().frozen_clock = Some(start);
        let mut ran = 0;
        while let Some(period) = self.store.data().tick_period {
            let due = *self.next_tick.get_or_insert(start + period);
            if due > target {
                break;
            }
            self.store.data_mut().frozen_clock = Some(due);
            self.next_tick = Some(due + period);
            self.tick()?;
            ran += 1;
        }
        self.store.data_mut().frozen_clock = Some(target);
        Ok(ran)
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// The tick period the plugin asked for.
    pub fn tick_period(&self) -> Option<Duration> {
        self.store.data().tick_period
    }

    /// Everything the plugin logged at or above the VM's log level, oldest first.
    pub fn logs(&self) -> &[LogRecord] {
        &self.store.data().logs
    }

    /// Whether some log line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs().iter().any(|l| l.message.contains(needle))
    }

    pub fn clear_logs(&mut self) {
        self.store.data_mut().logs.clear();
    }

    pub fn metrics(&self) -> &[Metric] {
        &self.store.data().metrics
    }

    /// A metric's value by name (as defined by the plugin, without Envoy's `wasmcustom.` prefix).
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.metrics().iter().find(|m| m.name == name).map(|m| m.value)
    }

    /// The shared data value under `key` (shared by every VM of this plugin).
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        self.store.data().shared.lock().data.get(key).map(|(v, _)| v.clone())
    }

    pub fn set_shared_data(&self, key: &str, value: impl Into<Vec<u8>>) {
        let mut store = self.store.data().shared.lock();
        let cas = store.data.get(key).map_or(1, |(_, c)| c.wrapping_add(1).max(1));
        store.data.insert(key.to_string(), (value.into(), cas));
    }

    /// The fault that failed this VM, if any.
    pub fn fault(&self) -> Option<&Fault> {
        self.failed.as_ref()
    }

    /// How many times a VM was started (reloads after faults included).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The guest's linear memory size in bytes.
    pub fn memory_size(&self) -> usize {
        self.store.data().memory.map_or(0, |m| m.data_size(&self.store))
    }

    /// Answers a callout made outside an HTTP stream (e.g. from a tick).
    pub fn answer_http_call(&mut self, token: u32, reply: CalloutReply) -> std::result::Result<(), Fault> {
        self.deliver(Delivery::Http { token, reply })?;
        self.deliver_all()
    }

    /// Delivers a gRPC event for a call made outside an HTTP stream (e.g. from a tick).
    pub fn answer_grpc(&mut self, token: u32, event: GrpcEvent) -> std::result::Result<(), Fault> {
        self.deliver(Delivery::Grpc { token, event })?;
        self.deliver_all()
    }

    /// Every gRPC call and stream the plugin opened, closed or not.
    pub fn grpc_calls(&self) -> Vec<GrpcCall> {
        self.store.data().grpc_calls.iter().map(|r| r.call.clone()).collect()
    }

    /// Every HTTP call the plugin dispatched, answered or not.
    pub fn http_calls(&self) -> Vec<crate::callout::HttpCall> {
        self.store.data().http_calls.iter().map(|r| r.call.clone()).collect()
    }
}

/// An [`HttpResponse`] for a callout answer.
pub fn callout_response(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> CalloutReply {
    let mut response = HttpResponse::new(status, body);
    for (k, v) in headers {
        response = response.header(*k, *v);
    }
    CalloutReply::Response(response)
}
