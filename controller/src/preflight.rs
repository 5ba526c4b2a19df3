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
use wasmplug_host::{HostError, Plugin as HostPlugin, VmOptions};

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

impl Default for Limits {
    fn default() -> Self {
        Limits { memory: 64 << 20, call_timeout: Duration::from_secs(1) }
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
    results: Mutex<HashMap<(String, [u8; 32]), Outcome>>,
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

    /// Starts `object`'s plugin on `resolved`'s module with the configuration its gateways would
    /// get. `Err(Error::Preflight)` when the plugin refuses it or fails.
    pub async fn check(self: &Arc<Self>, object: &WasmPlugin, resolved: &Resolved) -> Result<Verdict> {
        let Some(limits) = self.limits.clone() else {
            return Ok(Verdict::NotRun("pre-flight is off (--no-preflight)".into()));
        };
        let filter = Plugin { object, module: &resolved.module }.wasm_filter(&ModuleSource::default());
        let configuration = filter.configuration.clone().unwrap_or_default();
        let env: Vec<(String, String)> = filter.env.into_iter().collect();
        let key = (resolved.module.module_sha256.clone(), digest(&filter.root_id, &configuration, &env));
        let cached = self.results.lock().ok().and_then(|r| r.get(&key).cloned());
        let outcome = match cached {
            Some(o) => o,
            None => {
                let this = Arc::clone(self);
                let (name, root_id, path) = (filter.name.clone(), filter.root_id, resolved.path.clone());
                let sha = key.0.clone();
                let run = move || {
                    let _one = this.running.lock();
                    this.runs.fetch_add(1, Ordering::Relaxed);
                    let plugin = this.module(&sha, &path)?.with_name(name);
                    let options = VmOptions {
                        configuration: configuration.into_bytes(),
                        root_id: root_id.clone(),
                        vm_id: root_id,
                        memory_limit: limits.memory,
                        call_timeout: limits.call_timeout,
                        env,
                        ..VmOptions::default()
                    };
                    Ok::<_, HostError>(plugin.start(options).map(drop))
                };
                let outcome = match tokio::task::spawn_blocking(run).await {
                    Ok(Ok(Ok(()))) => Outcome::Passed,
                    Ok(Ok(Err(e))) | Ok(Err(e)) => judge(e),
                    Err(e) => Outcome::NotRun(format!("the pre-flight task ended: {e}")),
                };
                if let Ok(mut r) = self.results.lock() {
                    if r.len() >= RESULTS_KEPT {
                        r.clear();
                    }
                    r.insert(key, outcome.clone());
                }
                outcome
            }
        };
        match outcome {
            Outcome::Passed => Ok(Verdict::Passed),
            Outcome::NotRun(why) => Ok(Verdict::NotRun(why)),
            Outcome::Refused(source) => Err(Error::Preflight { source }),
        }
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

/// Refused, unless the fault followed a call to a WASI function the host answers `ENOSYS`.
fn judge(e: HostError) -> Outcome {
    match &e {
        HostError::Fault(f) if f.unsupported_wasi.is_some() => {
            let why = format!("not pre-flighted: the host cannot judge this module ({f})");
            tracing::warn!(%why);
            Outcome::NotRun(why)
        }
        HostError::Read { .. } => Outcome::NotRun(format!("not pre-flighted: {e}")),
        _ => Outcome::Refused(Arc::new(e)),
    }
}

fn digest(root_id: &str, configuration: &str, env: &[(String, String)]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [root_id, configuration] {
        h.update(part.len().to_le_bytes());
        h.update(part);
    }
    for (k, v) in env {
        h.update(k.len().to_le_bytes());
        h.update(k);
        h.update(v.len().to_le_bytes());
        h.update(v);
    }
    h.finalize().into()
}
