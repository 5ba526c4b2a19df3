//! A recording HTTP/1.1 upstream: remembers every request and answers with a canned
//! response (per path prefix, default `200 upstream ok`). Supports keep-alive and
//! chunked request bodies, which is what Envoy sends.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// A request as the upstream received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path including the query string.
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
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

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the upstream answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How long to wait before answering (a slow service).
    pub delay: Duration,
}

impl UpstreamResponse {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self { status, headers: Vec::new(), body: body.into(), delay: Duration::ZERO }
    }

    /// Answers only after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl Default for UpstreamResponse {
    fn default() -> Self {
        Self::new(200, "upstream ok").header("content-type", "text/plain")
    }
}

#[derive(Default)]
struct State {
    requests: Vec<RecordedRequest>,
    /// (path prefix, response); the longest matching prefix wins.
    responses: Vec<(String, UpstreamResponse)>,
    default: UpstreamResponse,
    connections: Vec<TcpStream>,
    /// Hold every answer until this many requests arrived, for at most this long.
    hold: Option<(usize, Duration)>,
}

struct Shared {
    state: Mutex<State>,
    stopped: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running upstream; stops (and closes its connections) on drop.
pub struct Upstream {
    port: u16,
    shared: Arc<Shared>,
}

impl Upstream {
    /// Listens on 127.0.0.1 with an OS-assigned port.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    #[allow(clippy::panic)]
    pub fn start() -> Upstream {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => listener,
            Err(err) => panic!("upstream: cannot bind 127.0.0.1:0: {err}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), stopped: AtomicBool::new(false) });
        let accept_shared = Arc::clone(&shared);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    accept_shared.lock().connections.push(clone);
                }
                let conn_shared = Arc::clone(&accept_shared);
                thread::spawn(move || serve(stream, &conn_shared));
            }
        });
        Upstream { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.lock().requests.last().cloned()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Waits until at least `count` requests were received.
    pub fn wait_for_requests(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.shared.lock().requests.len() < count {
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// The answer for requests without a more specific [`Upstream::respond`] prefix.
    pub fn set_default_response(&self, response: UpstreamResponse) {
        self.shared.lock().default = response;
    }

    /// Holds every answer until `count` requests have arrived (or `at_most` passed): requests
    /// answered this way were in flight at the same time.
    pub fn hold_until(&self, count: usize, at_most: Duration) {
        self.shared.lock().hold = Some((count, at_most));
    }

    /// Answers requests whose path starts with `prefix` with `response`.
    pub fn respond(&self, prefix: impl Into<String>, response: UpstreamResponse) {
        let prefix = prefix.into();
        let mut state = self.shared.lock();
        state.responses.retain(|(p, _)| *p != prefix);
        state.responses.push((prefix, response));
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        for conn in self.shared.lock().connections.drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while !shared.stopped.load(Ordering::SeqCst) {
        let Ok(Some(request)) = read_request(&mut reader) else {
            return;
        };
        let close = request.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let head_only = request.method.eq_ignore_ascii_case("HEAD");
        let arrived = Instant::now();
        let (response, hold) = {
            let mut state = shared.lock();
            let response = state
                .responses
                .iter()
                .filter(|(prefix, _)| request.path.starts_with(prefix.as_str()))
                .max_by_key(|(prefix, _)| prefix.len())
                .map_or_else(|| state.default.clone(), |(_, r)| r.clone());
            state.requests.push(request);
            (response, state.hold)
        };
        if let Some((count, at_most)) = hold {
            while shared.lock().requests.len() < count && arrived.elapsed() < at_most {
                thread::sleep(Duration::from_millis(5));
            }
        }
        thread::sleep(response.delay.saturating_sub(arrived.elapsed()));
        if write_response(&mut writer, &response, close, head_only).is_err() || close {
            return;
        }
    }
}

/// Reads one request; `Ok(None)` on a clean end of the connection.
fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<RecordedRequest>> {
    let mut line = String::new();
    // Tolerate stray empty lines between requests.
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("connection closed inside the headers"));
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut request = RecordedRequest { method, path, headers, body: Vec::new() };
    if request.header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        request.body = read_chunked(reader)?;
    } else if let Some(len) = request.header("content-length") {
        let len: usize = len.parse().map_err(|_| invalid("bad content-length"))?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        request.body = body;
    }
    Ok(Some(request))
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?; // CRLF after the chunk data
    }
}

fn write_response(
    out: &mut impl Write,
    response: &UpstreamResponse,
    close: bool,
    head_only: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    for (name, value) in &response.headers {
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("content-length: {}\r\n", response.body.len()));
    head.push_str(if close { "connection: close\r\n\r\n" } else { "connection: keep-alive\r\n\r\n" });
    // One write: a separate small body write would meet Nagle + delayed ACK (40 ms).
    let mut bytes = head.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
    out.write_all(&bytes)?;
    out.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_owned())
}
