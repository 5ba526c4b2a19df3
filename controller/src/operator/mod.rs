//! In-cluster mode: watch WasmPlugins, reconcile each (resolve, validate, render, apply, status),
//! and serve metrics and health. What is in place is published in [`Context::serving`] for the
//! delivery to Envoy.

pub mod certificates;
pub mod delivery;
pub mod http;
pub mod leader;
pub mod metrics;
mod programmed;
pub mod pull_secret;
mod reconcile;
pub mod targets;
mod warm;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::utils::Predicate;
use kube::runtime::{Controller, WatchStreamExt, controller, predicates, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use wasmplug_oci::{Cache, Registry, RegistryConfig};

use crate::crd::WasmPlugin;
use crate::error::{Error, Result};
use crate::render::ModuleSource;
use crate::resolve::Resolved;

pub use reconcile::{FINALIZER, backoff};

/// How the in-cluster controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub cache_dir: PathBuf,
    pub insecure_registries: Vec<String>,
    /// Watch one namespace only; `None`: all namespaces.
    pub watch_namespace: Option<String>,
    /// Reconciles in parallel.
    pub concurrency: u16,
    /// `/metrics`, `/healthz`, `/readyz`; `None`: not served.
    pub metrics_listen: Option<SocketAddr>,
    pub module_server: ModuleSource,
    /// Accept `file://` urls (paths on the controller's own disk). Off in clusters.
    pub allow_file_urls: bool,
    /// How often a Ready plugin is checked again (tags under `Always` may move).
    pub resync: Duration,
    /// Reconcile only while holding this Lease.
    pub leader_election: Option<leader::Election>,
    /// Serve xDS and modules to Envoy gateways.
    pub delivery: Option<delivery::DeliveryOptions>,
    /// The pre-flight host's limits; `None`: no pre-flight (`--no-preflight`).
    pub preflight: Option<crate::preflight::Limits>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_dir: PathBuf::from("/var/cache/wasmplug"),
            insecure_registries: Vec::new(),
            watch_namespace: None,
            concurrency: 4,
            metrics_listen: None,
            module_server: ModuleSource::default(),
            allow_file_urls: false,
            resync: Duration::from_secs(600),
            leader_election: None,
            delivery: None,
            preflight: Some(crate::preflight::Limits::default()),
        }
    }
}

/// One plugin whose rendering is in place: the generation it came from and its module.
#[derive(Debug, Clone, PartialEq)]
pub struct Serving {
    pub generation: Option<i64>,
    pub object: WasmPlugin,
    pub resolved: Resolved,
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub cache: Cache,
    pub registry: Registry,
    pub options: Options,
    pub metrics: Arc<metrics::Metrics>,
    /// `namespace/name` → what is in place. Watch it to deliver changes.
    pub serving: watch::Sender<BTreeMap<String, Serving>>,
    failures: Mutex<HashMap<String, u32>>,
    /// (credentials, manifest digest) pairs the registry confirmed.
    verified: Mutex<HashSet<(String, String)>>,
    /// The rendered objects this process applied, by (target, owner uid): unchanged ones are
    /// not written again.
    applied: Mutex<HashMap<(crate::crd::Target, String), String>>,
    /// Things said once in the log (missing API resources).
    said: Mutex<HashSet<String>>,
    /// `namespace/name` of every object reconciled by this process (the initial sync).
    reconciled: Mutex<HashSet<String>>,
    recorder: Recorder,
    events: AtomicBool,
    /// The xDS and module servers, when gateways are served.
    pub delivery: Option<Arc<delivery::Delivery>>,
    /// Every valid config starts here before a gateway gets it.
    pub preflight: Arc<crate::preflight::Preflight>,
    /// Plugins whose Programmed condition is due (gateway feedback, deliveries, status writes).
    programmed: programmed::Due,
    programmed_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<kube::runtime::reflector::ObjectRef<WasmPlugin>>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(client: Client, options: Options) -> Result<Self> {
        let config = RegistryConfig { insecure_registries: options.insecure_registries.clone(), ..Default::default() };
        let registry = Registry::new(config)?;
        let cache = Cache::new(&options.cache_dir, registry.clone())?;
        let reporter = Reporter { controller: "wasmplug-controller".into(), instance: std::env::var("POD_NAME").ok() };
        let (programmed, programmed_rx) = tokio::sync::mpsc::unbounded_channel();
        let preflight = Arc::new(match &options.preflight {
            Some(limits) => crate::preflight::Preflight::new(limits.clone()),
            None => crate::preflight::Preflight::off(),
        });
        Ok(Context {
            preflight,
            recorder: Recorder::new(client.clone(), reporter),
            client,
            cache,
            registry,
            options,
            metrics: Arc::new(metrics::Metrics::default()),
            serving: watch::Sender::new(BTreeMap::new()),
            failures: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashSet::new()),
            applied: Mutex::new(HashMap::new()),
            said: Mutex::new(HashSet::new()),
            reconciled: Mutex::new(HashSet::new()),
            events: AtomicBool::new(true),
            delivery: None,
            programmed,
            programmed_rx: Mutex::new(Some(programmed_rx)),
        })
    }

    /// Starts the xDS and module servers of `options.delivery`, if any.
    pub async fn start_delivery(mut self) -> Result<Self> {
        if let Some(d) = &self.options.delivery {
            let started =
                delivery::Delivery::start(d, &self.options.module_server, &self.metrics, &self.client).await?;
            tracing::info!(xds = %started.xds_addr, modules = %started.modules.local_addr(), "serving gateways");
            self.delivery = Some(Arc::new(started));
        }
        Ok(self)
    }

    /// Logs `message` the first time `key` is seen.
    fn say_once(&self, key: &str, message: &str) {
        let first = self.said.lock().map(|mut s| s.insert(key.to_string())).unwrap_or(false);
        if first {
            tracing::warn!("{message}");
        }
    }
}

/// Watches WasmPlugins and reconciles them until the process is asked to stop. `ready` turns
/// true once the first list of WasmPlugins is in.
pub async fn run(ctx: Arc<Context>, ready: Arc<AtomicBool>) {
    let api: Api<WasmPlugin> = match &ctx.options.watch_namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let config = controller::Config::default().concurrency(ctx.options.concurrency);
    // The cache keeps objects without managedFields and the last-applied annotation (memory),
    // and only generation or finalizer changes trigger a reconcile: the controller's own status
    // writes do not come back as work.
    let (reader, writer) = reflector::store();
    let synced = Arc::clone(&ready);
    let stream = watcher(api, watcher::Config::default().any_semantic().page_size(100))
        .default_backoff()
        .modify(|o: &mut WasmPlugin| {
            o.managed_fields_mut().clear();
            o.annotations_mut().remove("kubectl.kubernetes.io/last-applied-configuration");
        })
        .reflect(writer)
        .inspect_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) && !ready.swap(true, Ordering::Relaxed) {
                tracing::info!("the WasmPlugin watch has synced");
            }
        })
        .applied_objects()
        .predicate_filter(predicates::generation.combine(predicates::finalizers), Default::default());
    let controller = Controller::for_stream(stream, reader.clone()).with_config(config);
    // Gateway feedback and deliveries rewrite Programmed only; they never re-run the pipeline.
    let due = ctx.programmed_rx.lock().ok().and_then(|mut rx| rx.take());
    if let Some(d) = ctx.delivery.clone() {
        tokio::spawn(release_after_sync(ctx.clone(), d, reader.clone(), synced));
    }
    if let (Some(d), Some(due)) = (ctx.delivery.clone(), due) {
        tokio::spawn(programmed::run(ctx.clone(), reader, due));
        tokio::spawn(publish_changes(d.clone(), ctx.serving.subscribe(), ctx.programmed.clone()));
        let to = ctx.programmed.clone();
        tokio::spawn(async move { d.forward_feedback(to).await });
    }
    controller
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                // A gateway's feedback about a plugin deleted meanwhile.
                Err(controller::Error::ObjectNotFound(o)) => tracing::debug!(object = %o, "gone before its reconcile"),
                Err(e) => tracing::warn!(error = %e, "reconcile loop"),
                Ok(_) => {}
            }
        })
        .await;
}

/// How long gateways wait at most for the initial sync before they are served what is there.
const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves gateways (held by [`delivery::Delivery::start`]) once every WasmPlugin of the initial
/// list has been reconciled, last good states restored included: a restarted controller never
/// pushes an empty or partial state. After [`INITIAL_SYNC_TIMEOUT`] it serves what is there.
async fn release_after_sync(
    ctx: Arc<Context>,
    d: Arc<delivery::Delivery>,
    reader: reflector::Store<WasmPlugin>,
    synced: Arc<AtomicBool>,
) {
    let started = tokio::time::Instant::now();
    loop {
        let listed = synced.load(Ordering::Relaxed);
        let pending: Vec<String> = if listed {
            let done = ctx.reconciled.lock().map(|r| r.clone()).unwrap_or_default();
            reader
                .state()
                .iter()
                .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
                .filter(|k| !done.contains(k))
                .collect()
        } else {
            Vec::new()
        };
        if listed && pending.is_empty() {
            // Let the publisher take the last change before gateways are answered.
            tokio::time::sleep(PUBLISH_INTERVAL * 2).await;
            tracing::info!(took_ms = started.elapsed().as_millis(), "initial sync done: serving gateways");
            d.xds.release();
            return;
        }
        if started.elapsed() > INITIAL_SYNC_TIMEOUT {
            tracing::warn!(?pending, "initial sync incomplete: serving gateways what is in place");
            d.xds.release();
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The least time between two pushes to the gateways: a change after a quiet time goes out at
/// once, and the changes of a burst (a resync, a new image for many plugins) go out together.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(20);

/// How soon a filter held back for its module is tried again.
const HELD_BACK_RETRY: Duration = Duration::from_secs(2);

/// Publishes every change of what is serving to the gateways; the plugins whose delivery changed
/// get their Programmed condition rewritten.
async fn publish_changes(
    d: Arc<delivery::Delivery>,
    mut serving: watch::Receiver<BTreeMap<String, Serving>>,
    programmed: programmed::Due,
) {
    loop {
        let snapshot = serving.borrow_and_update().clone();
        match d.publish(&snapshot) {
            Ok(changed) => changed.into_iter().for_each(|o| drop(programmed.send(o))),
            Err(e) => tracing::error!(error = %e, "publishing to gateways"),
        }
        tokio::time::sleep(PUBLISH_INTERVAL).await;
        // A filter held back for its module is published again once the module can be served.
        if d.holding_back() {
            tokio::select! {
                changed = serving.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(HELD_BACK_RETRY) => {}
            }
        } else if serving.changed().await.is_err() {
            return;
        }
    }
}

/// The in-cluster controller with its metrics and health endpoints.
pub async fn serve(client: Client, options: Options) -> Result<()> {
    let ctx = Arc::new(Context::new(client, options)?.start_delivery().await?);
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(addr) = ctx.options.metrics_listen {
        let health = http::Health { metrics: ctx.metrics.clone(), ready: ready.clone() };
        let bound = http::serve(addr, health).await?;
        tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
    }
    let Some(election) = ctx.options.leader_election.clone() else {
        run(ctx, ready).await;
        return Ok(());
    };
    election.acquire(&ctx.client).await;
    let client = ctx.client.clone();
    tokio::select! {
        () = run(ctx, ready) => Ok(()),
        () = election.hold(&client) => Err(Error::LeadershipLost {
            lease: format!("{}/{}", election.namespace, election.name),
        }),
    }
}
