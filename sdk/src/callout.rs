//! HTTP callouts from a request: `HttpClient` and the bookkeeping of pending calls.

use std::time::Duration;

use proxy_wasm::hostcalls;

use crate::cluster::Cluster;
use crate::context::HttpContext;
use crate::error::{Error, Result};

/// The default callout timeout, as in Higress.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

type HttpCallback = Box<dyn FnOnce(&mut HttpContext, Result<HttpResponse>)>;
#[cfg(feature = "redis")]
type RedisCallback = Box<dyn FnOnce(&mut HttpContext, Result<crate::resp::RedisReply>)>;

pub(crate) enum Callback {
    Http {
        cluster: String,
        done: HttpCallback,
    },
    #[cfg(feature = "redis")]
    Redis {
        cluster: String,
        done: RedisCallback,
    },
}

/// Calls dispatched by a request and not answered yet.
#[derive(Default)]
pub(crate) struct Pending {
    calls: Vec<(u32, Callback)>,
}

impl Pending {
    pub fn push(&mut self, token: u32, callback: Callback) {
        self.calls.push((token, callback));
    }
    pub fn take(&mut self, token: u32) -> Option<Callback> {
        let at = self.calls.iter().position(|(t, _)| *t == token)?;
        Some(self.calls.swap_remove(at).1)
    }
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

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

/// A client for one cluster. Cheap to build; keep one in your config or build it per request.
#[derive(Debug, Clone)]
pub struct HttpClient {
    cluster: Cluster,
}

impl HttpClient {
    pub fn new(cluster: Cluster) -> Self {
        HttpClient { cluster }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn get(&self, path: &str) -> CallBuilder {
        self.request("GET", path)
    }
    pub fn head(&self, path: &str) -> CallBuilder {
        self.request("HEAD", path)
    }
    pub fn options(&self, path: &str) -> CallBuilder {
        self.request("OPTIONS", path)
    }
    pub fn delete(&self, path: &str) -> CallBuilder {
        self.request("DELETE", path)
    }
    pub fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> CallBuilder {
        self.request("POST", path).body(body)
    }
    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) -> CallBuilder {
        self.request("PUT", path).body(body)
    }
    pub fn patch(&self, path: &str, body: impl Into<Vec<u8>>) -> CallBuilder {
        self.request("PATCH", path).body(body)
    }

    /// A request with any method.
    pub fn request(&self, method: &str, path: &str) -> CallBuilder {
        CallBuilder {
            cluster: self.cluster.clone(),
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// One callout being prepared; [`send`](Self::send) dispatches it.
#[derive(Debug)]
pub struct CallBuilder {
    cluster: Cluster,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

impl CallBuilder {
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Dispatches the call. `on_response` runs when the answer (or a failure: timeout, reset,
    /// unknown cluster) arrives; return [`Action::Pause`](crate::Action::Pause) from the handler
    /// to hold the request until then. When `on_response` neither answers nor resumes and no
    /// other call is pending, the SDK resumes the request so it never hangs.
    ///
    /// An error here means nothing was sent and `on_response` will not run: continue the request.
    pub fn send(
        self,
        ctx: &mut HttpContext,
        on_response: impl FnOnce(&mut HttpContext, Result<HttpResponse>) + 'static,
    ) -> Result<()> {
        let cluster = self.cluster.cluster_name(Some(ctx));
        let authority = self.cluster.host_name(Some(ctx));
        let mut headers: Vec<(&str, &str)> =
            vec![(":method", &self.method), (":path", &self.path), (":authority", &authority)];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        match hostcalls::dispatch_http_call(&cluster, headers, self.body.as_deref(), vec![], self.timeout) {
            Ok(token) => {
                log::debug!("dispatched {} {} to {cluster} (token {token})", self.method, self.path);
                ctx.pending.push(token, Callback::Http { cluster, done: Box::new(on_response) });
                Ok(())
            }
            Err(status) => Err(Error::Callout {
                cluster,
                reason: format!("dispatch refused by the host (status {})", status as u32),
            }),
        }
    }
}

/// Reads the answer of an HTTP callout from the host.
pub(crate) fn read_http_response(cluster: &str, num_headers: usize, body_size: usize) -> Result<HttpResponse> {
    let headers = hostcalls::get_map(proxy_wasm::types::MapType::HttpCallResponseHeaders).unwrap_or_default();
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
        hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    Ok(HttpResponse { status, headers, body })
}
