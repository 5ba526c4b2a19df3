//! Delivery to Envoy gateways: what is serving (Ready plugins targeting Envoy) goes to the xDS
//! server in chain order, and their modules, only theirs, to the module server. Gateway ACKs and
//! NACKs come back as reconciles of the plugin, which writes them into the Programmed condition.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;
use wasmplug_xds::tls::OnRefused;
use wasmplug_xds::{DeliveryState, Feedback, ModuleServer, PluginFilter, Resource};
use wasmplug_xds::{ServerTls, TlsMaterial, Transport, XdsOptions, XdsServer};

use super::Serving;
use super::metrics::Metrics;
use super::warm::Warm;
use crate::crd::{Target, WasmPlugin, condition};
use crate::error::{Error, Result};
use crate::render::{ModuleSource, Plugin};

/// Where a certificate directory is re-read for renewed files.
pub const TLS_RELOAD_EVERY: Duration = Duration::from_secs(10);

/// How gateways authenticate to the xDS and module servers.
#[derive(Debug, Clone)]
pub enum GatewayAuth {
    /// Mutual TLS with the files of a mounted TLS Secret (`tls.crt`, `tls.key`, `ca.crt`: the
    /// servers' certificate and the CA of gateway certificates), re-read every
    /// [`TLS_RELOAD_EVERY`].
    Files(PathBuf),
    /// Mutual TLS with this material.
    Material(TlsMaterial),
    /// Mutual TLS with certificates of a CA the controller keeps in a Secret.
    ManagedCa(super::certificates::ManagedCa),
    /// No authentication: anyone who reaches the ports gets every plugin's configuration and
    /// module. For local demos only.
    Plaintext,
}

/// Where the xDS and module servers listen, and what the gateway listener looks like.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    pub xds_listen: SocketAddr,
    pub modules_listen: SocketAddr,
    pub auth: GatewayAuth,
    /// The gateway listener's address when the gateway's bootstrap does not set one.
    pub listener_address: String,
    /// The cluster gateways route requests to (defined in their bootstrap).
    pub upstream_cluster: String,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        let xds = XdsOptions::default();
        DeliveryOptions {
            xds_listen: SocketAddr::from(([0, 0, 0, 0], 18000)),
            modules_listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            auth: GatewayAuth::Files(PathBuf::from("/etc/wasmplug/tls")),
            listener_address: xds.listener_address,
            upstream_cluster: xds.upstream_cluster,
        }
    }
}

/// What was last published for one plugin: its filter, where the filter came from, its module.
#[derive(Debug, Clone)]
struct Published {
    filter: PluginFilter,
    owner: ObjectRef<WasmPlugin>,
    generation: Option<i64>,
    sha256: String,
    path: PathBuf,
}

/// The running servers and what was delivered.
#[derive(Debug)]
pub struct Delivery {
    pub xds: XdsServer,
    pub modules: ModuleServer,
    /// Where gateways fetch the modules from, as the filters say.
    module_server: ModuleSource,
    pub xds_addr: SocketAddr,
    /// Filter name → what the xDS server was last given for it.
    published: Mutex<HashMap<String, Published>>,
    /// Whether the last publish held back a plugin's new filter (its module could not be served).
    holding_back: AtomicBool,
    warm: Warm,
}

/// The filter name of a plugin in Envoy (also its ECDS resource name).
pub fn filter_name(o: &WasmPlugin) -> String {
    use kube::ResourceExt;
    format!("{}.{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// The filter of one serving plugin: the one `render::envoy_filter` renders.
pub fn plugin_filter(s: &Serving, server: &ModuleSource) -> PluginFilter {
    let plugin = Plugin { object: &s.object, module: &s.resolved.module };
    PluginFilter {
        name: plugin.id(),
        match_labels: s.object.spec.selector.as_ref().map(|s| s.match_labels.clone()).unwrap_or_default(),
        filter: plugin.wasm_filter(server),
    }
}

/// The plugins for Envoy in chain order.
fn for_envoy(serving: &BTreeMap<String, Serving>) -> Vec<&Serving> {
    let mut envoy: Vec<&Serving> =
        serving.values().filter(|s| s.object.spec.effective_targets().contains(&Target::Envoy)).collect();
    envoy.sort_by_cached_key(|s| Plugin { object: &s.object, module: &s.resolved.module }.chain_key());
    envoy
}

impl Delivery {
    /// Binds both servers; refused gateway connections are counted in `metrics`.
    pub async fn start(
        options: &DeliveryOptions,
        module_server: &ModuleSource,
        metrics: &Arc<Metrics>,
        client: &kube::Client,
    ) -> Result<Delivery> {
        let xds = XdsServer::new(XdsOptions {
            listener_address: options.listener_address.clone(),
            upstream_cluster: options.upstream_cluster.clone(),
        });
        // Nothing goes out before the initial sync (`operator::run` releases it).
        xds.hold();
        let counted = Arc::clone(metrics);
        let on_refused: OnRefused = Arc::new(move |r| counted.gateway_refused(r.server, r.reason.as_str()));
        let tls_error = |source| Error::Tls { what: "the xDS and module servers' certificates".into(), source };
        let transport = match &options.auth {
            GatewayAuth::Plaintext => {
                tracing::warn!(
                    "serving xDS and modules WITHOUT authentication (--insecure-plaintext): any process that reaches the ports gets every plugin's configuration and module; for local demos only"
                );
                Transport::Plaintext
            }
            GatewayAuth::Material(m) => {
                Transport::Mtls { tls: ServerTls::new(m).map_err(tls_error)?, on_refused: Some(on_refused) }
            }
            GatewayAuth::ManagedCa(ca) => {
                Transport::Mtls { tls: ca.clone().start(client.clone()).await?, on_refused: Some(on_refused) }
            }
            GatewayAuth::Files(dir) => {
                let material = TlsMaterial::read_dir(dir).map_err(tls_error)?;
                let tls = ServerTls::new(&material).map_err(tls_error)?;
                tls.watch_dir(dir.clone(), TLS_RELOAD_EVERY);
                Transport::Mtls { tls, on_refused: Some(on_refused) }
            }
        };
        let modules = match &transport {
            Transport::Plaintext => ModuleServer::bind(options.modules_listen).await,
            Transport::Mtls { .. } => {
                ModuleServer::bind_mtls(options.modules_listen, transport.clone(), xds.clone()).await
            }
        }
        .map_err(|source| Error::Listen { what: format!("module server {}", options.modules_listen), source })?;
        let xds_addr = xds
            .serve_with(options.xds_listen, transport)
            .await
            .map_err(|source| Error::Xds { what: format!("xDS server {}", options.xds_listen), source })?;
        Ok(Delivery {
            xds,
            modules,
            module_server: module_server.clone(),
            xds_addr,
            published: Mutex::new(HashMap::new()),
            holding_back: AtomicBool::new(false),
            warm: Warm::default(),
        })
    }

    /// Publishes what is serving: modules first (so a gateway can fetch what it is told about),
    /// then the filters. A plugin whose module the module server cannot serve keeps the filter
    /// published before (none if there was none); see [`Delivery::holding_back`].
    /// Returns the plugins whose delivered generation changed (their Programmed condition is due).
    pub fn publish(&self, serving: &BTreeMap<String, Serving>) -> Result<Vec<ObjectRef<WasmPlugin>>> {
        let before = self.published.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let (chosen, held_back) = self.servable(for_envoy(serving), &before);
        self.modules.set_modules(chosen.iter().map(|p| (p.sha256.clone(), p.path.clone())));
        let filters: Vec<PluginFilter> = chosen.iter().map(|p| p.filter.clone()).collect();
        let version =
            self.xds.update(filters).map_err(|source| Error::Xds { what: "the gateways' plugins".into(), source })?;
        tracing::debug!(version, "published to gateways");
        self.holding_back.store(held_back, Ordering::Relaxed);
        let next: HashMap<String, Published> = chosen.into_iter().map(|p| (p.filter.name.clone(), p)).collect();
        let same = |a: &Published, b: &Published| a.owner == b.owner && a.generation == b.generation;
        let mut changed: Vec<ObjectRef<WasmPlugin>> = next
            .iter()
            .filter(|(k, p)| !before.get(*k).is_some_and(|b| same(b, p)))
            .map(|(_, p)| p.owner.clone())
            .collect();
        changed.extend(before.iter().filter(|(k, _)| !next.contains_key(*k)).map(|(_, p)| p.owner.clone()));
        *self.published.lock().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(changed)
    }

    /// Whether the last publish held back a new filter: publish again until it does not.
    pub fn holding_back(&self) -> bool {
        self.holding_back.load(Ordering::Relaxed)
    }

    /// For each plugin, in order: its filter when its module can be served, else the one
    /// published before when that one's module still can. True when one was held back.
    fn servable(&self, plugins: Vec<&Serving>, before: &HashMap<String, Published>) -> (Vec<Published>, bool) {
        let mut chosen = Vec::with_capacity(plugins.len());
        let mut held_back = false;
        for s in plugins {
            let name = filter_name(&s.object);
            let (sha256, path) = (&s.resolved.module.module_sha256, &s.resolved.path);
            if self.warm.servable(sha256, path) {
                chosen.push(Published {
                    filter: plugin_filter(s, &self.module_server),
                    owner: ObjectRef::from(&s.object),
                    generation: s.generation,
                    sha256: sha256.clone(),
                    path: path.clone(),
                });
                continue;
            }
            held_back = true;
            let previous = before.get(&name).filter(|p| self.warm.servable(&p.sha256, &p.path)).cloned();
            tracing::warn!(
                plugin = %name,
                module = %path.display(),
                kept = ?previous.as_ref().map(|p| p.generation),
                "the module cannot be served (missing or not what its sha256 says): its new filter is held back"
            );
            chosen.extend(previous);
        }
        (chosen, held_back)
    }

    /// The plugin a filter belongs to.
    pub fn owner(&self, filter: &str) -> Option<ObjectRef<WasmPlugin>> {
        self.published.lock().ok()?.get(filter).map(|p| p.owner.clone())
    }

    /// Every delivered plugin (to re-check after a gateway comes or goes).
    pub fn owners(&self) -> Vec<ObjectRef<WasmPlugin>> {
        self.published.lock().map(|d| d.values().map(|p| p.owner.clone()).collect()).unwrap_or_default()
    }

    /// The Programmed condition of a plugin: which gateways run its current config.
    /// `serving` is the generation whose rendering is in place (the current one, or the last
    /// good one while the current is refused).
    pub fn programmed(&self, o: &WasmPlugin, serving: Option<i64>, now: &Time) -> Condition {
        let name = filter_name(o);
        let generation = o.metadata.generation;
        let make = |status: &str, reason: &str, message: String| Condition {
            type_: condition::PROGRAMMED.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: now.clone(),
        };
        let delivered = self.published.lock().ok().and_then(|d| d.get(&name).map(|p| p.generation));
        let Some(delivered_generation) = delivered else {
            return make(
                "Unknown",
                "NotDelivered",
                "not delivered to gateways (not Ready, or not targeting envoy)".into(),
            );
        };
        let which = delivered_generation.map_or_else(|| "the current config".into(), |g| format!("generation {g}"));
        if serving.is_some() && delivered_generation != serving {
            let next = serving.map_or_else(|| "the current config".into(), |g| format!("generation {g}"));
            return make("Unknown", "Pending", format!("{next} is being delivered"));
        }
        let Some(status) = self.xds.plugin_status(&name) else {
            return make("Unknown", "Pending", format!("{which} is being delivered"));
        };
        let nacked = status.nacked();
        if !nacked.is_empty() {
            let detail: Vec<String> =
                nacked.iter().map(|(node, msg)| format!("gateway {node} rejected {which}: {msg}")).collect();
            return make(
                "False",
                "Rejected",
                format!("{}; the previous config keeps serving there", detail.join("; ")),
            );
        }
        if status.nodes.is_empty() {
            return make("Unknown", "NoGateway", "no connected gateway selects this plugin".into());
        }
        let acked = status.acked();
        let pending: Vec<&str> =
            status.nodes.iter().filter(|(_, d)| **d == DeliveryState::Pending).map(|(n, _)| n.as_str()).collect();
        if pending.is_empty() {
            make("True", "Programmed", format!("{which} accepted by gateway(s) {}", acked.join(", ")))
        } else {
            make("Unknown", "Pending", format!("{which} waiting for gateway(s) {}", pending.join(", ")))
        }
    }

    /// Forwards gateway feedback as the plugins whose Programmed condition is due.
    pub async fn forward_feedback(&self, to: mpsc::UnboundedSender<ObjectRef<WasmPlugin>>) {
        let mut feedback = self.xds.subscribe();
        loop {
            let event = match feedback.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    self.owners().into_iter().for_each(|o| drop(to.send(o)));
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let targets = match &event {
                Feedback::Acked { resource: Resource::Filter(f), .. }
                | Feedback::Nacked { resource: Resource::Filter(f), .. } => self.owner(f).into_iter().collect(),
                Feedback::Nacked { resource: Resource::Listener, node, message, .. } => {
                    tracing::warn!(%node, %message, "a gateway refused its listener");
                    Vec::new()
                }
                Feedback::Connected { node, .. } | Feedback::Disconnected { node } => {
                    tracing::info!(%node, event = ?event, "gateway");
                    self.owners()
                }
                Feedback::Acked { .. } => Vec::new(),
            };
            for o in targets {
                if to.send(o).is_err() {
                    return;
                }
            }
        }
    }
}
