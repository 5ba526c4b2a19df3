//! The per-request context handed to every handler.

mod body;
mod cluster_target;
mod http_ops;

use std::any::{Any, TypeId};
use std::cell::OnceCell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

pub use self::body::BodyMode;
use self::body::BodyState;
use crate::host::{get_header, host_ok};
use crate::pending::Pending;

/// The phase of the HTTP stream a handler runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPhase {
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

/// State and operations of one HTTP request as seen by a plugin.
///
/// Request attributes (`scheme`, `host`, `path`, `method`) are read once and cached, so they can be
/// used in any phase. Header and body operations act on the current stream; a failure of the host
/// is logged (never a panic) and reported as `None`/`false` where a value is expected.
pub struct HttpContext {
    pub(crate) id: u32,
    pub(crate) plugin_name: &'static str,
    pub(crate) phase: StreamPhase,
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
    pub(crate) pending: Pending<HttpContext>,
    #[cfg(feature = "redis")]
    pub(crate) redis_sink: Option<std::rc::Weak<dyn crate::pending::RedisSink>>,
}

impl HttpContext {
    pub(crate) fn new(id: u32, plugin_name: &'static str, request_mode: BodyMode, response_mode: BodyMode) -> Self {
        HttpContext {
            id,
            plugin_name,
            phase: StreamPhase::RequestHeaders,
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
    pub fn phase(&self) -> StreamPhase {
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

    /// A WebSocket upgrade request.
    pub fn is_websocket(&self) -> bool {
        let upgrade = get_header(MapType::HttpRequestHeaders, "upgrade").unwrap_or_default();
        upgrade.eq_ignore_ascii_case("websocket")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_a_json_object_of_strings() {
        let attrs = vec![("user".to_string(), "a\"b".to_string()), ("n".to_string(), "1".to_string())];
        assert_eq!(attributes_json(&attrs), r#"{"user":"a\"b","n":"1"}"#);
        assert_eq!(attributes_json(&[]), "{}");
    }
}
