//! A blocking HTTP/1.1 client for talking to Envoy (or the admin port) on 127.0.0.1.
//! Redirects are not followed and every status is a response, never an error.

use std::time::Duration;

use ureq::http;

/// A response as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// All values of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request to `127.0.0.1:port`, built with [`request`].
#[derive(Debug, Clone)]
pub struct Request {
    port: u16,
    method: String,
    path: String,
    host: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Duration,
}

/// Starts a request: `method` to `http://127.0.0.1:{port}{path}` (`path` may hold a query).
pub fn request(port: u16, method: &str, path: &str) -> Request {
    Request {
        port,
        method: method.to_owned(),
        path: path.to_owned(),
        host: None,
        headers: Vec::new(),
        body: Vec::new(),
        timeout: Duration::from_secs(10),
    }
}

/// `GET path`.
pub fn get(port: u16, path: &str) -> Result<Response, String> {
    request(port, "GET", path).send()
}

/// `GET path` with a `Host` header (to pick a virtual host).
pub fn get_host(port: u16, host: &str, path: &str) -> Result<Response, String> {
    request(port, "GET", path).host(host).send()
}

/// `POST path` with `body`.
pub fn post(port: u16, path: &str, body: impl Into<Vec<u8>>) -> Result<Response, String> {
    request(port, "POST", path).body(body).send()
}

impl Request {
    /// The `Host` header (`:authority`); default `127.0.0.1:port`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Adds a header (repeatable).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The request body (sent with a `content-length`).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Overall timeout (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the request. `Err` only for transport failures (connection refused, timeout,
    /// malformed response); any HTTP status is `Ok`.
    pub fn send(self) -> Result<Response, String> {
        let url = format!("http://127.0.0.1:{}{}", self.port, self.path);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .allow_non_standard_methods(true)
            .timeout_global(Some(self.timeout))
            .build()
            .into();
        let mut builder = http::Request::builder().method(self.method.as_str()).uri(&url);
        if let Some(host) = &self.host {
            builder = builder.header("host", host);
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let what = format!("{} {url}", self.method);
        let result = if self.body.is_empty() {
            let req = builder.body(()).map_err(|e| format!("{what}: bad request: {e}"))?;
            agent.run(req)
        } else {
            let req = builder.body(self.body).map_err(|e| format!("{what}: bad request: {e}"))?;
            agent.run(req)
        };
        let mut resp = result.map_err(|e| format!("{what}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(name, value)| {
                (name.as_str().to_ascii_lowercase(), String::from_utf8_lossy(value.as_bytes()).into_owned())
            })
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| format!("{what}: reading the body: {e}"))?;
        Ok(Response { status, headers, body })
    }
}
