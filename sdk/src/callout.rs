//! HTTP callouts from a request: `HttpClient` and the calls it builds.

use std::time::Duration;

use proxy_wasm::hostcalls;

use crate::cluster::Cluster;
use crate::context::HttpContext;
use crate::error::{Error, Result};
use crate::http_response::HttpResponse;
use crate::pending::Callback;

/// The default callout timeout, as in Higress.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

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
