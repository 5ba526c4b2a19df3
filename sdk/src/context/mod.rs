//! The per-request context handed to every handler.

mod http_ops;

use std::any::{Any, TypeId};
use std::cell::OnceCell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use crate::callout::Pending;
use crate::host::{get_header, host_ok};
use crate::plugin::BodyMode;

/// The phase of the HTTP stream a handler runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
    Done,
}

/// Request or response side of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Request,
    Response,
}

impl Direction {
    pub(crate) fn headers(self) -> MapType {
        match self {
            Direction::Request => MapType::HttpRequestHeaders,
            Direction::Response => MapType::HttpResponseHeaders,
        }
    }
    pub(crate) fn trailers(self) -> MapType {
        match self {
            Direction::Request => MapType::HttpRequestTrailers,
            Direction::Response => MapType::HttpResponseTrailers,
        }
    }
    pub(crate) fn body(self) -> BufferType {
        match self {
            Direction::Request => BufferType::HttpRequestBody,
            Direction::Response => BufferType::HttpResponseBody,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct BodyState {
    pub mode: BodyMode,
    /// Whether a body follows the headers (known once the headers arrived).
    pub present: bool,
    /// Bytes currently held by the host for this side.
    pub size: usize,
    /// Largest body the plugin accepts to buffer.
    pub limit: Option<usize>,
    /// The body ended while the stream was paused for a callout; handle it on resume.
    pub deferred: bool,
    /// The buffered handler already ran for this side.
    pub handled: bool,
}

/// State and operations of one HTTP request as seen by a plugin.
///
/// Request attributes (`scheme`, `host`, `path`, `method`) are read once and cached, so they can be
/// used in any phase. Header and body operations act on the current stream; a failure of the host
/// is logged (never a panic) and reported as `None`/`false` where a value is expected.
pub struct HttpContext {
    pub(crate) id: u32,
    pub(crate) plugin_name: &'static str,
    pub(crate) phase: Phase,
    scheme: OnceCell<String>,
    host: OnceCell<String>,
    path: OnceCell<String>,
    method: OnceCell<String>,
    storage: Vec<(TypeId, Box<dyn Any>)>,
    user_attributes: Vec<(String, String)>,
    pub(crate) request_body: BodyState,
    pub(crate) response_body: BodyState,
    pub(crate) local_response_sent: bool,
    pub(crate) paused: Option<Direction>,
    pub(crate) resume_requested: Option<Direction>,
    pub(crate) matched_rule: Option<usize>,
    pub(crate) rules_configured: bool,
    pub(crate) pending: Pending,
    #[cfg(feature = "redis")]
    pub(crate) redis_sink: Option<std::rc::Weak<dyn crate::redis::RedisSink>>,
}

impl HttpContext {
    pub(crate) fn new(id: u32, plugin_name: &'static str, request_mode: BodyMode, response_mode: BodyMode) -> Self {
        HttpContext {
            id,
            plugin_name,
            phase: Phase::RequestHeaders,
            scheme: OnceCell::new(),
            host: OnceCell::new(),
            path: OnceCell::new(),
            method: OnceCell::new(),
            storage: Vec::new(),
            user_attributes: Vec::new(),
            request_body: BodyState { mode: request_mode, ..Default::default() },
            response_body: BodyState { mode: response_mode, ..Default::default() },
            local_response_sent: false,
            paused: None,
            resume_requested: None,
            matched_rule: None,
            rules_configured: false,
            pending: Pending::default(),
            #[cfg(feature = "redis")]
            redis_sink: None,
        }
    }

    /// The proxy-wasm context id of this stream.
    pub fn context_id(&self) -> u32 {
        self.id
    }

    /// The name the plugin was registered with.
    pub fn plugin_name(&self) -> &'static str {
        self.plugin_name
    }

    /// The index of the `_rules_` entry whose config applies to this request, or `None` when
    /// the global config applies.
    pub fn matched_rule(&self) -> Option<usize> {
        self.matched_rule
    }

    /// Whether the plugin configuration has any `_rules_` (Higress's auth plugins act globally
    /// only when it has none).
    pub fn has_rules(&self) -> bool {
        self.rules_configured
    }

    /// The phase the current handler runs in.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    // ---- cached request attributes -------------------------------------------------------

    /// `:scheme` of the request (`http` when the host does not say).
    pub fn scheme(&self) -> &str {
        self.scheme.get_or_init(|| get_header(MapType::HttpRequestHeaders, ":scheme").unwrap_or_else(|| "http".into()))
    }

    /// `:authority` of the request, as sent (it may carry a port).
    pub fn host(&self) -> &str {
        self.host.get_or_init(|| get_header(MapType::HttpRequestHeaders, ":authority").unwrap_or_default())
    }

    /// `:path` of the request, with its query string.
    pub fn path(&self) -> &str {
        self.path.get_or_init(|| get_header(MapType::HttpRequestHeaders, ":path").unwrap_or_default())
    }

    /// `:method` of the request.
    pub fn method(&self) -> &str {
        self.method.get_or_init(|| get_header(MapType::HttpRequestHeaders, ":method").unwrap_or_default())
    }

    // ---- typed per-request storage -------------------------------------------------------

    /// Stores a value for the rest of this request, replacing any value of the same type.
    pub fn insert<T: Any>(&mut self, value: T) -> Option<T> {
        let old = self.remove::<T>();
        self.storage.push((TypeId::of::<T>(), Box::new(value)));
        old
    }

    /// The value of type `T` stored for this request.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.storage.iter().find(|(id, _)| *id == TypeId::of::<T>()).and_then(|(_, b)| b.downcast_ref())
    }

    /// Mutable access to the value of type `T` stored for this request.
    pub fn get_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.storage.iter_mut().find(|(id, _)| *id == TypeId::of::<T>()).and_then(|(_, b)| b.downcast_mut())
    }

    /// Takes the value of type `T` out of this request's storage.
    pub fn remove<T: Any>(&mut self) -> Option<T> {
        let at = self.storage.iter().position(|(id, _)| *id == TypeId::of::<T>())?;
        self.storage.swap_remove(at).1.downcast::<T>().ok().map(|b| *b)
    }

    // ---- access log attributes -----------------------------------------------------------

    /// Sets an attribute that [`write_user_attributes_to_log`](Self::write_user_attributes_to_log) writes.
    pub fn set_user_attribute(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.user_attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.user_attributes.push((key, value)),
        }
    }

    /// The attributes set so far, in the order they were first set.
    pub fn user_attributes(&self) -> &[(String, String)] {
        &self.user_attributes
    }

    /// Writes the attributes as one JSON object of strings to the filter state key
    /// `wasm.custom_log`, readable in an Envoy access log as `%FILTER_STATE(wasm.custom_log:PLAIN)%`.
    pub fn write_user_attributes_to_log(&self) -> bool {
        let json = attributes_json(&self.user_attributes);
        host_ok("set_property", hostcalls::set_property(vec!["custom_log"], Some(json.as_bytes())))
    }

    // ---- body switches -------------------------------------------------------------------

    /// Do not hand the request body to the plugin (it still flows to the upstream).
    pub fn dont_read_request_body(&mut self) {
        self.request_body.mode = BodyMode::Ignore;
    }
    /// Do not hand the response body to the plugin.
    pub fn dont_read_response_body(&mut self) {
        self.response_body.mode = BodyMode::Ignore;
    }
    /// Buffer the whole request body and call `on_request_body` once with it.
    pub fn buffer_request_body(&mut self) {
        self.request_body.mode = BodyMode::Buffered;
    }
    /// Buffer the whole response body and call `on_response_body` once with it.
    pub fn buffer_response_body(&mut self) {
        self.response_body.mode = BodyMode::Buffered;
    }
    /// Refuse request bodies over `bytes` with 413 while buffering.
    pub fn set_request_body_limit(&mut self, bytes: usize) {
        self.request_body.limit = Some(bytes);
    }
    /// Refuse response bodies over `bytes` with 500 while buffering.
    pub fn set_response_body_limit(&mut self, bytes: usize) {
        self.response_body.limit = Some(bytes);
    }
    /// Whether the request has a body (known from the request headers phase on).
    pub fn has_request_body(&self) -> bool {
        self.request_body.present
    }
    /// Whether the response has a body (known from the response headers phase on).
    pub fn has_response_body(&self) -> bool {
        self.response_body.present
    }

    // ---- request classification ----------------------------------------------------------

    /// A WebSocket upgrade request.
    pub fn is_websocket(&self) -> bool {
        let upgrade = get_header(MapType::HttpRequestHeaders, "upgrade").unwrap_or_default();
        upgrade.eq_ignore_ascii_case("websocket")
    }

    /// The request body is not text (compressed, gRPC, octet-stream, media).
    pub fn is_binary_request_body(&self) -> bool {
        is_binary(MapType::HttpRequestHeaders)
    }

    /// The response body is not text (compressed, gRPC, octet-stream, media).
    pub fn is_binary_response_body(&self) -> bool {
        is_binary(MapType::HttpResponseHeaders)
    }

    pub(crate) fn body_state(&mut self, direction: Direction) -> &mut BodyState {
        match direction {
            Direction::Request => &mut self.request_body,
            Direction::Response => &mut self.response_body,
        }
    }

    /// Whether this plugin already answered the request itself.
    pub fn local_response_sent(&self) -> bool {
        self.local_response_sent
    }
}

fn attributes_json(attributes: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        out.push_str(&serde_json::to_string(v).unwrap_or_default());
    }
    out.push('}');
    out
}

fn is_binary(map: MapType) -> bool {
    let encoding = get_header(map, "content-encoding").unwrap_or_default();
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity") {
        return true;
    }
    let content_type = get_header(map, "content-type").unwrap_or_default().to_ascii_lowercase();
    is_binary_content_type(&content_type)
}

pub(crate) fn is_binary_content_type(content_type: &str) -> bool {
    const BINARY: [&str; 7] = [
        "application/octet-stream",
        "application/grpc",
        "application/zip",
        "application/pdf",
        "image/",
        "audio/",
        "video/",
    ];
    const PROTOBUF: &str = "protobuf";
    BINARY.iter().any(|p| content_type.starts_with(p)) || content_type.contains(PROTOBUF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_a_json_object_of_strings() {
        let attrs = vec![("user".to_string(), "a\"b".to_string()), ("n".to_string(), "1".to_string())];
        assert_eq!(attributes_json(&attrs), r#"{"user":"a\"b","n":"1"}"#);
        assert_eq!(attributes_json(&[]), "{}");
    }

    #[test]
    fn binary_content_types() {
        assert!(is_binary_content_type("application/grpc+proto"));
        assert!(is_binary_content_type("image/png"));
        assert!(is_binary_content_type("application/x-protobuf"));
        assert!(!is_binary_content_type("application/json; charset=utf-8"));
        assert!(!is_binary_content_type("text/plain"));
        assert!(!is_binary_content_type(""));
    }
}
