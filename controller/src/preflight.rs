//! Pre-flight: before a (module, configuration) pair reaches any gateway, it starts in the
//! controller's own proxy-wasm host (`wasmplug-host`, on wasmtime) as a gateway would start
//! it: instantiate, `_initialize`, `proxy_on_vm_start`, `proxy_on_configure` with the exact
//! configuration the gateway gets, under a memory cap and a time budget per call.
//!
//! A plugin that refuses its configuration, traps, loops or outgrows the cap is refused
//! ([`Error::Preflight`]) with what it logged; the last good generation keeps serving. Each
//! module compiles once (by sha256); each result is kept by (module sha256, configuration
//! digest). Runs are serialized, so one VM at a time holds pre-flight memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmplug_envoy::WasmFilter;
use wasmplug_host::{FaultKind, HostError, Plugin as HostPlugin, VmOptions};

use crate::crd::WasmPlugin;
use crate::error::{Error, Result};
use crate::render::{ModuleSource, Plugin};
use crate::resolve::Resolved;

/// Compiled modules kept (by sha256; a few MB each); the least recently used goes first when full.
const MODULES_KEPT: usize = 16;
/// Results kept; all are dropped when full (a result is cheap to redo once compiled).
const RESULTS_KEPT: usize = 20_000;

/// What the pre-flight host allows one plugin.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory cap of the VM.
    pub memory: usize,
    /// Time budget of each call (`_initialize`, `proxy_on_vm_start`, `proxy_on_configure`).
    pub call_timeout: Duration,
}

/// The default memory cap, in MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 64;
/// The default time budget per call, in milliseconds.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 1000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: usize::try_from(DEFAULT_MEMORY_MIB << 20).unwrap_or(usize::MAX),
            call_timeout: Duration::from_millis(DEFAULT_CALL_TIMEOUT_MS),
        }
    }
}

/// What the pre-flight said of a pair that was not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It started and took its configuration.
    Passed,
    /// It was not judged, and why: pre-flight is off, or the module faulted after calling a
    /// WASI function this host does not provide (a gap of the host, not proven the plugin's).
    NotRun(String),
}

/// (module sha256, [`digest`] of the filter).
type Key = (String, [u8; 32]);

#[derive(Clone)]
enum Outcome {
    Passed,
    NotRun(String),
    Refused(Arc<HostError>),
}

/// The pre-flight host and its caches; one per process.
pub struct Preflight {
    limits: Option<Limits>,
    modules: Mutex<Vec<(String, HostPlugin)>>,
    results: Mutex<HashMap<Key, Outcome>>,
    /// One run at a time.
    running: Mutex<()>,
    runs: AtomicU64,
}

impl std::fmt::Debug for Preflight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preflight").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Preflight {
    pub fn new(limits: Limits) -> Preflight {
        Preflight::with(Some(limits))
    }

    /// Every pair is [`Verdict::NotRun`] (`--no-preflight`).
    pub fn off() -> Preflight {
        Preflight::with(None)
    }

    fn with(limits: Option<Limits>) -> Preflight {
        Preflight {
            limits,
            modules: Mutex::new(Vec::new()),
            results: Mutex::new(HashMap::new()),
            running: Mutex::new(()),
            runs: AtomicU64::new(0),
        }
    }

    /// Pairs started so far (a pair answered from the results does not count).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Modules compiled and kept.
    pub fn compiled(&self) -> usize {
        self.modules.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Starts `object`'s plugin on `resolved`'s module as its gateways would start it.
    /// `Err(Error::Preflight)` when the plugin refuses its configuration or fails.
    pub async fn check(self: &Arc<Self>, object: &WasmPlugin, resolved: &Resolved) -> Result<Verdict> {
        let Some(limits) = self.limits.clone() else {
            return Ok(Verdict::NotRun("pre-flight is off (--no-preflight)".into()));
        };
        let filter = Plugin { object, module: &resolved.module }.wasm_filter(&ModuleSource::default());
        let key = (resolved.module.module_sha256.clone(), digest(&filter));
        let outcome = match self.result(&key) {
            Some(o) => o,
            None => {
                let this = Arc::clone(self);
                let path = resolved.path.clone();
                let run = move || this.run(&key, &path, &filter, &limits);
                tokio::task::spawn_blocking(run)
                    .await
                    .unwrap_or_else(|e| Outcome::NotRun(format!("not pre-flighted: the pre-flight task ended: {e}")))
            }
        };
        match outcome {
            Outcome::Passed => Ok(Verdict::Passed),
            Outcome::NotRun(why) => Ok(Verdict::NotRun(why)),
            Outcome::Refused(source) => Err(Error::Preflight { source }),
        }
    }

    fn result(&self, key: &Key) -> Option<Outcome> {
        self.results.lock().ok().and_then(|r| r.get(key).cloned())
    }

    /// One run (blocking), at most one at a time; the result of a pair another run judged
    /// meanwhile is taken as it is. Outcomes that say nothing of the plugin are not kept.
    fn run(&self, key: &Key, path: &std::path::Path, filter: &WasmFilter, limits: &Limits) -> Outcome {
        let _one = self.running.lock();
        if let Some(o) = self.result(key) {
            return o;
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        let started =
            self.module(&key.0, path).and_then(|m| m.with_name(&filter.name).start(vm_options(filter, limits)));
        let (outcome, keep) = match started {
            Ok(_vm) => (Outcome::Passed, true),
            Err(e) => judge(e, filter),
        };
        if keep && let Ok(mut r) = self.results.lock() {
            if r.len() >= RESULTS_KEPT {
                r.clear();
            }
            r.insert(key.clone(), outcome.clone());
        }
        outcome
    }

    /// The compiled module of `sha`, compiled from `path` the first time.
    fn module(&self, sha: &str, path: &std::path::Path) -> std::result::Result<HostPlugin, HostError> {
        if let Ok(mut m) = self.modules.lock()
            && let Some(i) = m.iter().position(|(s, _)| s == sha)
        {
            // Most recently used last.
            let entry = m.remove(i);
            let plugin = entry.1.clone();
            m.push(entry);
            return Ok(plugin);
        }
        let plugin = HostPlugin::load(sha, path)?;
        if let Ok(mut m) = self.modules.lock() {
            if m.len() >= MODULES_KEPT {
                m.remove(0);
            }
            m.push((sha.to_string(), plugin.clone()));
        }
        Ok(plugin)
    }
}

/// What the gateway's filter says, as the host's VM options: the same name, root id, VM id,
/// configuration and environment (`host_env_keys` are the gateway's own: not seen here).
fn vm_options(filter: &WasmFilter, limits: &Limits) -> VmOptions {
    VmOptions {
        configuration: filter.configuration.clone().unwrap_or_default().into_bytes(),
        root_id: filter.root_id.clone(),
        vm_id: filter.vm_id.clone(),
        memory_limit: limits.memory,
        call_timeout: limits.call_timeout,
        env: filter.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ..VmOptions::default()
    }
}

/// What a failed start says, and whether to keep it. Refused, unless the failure may be this
/// host's rather than the plugin's: a trap or exit after a WASI call answered `ENOSYS`, an
/// import this host lacks, a plugin reading host environment variables only a gateway has,
/// or the host itself not starting (these are not judged, and not kept when they may pass).
fn judge(e: HostError, filter: &WasmFilter) -> (Outcome, bool) {
    let not_run = |why: String, keep: bool| {
        tracing::warn!(plugin = %filter.name, %why);
        (Outcome::NotRun(why), keep)
    };
    // A loop or a memory blow-up is the plugin's, whatever it read before.
    let runaway = matches!(&e, HostError::Fault(f) if matches!(f.kind, FaultKind::Timeout | FaultKind::OutOfMemory));
    match &e {
        HostError::Fault(f) if f.unsupported_wasi.is_some() && !runaway => {
            not_run(format!("not pre-flighted: the host cannot judge this module ({f})"), true)
        }
        HostError::MissingImport { import, .. } => {
            not_run(format!("not pre-flighted: the module imports `{import}`, which this host does not provide"), true)
        }
        HostError::Read { .. } => not_run(format!("not pre-flighted: {e}"), false),
        HostError::Engine { .. } => not_run(format!("not pre-flighted: {e}"), false),
        _ if !runaway && !filter.host_env_keys.is_empty() => not_run(
            format!(
                "not pre-flighted: the plugin reads host environment variables ({}) that only its gateways have; here it failed: {e}",
                filter.host_env_keys.join(", ")
            ),
            true,
        ),
        _ => (Outcome::Refused(Arc::new(e)), true),
    }
}

/// The digest of everything of the filter a start depends on besides the module.
fn digest(filter: &WasmFilter) -> [u8; 32] {
    let mut h = Sha256::new();
    let configuration = filter.configuration.as_deref().unwrap_or_default();
    let env = filter.env.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]);
    let keys = filter.host_env_keys.iter().map(String::as_str);
    for part in [filter.name.as_str(), &filter.root_id, &filter.vm_id, configuration].into_iter().chain(env).chain(keys)
    {
        h.update(part.len().to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}
