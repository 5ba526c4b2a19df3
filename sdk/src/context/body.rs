//! The request and response bodies of a stream: how the plugin wants each handed over, what
//! the SDK tracks about them, and whether they are text.

use proxy_wasm::types::MapType;

use super::{Direction, HttpContext};
use crate::host::get_header;

/// How a plugin wants a body handed to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyMode {
    /// The body flows through without the plugin seeing it (the fastest).
    #[default]
    Ignore,
    /// The whole body is buffered by the host and handed over once, at its end.
    Buffered,
    /// Each chunk is handed over as it arrives and may be replaced.
    Streaming,
}

/// What the SDK tracks about the body of one side of the stream.
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

impl HttpContext {
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

    // ---- text or binary ------------------------------------------------------------------

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
}

fn is_binary(map: MapType) -> bool {
    let encoding = get_header(map, "content-encoding").unwrap_or_default();
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity") {
        return true;
    }
    let content_type = get_header(map, "content-type").unwrap_or_default().to_ascii_lowercase();
    is_binary_content_type(&content_type)
}

fn is_binary_content_type(content_type: &str) -> bool {
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
    fn binary_content_types() {
        assert!(is_binary_content_type("application/grpc+proto"));
        assert!(is_binary_content_type("image/png"));
        assert!(is_binary_content_type("application/x-protobuf"));
        assert!(!is_binary_content_type("application/json; charset=utf-8"));
        assert!(!is_binary_content_type("text/plain"));
        assert!(!is_binary_content_type(""));
    }
}
