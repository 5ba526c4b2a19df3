//! What goes through a plugin in one request: the client's request, what the upstream
//! receives, what the client gets back ([`Exchange`]), and who answers upstream requests and
//! callouts. How a request is driven through the plugin is in `drive.rs`.

use std::future::Future;

use crate::abi::Pairs;
use crate::callout::{CalloutReply, HttpCall, HttpResponse, RedisCall};
use crate::error::Fault;
use crate::grpc::{GrpcCall, GrpcEvent};
use crate::state::{LocalResponse, LogRecord};

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
    pub(crate) fn filter_headers(&self, request_id: u32) -> Pairs {
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
    pub grpc_calls: Vec<GrpcCall>,
    /// The plugin failed; the fail strategy decided the outcome.
    pub fault: Option<Fault>,
    /// The plugin paused and nothing could resume it: in Envoy the request would hang until
    /// a timeout.
    pub hung: bool,
    /// `custom_log` as set by the plugin (Envoy's `%FILTER_STATE(wasm.custom_log:PLAIN)%`).
    pub custom_log: Option<String>,
    /// What the plugin logged while handling this request (its HTTP context), oldest first.
    pub logs: Vec<LogRecord>,
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

/// Something that answers forwarded requests asynchronously (a real upstream, or the rest of a
/// filter chain): while it works, other requests go on through the VM.
pub trait AsyncUpstream {
    fn handle(&mut self, request: &UpstreamRequest) -> impl Future<Output = HttpResponse>;
}

/// What a callout reports: an HTTP call's answer, or one event of a gRPC call or stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Http(CalloutReply),
    Grpc(GrpcEvent),
}

/// Where the answers to a stream's callouts come from while the stream waits for them
/// (outside any call into the plugin, so waiting never counts against its time budget).
pub trait Answers {
    /// Waits until one of the callouts `tokens` (HTTP calls not answered yet, gRPC calls and
    /// streams not closed yet, all opened by the stream) reports something, and returns it.
    /// `None`: nothing will report, and the oldest times out as in Envoy.
    fn answer(&self, tokens: &[u32]) -> impl Future<Output = Option<(u32, Answer)>>;
}

/// No answers come later: what the [`crate::CalloutHandler`] did not answer at once fails.
pub struct NoAnswers;

impl Answers for NoAnswers {
    fn answer(&self, _tokens: &[u32]) -> impl Future<Output = Option<(u32, Answer)>> {
        std::future::ready(None)
    }
}

/// A blocking [`Upstream`] as an [`AsyncUpstream`] that answers at once.
pub(crate) struct Immediate<'a>(pub &'a mut dyn Upstream);

impl AsyncUpstream for Immediate<'_> {
    fn handle(&mut self, request: &UpstreamRequest) -> impl Future<Output = HttpResponse> {
        std::future::ready(self.0.handle(request))
    }
}
