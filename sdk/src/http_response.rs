//! The answer to an HTTP callout, and reading it from the host.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use crate::error::{Error, Result};

/// The answer to an HTTP callout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads the answer of an HTTP callout from the host.
pub(crate) fn read_http_response(cluster: &str, num_headers: usize, body_size: usize) -> Result<HttpResponse> {
    let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let status = headers.iter().find(|(k, _)| k == ":status").and_then(|(_, v)| v.parse::<u16>().ok());
    let Some(status) = status.filter(|_| num_headers > 0) else {
        return Err(Error::Callout {
            cluster: cluster.to_string(),
            reason: "no response (timeout, connection failure or reset)".to_string(),
        });
    };
    let body = if body_size == 0 {
        Vec::new()
    } else {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten().unwrap_or_default()
    };
    Ok(HttpResponse { status, headers, body })
}
