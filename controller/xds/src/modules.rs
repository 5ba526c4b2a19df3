//! The module server: `GET`/`HEAD /modules/sha256/<hex>.wasm` for the modules in an allowed
//! set that the caller replaces as a whole. A module outside the set is 404 even when its file
//! exists, so a shared cache never serves one namespace's private module to another.
//!
//! Over mutual TLS ([`ModuleServer::bind_mtls`]) a module is served only to a gateway that is
//! connected to the xDS server under a node id its certificate carries and that one of its
//! selected plugins references: no module by digest to anyone else (403).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::XdsServer;
use crate::listen::{AxumListener, incoming};
use crate::tls::{Peer, Protocol, RefusalReason, Transport};

/// The path prefix modules are served under; a module's URL is `{base}/sha256/{hex}.wasm`
/// with `base = http://host:port/modules`.
pub const MODULES_PATH: &str = "/modules";

type Allowed = Arc<RwLock<Arc<HashMap<String, PathBuf>>>>;

#[derive(Clone)]
struct Served {
    allowed: Allowed,
    transport: Transport,
    /// Over mTLS: who may fetch what.
    gateways: Option<XdsServer>,
}

/// A running module server; stops when dropped.
#[derive(Debug)]
pub struct ModuleServer {
    addr: SocketAddr,
    tls: bool,
    allowed: Allowed,
    task: JoinHandle<()>,
}

impl ModuleServer {
    /// Binds `addr` (port 0: any free port) and starts serving an empty set over plain HTTP
    /// to anyone who reaches it (local demos and tests).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<ModuleServer> {
        Self::start(addr, Transport::Plaintext, None).await
    }

    /// Binds `addr` and serves over `transport` (mutual TLS), each module only to the gateways of `xds`
    /// whose selected plugins reference it.
    pub async fn bind_mtls(addr: SocketAddr, transport: Transport, xds: XdsServer) -> std::io::Result<ModuleServer> {
        Self::start(addr, transport, Some(xds)).await
    }

    async fn start(
        addr: SocketAddr,
        transport: Transport,
        gateways: Option<XdsServer>,
    ) -> std::io::Result<ModuleServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let allowed: Allowed = Arc::default();
        let tls = matches!(transport, Transport::Mtls { .. });
        let served = Served { allowed: Arc::clone(&allowed), transport: transport.clone(), gateways };
        let app = Router::new().route("/modules/sha256/{file}", get(serve_module)).with_state(served);
        let listener = AxumListener { rx: incoming(listener, transport, "modules", Protocol::Http1), local: addr };
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<Peer>()).await {
                tracing::error!(error = %e, "module server stopped");
            }
        });
        Ok(ModuleServer { addr, tls, allowed, task })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http[s]://<bound address>/modules`: the base of module URLs when Envoy reaches this
    /// server at its bound address.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{MODULES_PATH}", self.addr)
    }

    /// Replaces the allowed set at once: sha256 (lowercase hex) to the module file.
    pub fn set_modules(&self, modules: impl IntoIterator<Item = (String, PathBuf)>) {
        let set: HashMap<String, PathBuf> = modules.into_iter().map(|(h, p)| (h.to_ascii_lowercase(), p)).collect();
        *self.allowed.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }

    /// The sha256s currently served.
    pub fn modules(&self) -> Vec<String> {
        let set = Arc::clone(&self.allowed.read().unwrap_or_else(PoisonError::into_inner));
        let mut out: Vec<String> = set.keys().cloned().collect();
        out.sort();
        out
    }
}

impl Drop for ModuleServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status(code: StatusCode, text: &'static str) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

async fn serve_module(
    State(served): State<Served>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
    Path(file): Path<String>,
) -> Response {
    let Some(hex) = file.strip_suffix(".wasm") else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return status(StatusCode::NOT_FOUND, "not found\n");
    }
    if let (Some(xds), Some(names)) = (&served.gateways, &peer.names)
        && !xds.may_fetch(names, hex)
    {
        let detail = format!("module {hex} is not referenced by a plugin of gateway {}", names.join(", "));
        served.transport.refused("modules", peer.addr, RefusalReason::Module, &detail);
        return status(StatusCode::FORBIDDEN, "forbidden\n");
    }
    let path = {
        let set = served.allowed.read().unwrap_or_else(PoisonError::into_inner);
        set.get(hex).cloned()
    };
    let Some(path) = path else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let bytes = if method == Method::HEAD {
        match tokio::fs::metadata(&path).await {
            Ok(m) => Err(m.len()),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "allowed module is not readable");
                return status(StatusCode::NOT_FOUND, "not found\n");
            }
        }
    } else {
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(b),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "allowed module is not readable");
                return status(StatusCode::NOT_FOUND, "not found\n");
            }
        }
    };
    let len = match &bytes {
        Ok(b) => b.len() as u64,
        Err(len) => *len,
    };
    let body = match bytes {
        Ok(b) => Body::from(b),
        Err(_) => Body::empty(),
    };
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/wasm"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
