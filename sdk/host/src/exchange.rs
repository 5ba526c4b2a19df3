//! Whole requests through a plugin, the way Envoy 1.40 drives its HTTP filter: the
//! high-level API of the test harness.
//!
//! What is emulated (see README.md for the differences that remain):
//! - the request headers are passed on (snapshot for the upstream) when the headers phase
//!   continues; a `Pause` there holds the whole request, body included, until the plugin
//!   resumes (`allow_on_headers_stop_iteration: false`, Envoy's default);
//! - a body `Pause` buffers (`StopIterationAndBuffer`): the plugin sees the whole held body in
//!   the next call; at end of stream a `Pause` holds the stream until the plugin resumes;
//! - callouts are answered by the VM's [`crate::CalloutHandler`]; a call still unanswered when
//!   nothing else can happen fails as Envoy's timeout does (no headers);
//! - a local reply sent while the request is processed passes the plugin's response phases
//!   (as in Envoy); one sent while the response is processed replaces it directly;
//! - local reply headers: the plugin's headers replace same-named ones, `content-type:
//!   text/plain` is added to a non-empty body without one, an empty body drops
//!   `content-type`; `content-length` is set from the body.

use crate::abi::{Action, Pairs};
use crate::callout::{HttpCall, HttpResponse, RedisCall};
use crate::error::{Fault, Result};
use crate::state::LocalResponse;
use crate::stream::Stream;
use crate::vm::Vm;

/// A request as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path with query string.
    pub path: String,
    /// `Host` / `:authority`.
    pub authority: String,
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub trailers: Pairs,
    /// The route name Envoy would match (`xds.route_name`); `None`: no property.
    pub route_name: Option<String>,
    /// The upstream cluster (`xds.cluster_name`).
    pub cluster_name: Option<String>,
    /// Deliver the body in chunks of this size (default: one chunk).
    pub chunk_size: Option<usize>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            authority: "localhost".to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            trailers: Vec::new(),
            route_name: None,
            cluster_name: None,
            chunk_size: None,
        }
    }
    pub fn get(path: &str) -> Self {
        Request::new("GET", path)
    }
    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Request::new("POST", path).body(body)
    }
    pub fn host(mut self, authority: impl Into<String>) -> Self {
        self.authority = authority.into();
        self
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into().to_ascii_lowercase(), value.into()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    pub fn trailer(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.trailers.push((name.into().to_ascii_lowercase(), value.into()));
        self
    }
    pub fn route(mut self, route_name: impl Into<String>) -> Self {
        self.route_name = Some(route_name.into());
        self
    }
    pub fn cluster(mut self, cluster_name: impl Into<String>) -> Self {
        self.cluster_name = Some(cluster_name.into());
        self
    }
    pub fn chunk_size(mut self, size: usize) -> Self {
        self.chunk_size = Some(size.max(1));
        self
    }

    /// The headers Envoy hands to filters: pseudo-headers, the client's headers,
    /// `content-length` for a body, `x-forwarded-proto` and `x-request-id`.
    fn filter_headers(&self, request_id: u32) -> Pairs {
        let mut headers = vec![
            (":authority".to_string(), self.authority.clone()),
            (":path".to_string(), self.path.clone()),
            (":method".to_string(), self.method.clone()),
            (":scheme".to_string(), "http".to_string()),
        ];
        headers.extend(self.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())));
        let has = |name: &str| self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !self.body.is_empty() && !has("content-length") && !has("transfer-encoding") {
            headers.push(("content-length".into(), self.body.len().to_string()));
        }
        headers.push(("x-forwarded-proto".into(), "http".into()));
        headers.push(("x-request-id".into(), format!("00000000-0000-4000-8000-{request_id:012x}")));
        headers
    }
}

/// A request as the upstream receives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamRequest {
    pub method: String,
    pub path: String,
    /// Lowercased names, `host` first, no pseudo-headers.
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub trailers: Pairs,
}

impl UpstreamRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Everything observable about one request through the plugin.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// What the client receives (`:status` is in `status`, not in the headers).
    pub response: HttpResponse,
    /// What the upstream received; `None` when the plugin answered or the request hung.
    pub upstream_request: Option<UpstreamRequest>,
    /// The local reply the plugin (or the fail strategy) sent.
    pub local_response: Option<LocalResponse>,
    pub http_calls: Vec<HttpCall>,
    pub redis_calls: Vec<RedisCall>,
    /// The plugin failed; the fail strategy decided the outcome.
    pub fault: Option<Fault>,
    /// The plugin paused and nothing could resume it: in Envoy the request would hang until
    /// a timeout.
    pub hung: bool,
    /// `custom_log` as set by the plugin (Envoy's `%FILTER_STATE(wasm.custom_log:PLAIN)%`).
    pub custom_log: Option<String>,
}

enum Settled {
    Resumed,
    Local,
    Hung,
}

/// Something that answers forwarded requests.
pub trait Upstream {
    fn handle(&mut self, request: &UpstreamRequest) -> HttpResponse;
}

impl<F: FnMut(&UpstreamRequest) -> HttpResponse> Upstream for F {
    fn handle(&mut self, request: &UpstreamRequest) -> HttpResponse {
        self(request)
    }
}

impl Upstream for HttpResponse {
    fn handle(&mut self, _request: &UpstreamRequest) -> HttpResponse {
        self.clone()
    }
}

fn strs(pairs: &Pairs) -> Vec<(&str, &str)> {
    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

impl Stream<'_> {
    fn settle(&mut self, request: bool) -> Settled {
        loop {
            if self.local_response().is_some() {
                return Settled::Local;
            }
            let resumed = if request { self.take_request_resumed() } else { self.take_response_resumed() };
            if resumed {
                return Settled::Resumed;
            }
            if !self.progress() {
                return Settled::Hung;
            }
        }
    }

    /// Feeds a body in chunks; `Some(outcome)` when the stream stopped (local reply or hang).
    fn feed_body(&mut self, body: &[u8], chunk: Option<usize>, has_trailers: bool, request: bool) -> Option<Settled> {
        let size = chunk.unwrap_or(body.len()).max(1);
        let chunks: Vec<&[u8]> = body.chunks(size).collect();
        let last = chunks.len().saturating_sub(1);
        for (i, piece) in chunks.into_iter().enumerate() {
            let eos = i == last && !has_trailers;
            let action = if request { self.request_body(piece, eos) } else { self.response_body(piece, eos) };
            if self.local_response().is_some() {
                return Some(Settled::Local);
            }
            if action == Action::Pause && eos {
                match self.settle(request) {
                    Settled::Resumed => {
                        if request {
                            self.flush_request_body();
                        } else {
                            self.flush_response_body();
                        }
                    }
                    other => return Some(other),
                }
            }
        }
        None
    }
}

impl Vm {
    /// Runs `request` through the plugin, forwarding it to `upstream` when the plugin lets
    /// it through, and the response back through the plugin.
    pub fn run(&mut self, request: &Request, upstream: &mut dyn Upstream) -> Result<Exchange> {
        let mut properties = Vec::new();
        if let Some(route) = &request.route_name {
            properties.push(("xds.route_name".to_string(), route.clone().into_bytes()));
            properties.push(("route_name".to_string(), route.clone().into_bytes()));
        }
        if let Some(cluster) = &request.cluster_name {
            properties.push(("xds.cluster_name".to_string(), cluster.clone().into_bytes()));
            properties.push(("cluster_name".to_string(), cluster.clone().into_bytes()));
        }
        let mut stream = self.stream_with(properties)?;
        let mut exchange = Exchange::default();
        let outcome = drive(&mut stream, request, upstream, &mut exchange);
        exchange.hung = matches!(outcome, Settled::Hung);
        if matches!(outcome, Settled::Local) {
            local_reply(&mut stream, &mut exchange);
        }
        exchange.local_response = stream.local_response();
        exchange.http_calls = stream.http_calls();
        exchange.redis_calls = stream.redis_calls();
        exchange.fault = stream.fault().cloned();
        exchange.custom_log = stream.property("custom_log").map(|v| String::from_utf8_lossy(&v).into_owned());
        stream.finish();
        Ok(exchange)
    }
}

/// The request and response paths; `Resumed` means the response reached the client.
fn drive(stream: &mut Stream<'_>, request: &Request, upstream: &mut dyn Upstream, exchange: &mut Exchange) -> Settled {
    let request_id = stream.id();
    let headers = request.filter_headers(request_id);
    let has_body = !request.body.is_empty();
    let has_trailers = !request.trailers.is_empty();
    let action = stream.request_headers(&strs(&headers), !has_body && !has_trailers);
    if stream.local_response().is_some() {
        return Settled::Local;
    }
    if action == Action::Pause {
        match stream.settle(true) {
            Settled::Resumed => {}
            other => return other,
        }
    }
    let upstream_headers = stream.request_header_map();
    if has_body && let Some(stopped) = stream.feed_body(&request.body, request.chunk_size, has_trailers, true) {
        return stopped;
    }
    if has_trailers {
        let action = stream.request_trailers(&strs(&request.trailers));
        if stream.local_response().is_some() {
            return Settled::Local;
        }
        if action == Action::Pause {
            match stream.settle(true) {
                Settled::Resumed => stream.flush_request_body(),
                other => return other,
            }
        }
    }
    let forwarded = to_upstream(&upstream_headers, stream.forwarded_request_body(), stream.request_trailers_map());
    let response = upstream.handle(&forwarded);
    exchange.upstream_request = Some(forwarded);

    let mut headers = vec![(":status".to_string(), response.status.to_string())];
    headers.extend(response.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())));
    let has_body = !response.body.is_empty();
    let has_trailers = !response.trailers.is_empty();
    let action = stream.response_headers(&strs(&headers), !has_body && !has_trailers);
    if stream.local_response().is_some() {
        return Settled::Local;
    }
    if action == Action::Pause {
        match stream.settle(false) {
            Settled::Resumed => {}
            other => return other,
        }
    }
    let downstream_headers = stream.response_header_map();
    if has_body && let Some(stopped) = stream.feed_body(&response.body, None, has_trailers, false) {
        return stopped;
    }
    if has_trailers {
        let action = stream.response_trailers(&strs(&response.trailers));
        if action == Action::Pause {
            match stream.settle(false) {
                Settled::Resumed => stream.flush_response_body(),
                other => return other,
            }
        }
    }
    exchange.response = to_downstream(&downstream_headers, stream.forwarded_response_body().to_vec());
    exchange.response.trailers = stream.response_trailers_map();
    Settled::Resumed
}

fn to_upstream(headers: &Pairs, body: &[u8], trailers: Pairs) -> UpstreamRequest {
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut out = vec![("host".to_string(), get(":authority"))];
    out.extend(headers.iter().filter(|(k, _)| !k.starts_with(':')).cloned());
    UpstreamRequest { method: get(":method"), path: get(":path"), headers: out, body: body.to_vec(), trailers }
}

fn to_downstream(headers: &Pairs, body: Vec<u8>) -> HttpResponse {
    let status = headers.iter().find(|(k, _)| k == ":status").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let headers = headers.iter().filter(|(k, _)| !k.starts_with(':')).cloned().collect();
    HttpResponse { status, headers, body, trailers: Vec::new() }
}

/// Envoy's local reply headers (`Utility::sendLocalReply`).
fn local_reply_headers(local: &LocalResponse) -> Pairs {
    let mut headers: Pairs = vec![(":status".into(), local.status.to_string())];
    for (k, v) in &local.headers {
        headers.retain(|(name, _)| name != k);
        headers.push((k.clone(), v.clone()));
    }
    if local.body.is_empty() {
        headers.retain(|(k, _)| k != "content-type" && k != "content-length");
    } else {
        headers.retain(|(k, _)| k != "content-length");
        headers.push(("content-length".into(), local.body.len().to_string()));
        if !headers.iter().any(|(k, _)| k == "content-type") {
            headers.push(("content-type".into(), "text/plain".into()));
        }
    }
    headers
}

/// Sends the local reply downstream: through the plugin's response phases when it was sent
/// while the request was processed, directly otherwise (or when the VM failed).
fn local_reply(stream: &mut Stream<'_>, exchange: &mut Exchange) {
    let Some(local) = stream.local_response() else { return };
    let headers = local_reply_headers(&local);
    let during_request = stream.response_header_map().is_empty();
    if during_request {
        exchange.upstream_request = None;
    }
    if !during_request || stream.fault().is_some() {
        exchange.response = to_downstream(&headers, local.body);
        return;
    }
    let action = stream.response_headers(&strs(&headers), local.body.is_empty());
    if action == Action::Pause && !matches!(stream.settle(false), Settled::Resumed) {
        exchange.hung = stream.local_response() == Some(local.clone());
    }
    let downstream_headers = stream.response_header_map();
    if !local.body.is_empty() {
        let action = stream.response_body(&local.body, true);
        if action == Action::Pause && matches!(stream.settle(false), Settled::Resumed) {
            stream.flush_response_body();
        }
    }
    exchange.response = to_downstream(&downstream_headers, stream.forwarded_response_body().to_vec());
}
