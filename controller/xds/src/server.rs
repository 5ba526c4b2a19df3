//! The ADS server: per-node listeners (LDS) and per-plugin Wasm filters (ECDS), with ACK/NACK
//! bookkeeping.
//!
//! Every ECDS resource goes out in its own `DiscoveryResponse` with its own nonce. Envoy answers
//! each response with a request carrying that nonce, and `error_detail` when it refused the
//! resource, so a NACK names exactly one plugin. (A response carrying several ECDS resources is
//! applied watch by watch and refused as a whole at the first failure, leaving the others half
//! applied and the error hard to attribute.)
//!
//! After a NACK the node is sent back the filter config it last ACKed. Envoy 1.40 builds new
//! listeners from the last config *received* for each ECDS name, even a refused one: without
//! this, every later listener change (adding, removing or reordering plugins) would be NACKed
//! with the refused filter's error until its config is fixed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Any, Struct, value::Kind};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::listen::incoming;
use crate::resources::{ECDS_TYPE, LISTENER_TYPE, listener, wasm_filter};
use crate::tls::{Peer, Protocol, RefusalReason, Transport, name_permits};
use wasmplug_envoy::bootstrap::{LABELS_KEY, LISTENER_KEY, split_host_port};
use wasmplug_envoy::{Code, WasmFilter};

/// One plugin in a gateway's filter chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFilter {
    /// The HTTP filter name and ECDS resource name; unique.
    pub name: String,
    /// The nodes that get it: those whose `LABELS` contain all of these. Empty: every node.
    pub match_labels: BTreeMap<String, String>,
    /// The filter, its code fetched from the module server (`wasmplug_envoy::filter::module_url`).
    pub filter: WasmFilter,
}

impl PluginFilter {
    /// Whether a node with `labels` gets this plugin.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// What the served resources look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdsOptions {
    /// Where the gateway listener binds (`host:port`), unless the node's `WASMPLUG_LISTENER`
    /// metadata says otherwise (the bootstrap sets it).
    pub listener_address: String,
    /// The cluster every request is routed to (a static cluster of the bootstrap).
    pub upstream_cluster: String,
}

impl Default for XdsOptions {
    fn default() -> Self {
        XdsOptions {
            listener_address: "0.0.0.0:10000".into(),
            upstream_cluster: wasmplug_envoy::bootstrap::UPSTREAM_CLUSTER.into(),
        }
    }
}

/// Errors of [`XdsServer`].
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("plugin filter names must not be empty")]
    EmptyName,
    #[error("plugin filter name `{0}` appears twice")]
    DuplicateName(String),
    #[error("plugin filter `{0}`: module sha256 must be 64 lowercase hex digits")]
    BadSha256(String),
    #[error("plugin filter `{0}`: gateways fetch modules from the module server; a local file cannot be delivered")]
    NotRemote(String),
}

/// A served resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// The node's gateway listener.
    Listener,
    /// A plugin's filter (ECDS resource), by name.
    Filter(String),
}

/// What gateways report, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    Connected {
        node: String,
        labels: BTreeMap<String, String>,
    },
    Disconnected {
        node: String,
    },
    /// The node accepted `resource` at `version` (the update that last changed it).
    Acked {
        node: String,
        resource: Resource,
        version: u64,
    },
    /// The node refused it; `message` is Envoy's error detail. Envoy keeps what it had.
    Nacked {
        node: String,
        resource: Resource,
        version: u64,
        message: String,
    },
}

/// Where a resource stands on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not sent yet, or sent and not answered.
    Pending,
    Acked,
    Nacked {
        message: String,
    },
}

/// One plugin's delivery, per connected node that should have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStatus {
    pub name: String,
    /// The update version that last changed this plugin's filter.
    pub version: u64,
    /// Node id to the state of `version` on that node.
    pub nodes: BTreeMap<String, DeliveryState>,
}

impl PluginStatus {
    /// The nodes that ACKed the current version.
    pub fn acked(&self) -> Vec<&str> {
        self.nodes.iter().filter(|(_, d)| **d == DeliveryState::Acked).map(|(n, _)| n.as_str()).collect()
    }

    /// The nodes that NACKed the current version, with Envoy's message.
    pub fn nacked(&self) -> Vec<(&str, &str)> {
        self.nodes
            .iter()
            .filter_map(|(n, d)| match d {
                DeliveryState::Nacked { message } => Some((n.as_str(), message.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// A connected gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub connected_at: SystemTime,
    /// The state of the latest listener sent to it.
    pub listener: DeliveryState,
}

struct Entry {
    filter: PluginFilter,
    version: u64,
    resource: Any,
}

#[derive(Default)]
struct State {
    version: u64,
    plugins: Arc<Vec<Entry>>,
    /// Stream id to node.
    conns: BTreeMap<u64, NodeInfo>,
    /// (node id, plugin name) to the last answered version and its outcome.
    outcomes: HashMap<(String, String), (u64, DeliveryState)>,
}

struct Shared {
    opts: XdsOptions,
    /// While set, nodes connect and ask but get no response (see [`XdsServer::hold`]).
    held: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
    updates: watch::Sender<u64>,
    feedback: broadcast::Sender<Feedback>,
    next_stream: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The xDS server. Cheap to clone; all clones share the state.
#[derive(Clone)]
pub struct XdsServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for XdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsServer").field("opts", &self.shared.opts).field("version", &self.version()).finish()
    }
}

impl XdsServer {
    /// A server with no plugins (version 0). Nothing listens until [`XdsServer::serve`].
    pub fn new(opts: XdsOptions) -> Self {
        let (updates, _) = watch::channel(0);
        let (feedback, _) = broadcast::channel(1024);
        XdsServer {
            shared: Arc::new(Shared {
                opts,
                held: std::sync::atomic::AtomicBool::new(false),
                state: Mutex::new(State::default()),
                updates,
                feedback,
                next_stream: AtomicU64::new(1),
            }),
        }
    }

    /// Binds `addr` (port 0: any free port), serves ADS on it over plaintext to anyone who
    /// reaches it (local demos and tests) and returns the bound address.
    pub async fn serve(&self, addr: SocketAddr) -> Result<SocketAddr, XdsError> {
        self.serve_with(addr, Transport::Plaintext).await
    }

    /// Binds `addr`, serves ADS on it over `transport` in a background task and returns the
    /// bound address. Over mutual TLS a gateway may only use a node id its certificate carries.
    pub async fn serve_with(&self, addr: SocketAddr, transport: Transport) -> Result<SocketAddr, XdsError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| XdsError::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(|source| XdsError::Bind { addr, source })?;
        let connections = incoming(listener, transport.clone(), "xds", Protocol::Grpc);
        let service = AggregatedDiscoveryServiceServer::new(Ads { shared: Arc::clone(&self.shared), transport });
        tokio::spawn(async move {
            let connections = ReceiverStream::new(connections).map(Ok::<_, std::io::Error>);
            let result =
                tonic::transport::Server::builder().add_service(service).serve_with_incoming(connections).await;
            if let Err(e) = result {
                tracing::error!(error = %e, "xDS server stopped");
            }
        });
        Ok(bound)
    }

    /// Replaces the plugins (in chain order) and pushes what changed to the connected nodes.
    /// Returns the new version.
    pub fn update(&self, plugins: Vec<PluginFilter>) -> Result<u64, XdsError> {
        let mut names = BTreeSet::new();
        for p in &plugins {
            if p.name.is_empty() {
                return Err(XdsError::EmptyName);
            }
            if !names.insert(p.name.as_str()) {
                return Err(XdsError::DuplicateName(p.name.clone()));
            }
            let sha = match &p.filter.code {
                Code::Remote(r) => r.sha256.as_str(),
                Code::Local(_) => return Err(XdsError::NotRemote(p.name.clone())),
            };
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(XdsError::BadSha256(p.name.clone()));
            }
        }
        let mut state = self.shared.lock();
        let version = state.version + 1;
        let previous: std::collections::HashMap<&str, &Entry> =
            state.plugins.iter().map(|e| (e.filter.name.as_str(), e)).collect();
        let entries: Vec<Entry> = plugins
            .into_iter()
            .map(|filter| {
                let unchanged = previous.get(filter.name.as_str()).filter(|e| e.filter.filter == filter.filter);
                match unchanged {
                    Some(old) => Entry { resource: old.resource.clone(), version: old.version, filter },
                    None => Entry { resource: wasm_filter(&filter), version, filter },
                }
            })
            .collect();
        state.plugins = Arc::new(entries);
        state.version = version;
        drop(state);
        self.shared.updates.send_replace(version);
        Ok(version)
    }

    /// Holds every response until [`XdsServer::release`]: gateways connect and ask, and keep
    /// what they run, while the caller rebuilds the full state (a restarted controller must not
    /// push an empty or partial one).
    pub fn hold(&self) {
        self.shared.held.store(true, Ordering::SeqCst);
    }

    /// Ends [`XdsServer::hold`]: every connected node gets the current state.
    pub fn release(&self) {
        if self.shared.held.swap(false, Ordering::SeqCst) {
            let version = self.shared.lock().version;
            self.shared.updates.send_replace(version);
        }
    }

    /// Whether responses are held.
    pub fn is_held(&self) -> bool {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// The current version (0 before the first update).
    pub fn version(&self) -> u64 {
        self.shared.lock().version
    }

    /// ACKs, NACKs, connects and disconnects from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Feedback> {
        self.shared.feedback.subscribe()
    }

    /// Per plugin (in chain order): the state of its current version on every connected node
    /// that should have it.
    pub fn status(&self) -> Vec<PluginStatus> {
        let state = self.shared.lock();
        state
            .plugins
            .iter()
            .map(|e| {
                let nodes = state
                    .conns
                    .values()
                    .filter(|n| e.filter.matches(&n.labels))
                    .map(|n| {
                        let delivery = match state.outcomes.get(&(n.id.clone(), e.filter.name.clone())) {
                            Some((v, d)) if *v == e.version => d.clone(),
                            _ => DeliveryState::Pending,
                        };
                        (n.id.clone(), delivery)
                    })
                    .collect();
                PluginStatus { name: e.filter.name.clone(), version: e.version, nodes }
            })
            .collect()
    }

    /// The status of one plugin.
    pub fn plugin_status(&self, name: &str) -> Option<PluginStatus> {
        self.status().into_iter().find(|s| s.name == name)
    }

    /// Whether a gateway whose certificate carries `names` may fetch the module `sha256`: it
    /// is connected under one of them and one of its selected plugins references the module.
    pub fn may_fetch(&self, names: &[String], sha256: &str) -> bool {
        let state = self.shared.lock();
        state.conns.values().filter(|n| names.iter().any(|name| name_permits(name, &n.id))).any(|n| {
            state.plugins.iter().any(|e| {
                e.filter.matches(&n.labels) && matches!(&e.filter.filter.code, Code::Remote(r) if r.sha256 == sha256)
            })
        })
    }

    /// The connected gateways (one entry per ADS stream).
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.shared.lock().conns.values().cloned().collect()
    }
}

struct Ads {
    shared: Arc<Shared>,
    transport: Transport,
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let Some(peer) = request.extensions().get::<Peer>().cloned() else {
            return Err(Status::internal("connection without peer information"));
        };
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let id = self.shared.next_stream.fetch_add(1, Ordering::Relaxed);
        let conn = Conn::new(Arc::clone(&self.shared), id, tx, peer, self.transport.clone());
        tokio::spawn(conn.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaStream>, Status> {
        Err(Status::unimplemented("only state-of-the-world ADS is served"))
    }
}

/// A response waiting for its ACK or NACK.
struct Sent {
    resource: Resource,
    version: u64,
    any: Any,
    /// A re-send of the last ACKed config after a NACK: not reported.
    rollback: bool,
}

/// The node behind a stream.
struct Gateway {
    id: String,
    labels: BTreeMap<String, String>,
    /// (host, port) of its listener.
    listen: (String, u16),
}

/// One ADS stream.
struct Conn {
    shared: Arc<Shared>,
    id: u64,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    /// Who connected, and how (refusals are reported through it).
    remote: Peer,
    transport: Transport,
    peer: Option<Gateway>,
    nonce: u64,
    /// Nonce to what it carried.
    pending: HashMap<String, Sent>,
    /// ECDS name to the last version this node ACKed, and that resource.
    acked: HashMap<String, (u64, Any)>,
    /// Whether the last listener sent was NACKed.
    listener_nacked: bool,
    lds_wanted: bool,
    /// The filter names of the listener last sent.
    listener_sent: Option<Vec<String>>,
    ecds_wanted: BTreeSet<String>,
    /// ECDS name to the version last sent.
    ecds_sent: HashMap<String, u64>,
}

impl Conn {
    fn new(
        shared: Arc<Shared>,
        id: u64,
        tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
        remote: Peer,
        transport: Transport,
    ) -> Self {
        Conn {
            shared,
            id,
            tx,
            remote,
            transport,
            peer: None,
            nonce: 0,
            pending: HashMap::new(),
            acked: HashMap::new(),
            listener_nacked: false,
            lds_wanted: false,
            listener_sent: None,
            ecds_wanted: BTreeSet::new(),
            ecds_sent: HashMap::new(),
        }
    }

    async fn run(mut self, mut inbound: Streaming<DiscoveryRequest>) {
        let mut updates = self.shared.updates.subscribe();
        loop {
            tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(req)) => {
                        if let Err(status) = self.on_request(req).await {
                            let _ = self.tx.send(Err(status)).await;
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(stream = self.id, error = %e, "ADS stream ended");
                        break;
                    }
                },
                changed = updates.changed() => {
                    if changed.is_err() || !self.push().await {
                        break;
                    }
                }
            }
        }
        self.disconnect();
    }

    fn disconnect(&mut self) {
        let Some(peer) = &self.peer else { return };
        let mut state = self.shared.lock();
        state.conns.remove(&self.id);
        if !state.conns.values().any(|n| n.id == peer.id) {
            state.outcomes.retain(|(node, _), _| *node != peer.id);
        }
        drop(state);
        let _ = self.shared.feedback.send(Feedback::Disconnected { node: peer.id.clone() });
        tracing::info!(node = %peer.id, "gateway disconnected");
    }

    fn connect(&mut self, node: &Node) -> Result<(), Status> {
        if node.id.is_empty() {
            return Err(Status::invalid_argument("the first request must carry node.id"));
        }
        if !self.remote.may_be(&node.id) {
            let names = self.remote.names.clone().unwrap_or_default().join(", ");
            let detail = format!("node id `{}` is not a name of its certificate ({names})", node.id);
            self.transport.refused("xds", self.remote.addr, RefusalReason::NodeId, &detail);
            return Err(Status::permission_denied(detail));
        }
        let metadata = node.metadata.as_ref();
        let labels = metadata.map(labels_of).unwrap_or_default();
        let listen = metadata
            .and_then(|m| string_field(m, LISTENER_KEY))
            .and_then(|s| split_host_port(&s).ok())
            .or_else(|| split_host_port(&self.shared.opts.listener_address).ok())
            .unwrap_or_else(|| ("0.0.0.0".into(), 10000));
        let info = NodeInfo {
            id: node.id.clone(),
            labels: labels.clone(),
            connected_at: SystemTime::now(),
            listener: DeliveryState::Pending,
        };
        self.shared.lock().conns.insert(self.id, info);
        let _ = self.shared.feedback.send(Feedback::Connected { node: node.id.clone(), labels: labels.clone() });
        tracing::info!(node = %node.id, ?labels, "gateway connected");
        self.peer = Some(Gateway { id: node.id.clone(), labels, listen });
        Ok(())
    }

    async fn on_request(&mut self, req: DiscoveryRequest) -> Result<(), Status> {
        if self.peer.is_none() {
            match &req.node {
                Some(node) => self.connect(node)?,
                None => return Err(Status::invalid_argument("the first request must carry the node")),
            }
        }
        if !req.response_nonce.is_empty()
            && let Some(sent) = self.pending.remove(&req.response_nonce)
        {
            let error = req.error_detail.as_ref().map(|s| s.message.clone());
            if !self.on_answer(sent, error).await {
                return Err(Status::cancelled("stream closed"));
            }
        }
        match req.type_url.as_str() {
            LISTENER_TYPE => self.lds_wanted = true,
            ECDS_TYPE => {
                let wanted: BTreeSet<String> = req.resource_names.iter().cloned().collect();
                self.ecds_sent.retain(|name, _| wanted.contains(name));
                self.ecds_wanted = wanted;
            }
            other => tracing::debug!(type_url = other, "ignoring a request for an unserved type"),
        }
        if self.push().await { Ok(()) } else { Err(Status::cancelled("stream closed")) }
    }

    /// Handles an ACK (`error` None) or a NACK of `sent`. False when the stream is gone.
    async fn on_answer(&mut self, sent: Sent, error: Option<String>) -> bool {
        let Sent { resource, version, any, rollback } = sent;
        match (&resource, &error) {
            (Resource::Filter(name), None) if rollback => {
                tracing::debug!(filter = %name, version, "last good config restored");
                if self.listener_nacked {
                    // Refused while the bad filter config was the last one received: retry.
                    self.listener_sent = None;
                }
                return true;
            }
            (Resource::Filter(name), Some(message)) if rollback => {
                tracing::warn!(filter = %name, version, %message, "restoring the last good config was refused");
                return true;
            }
            (Resource::Filter(name), None) => {
                self.acked.insert(name.clone(), (version, any));
            }
            (Resource::Filter(name), Some(_)) => {
                // Only when nothing newer was sent since: a rollback must not undo a later config.
                let latest = self.ecds_sent.get(name) == Some(&version);
                if let Some((good, any)) = self.acked.get(name).cloned().filter(|_| latest) {
                    let restore = Sent { resource: resource.clone(), version: good, any, rollback: true };
                    self.answered(resource, version, error);
                    return self.send(ECDS_TYPE, restore).await;
                }
            }
            (Resource::Listener, e) => self.listener_nacked = e.is_some(),
        }
        self.answered(resource, version, error);
        true
    }

    /// Records an ACK (`error` None) or a NACK and reports it.
    fn answered(&self, resource: Resource, version: u64, error: Option<String>) {
        let Some(peer) = &self.peer else { return };
        let delivery = match &error {
            Some(message) => DeliveryState::Nacked { message: message.clone() },
            None => DeliveryState::Acked,
        };
        {
            let mut state = self.shared.lock();
            match &resource {
                Resource::Listener => {
                    if let Some(info) = state.conns.get_mut(&self.id) {
                        info.listener = delivery;
                    }
                }
                Resource::Filter(name) => {
                    state.outcomes.insert((peer.id.clone(), name.clone()), (version, delivery));
                }
            }
        }
        let node = peer.id.clone();
        let event = match error {
            Some(message) => {
                tracing::warn!(node = %node, ?resource, version, %message, "NACK");
                Feedback::Nacked { node, resource, version, message }
            }
            None => {
                tracing::debug!(node = %node, ?resource, version, "ACK");
                Feedback::Acked { node, resource, version }
            }
        };
        let _ = self.shared.feedback.send(event);
    }

    /// Sends what this node wants and has not got in its current version. False when the
    /// stream is gone.
    async fn push(&mut self) -> bool {
        let Some(peer) = &self.peer else { return true };
        if self.shared.held.load(Ordering::SeqCst) {
            return true;
        }
        let (plugins, version) = {
            let state = self.shared.lock();
            (Arc::clone(&state.plugins), state.version)
        };
        let mine: Vec<&Entry> = plugins.iter().filter(|e| e.filter.matches(&peer.labels)).collect();
        // The listener first: a new listener is built from the filter configs Envoy already
        // has, so a filter config refused right after does not take the listener down with it.
        let mut out = Vec::new();
        if self.lds_wanted {
            let names: Vec<String> = mine.iter().map(|e| e.filter.name.clone()).collect();
            if self.listener_sent.as_ref() != Some(&names) {
                let (host, port) = &peer.listen;
                let any = listener(host, *port, &self.shared.opts, &names);
                out.push((LISTENER_TYPE, Sent { resource: Resource::Listener, version, any, rollback: false }));
                self.listener_sent = Some(names);
            }
        }
        for e in &mine {
            if self.ecds_wanted.contains(&e.filter.name) && self.ecds_sent.get(&e.filter.name) != Some(&e.version) {
                self.ecds_sent.insert(e.filter.name.clone(), e.version);
                let resource = Resource::Filter(e.filter.name.clone());
                out.push((ECDS_TYPE, Sent { resource, version: e.version, any: e.resource.clone(), rollback: false }));
            }
        }
        for (type_url, sent) in out {
            if sent.resource == Resource::Listener
                && let Some(info) = self.shared.lock().conns.get_mut(&self.id)
            {
                info.listener = DeliveryState::Pending;
            }
            if !self.send(type_url, sent).await {
                return false;
            }
        }
        true
    }

    /// Sends one resource in its own response. False when the stream is gone.
    async fn send(&mut self, type_url: &str, sent: Sent) -> bool {
        self.nonce += 1;
        let nonce = format!("{}-{}", self.id, self.nonce);
        let resp = DiscoveryResponse {
            version_info: sent.version.to_string(),
            resources: vec![sent.any.clone()],
            type_url: type_url.to_string(),
            nonce: nonce.clone(),
            ..DiscoveryResponse::default()
        };
        self.pending.insert(nonce, sent);
        self.tx.send(Ok(resp)).await.is_ok()
    }
}

fn string_field(s: &Struct, key: &str) -> Option<String> {
    match s.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(v) => Some(v.clone()),
        _ => None,
    }
}

/// `metadata.LABELS` as a map of strings (non-string values are skipped).
fn labels_of(metadata: &Struct) -> BTreeMap<String, String> {
    let Some(Kind::StructValue(labels)) = metadata.fields.get(LABELS_KEY).and_then(|v| v.kind.as_ref()) else {
        return BTreeMap::new();
    };
    labels
        .fields
        .iter()
        .filter_map(|(k, v)| match v.kind.as_ref()? {
            Kind::StringValue(s) => Some((k.clone(), s.clone())),
            _ => None,
        })
        .collect()
}
