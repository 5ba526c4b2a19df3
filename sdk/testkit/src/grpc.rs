//! A gRPC service over cleartext HTTP/2 (h2c), for plugins' gRPC callouts: `echo.Echo` with
//! - `Say` (unary): answers `hello <request>`, initial metadata `x-echo: yes`;
//! - `Fail` (unary): a trailers-only answer, `grpc-status: 7`, `grpc-message: denied`;
//! - `Slow` (unary): as `Say`, two seconds later;
//! - `Chat` (bidirectional): answers each message `m` with `echo: m` as it arrives; when the
//!   client ends its side, closes with status 0 and trailing metadata `x-done: <count>`;
//! - anything else: `grpc-status: 12` (unimplemented).
//!
//! Every call is recorded (path, metadata, messages).

use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{mpsc, oneshot};
use wasmplug_host::{GrpcMessageReader, frame_grpc_message};

/// A call the service received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcRequest {
    /// `/echo.Echo/Say`.
    pub path: String,
    /// The request headers (lowercased names), pseudo-headers excluded.
    pub metadata: Vec<(String, String)>,
    pub messages: Vec<Vec<u8>>,
}

impl GrpcRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

type Calls = Arc<Mutex<Vec<GrpcRequest>>>;

fn lock(calls: &Calls) -> MutexGuard<'_, Vec<GrpcRequest>> {
    calls.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running service; stops on drop.
pub struct GrpcEcho {
    port: u16,
    calls: Calls,
    _stop: oneshot::Sender<()>,
}

impl GrpcEcho {
    /// Listens on 127.0.0.1 with an OS-assigned port, on a runtime thread of its own.
    ///
    /// # Panics
    /// If no loopback port can be bound or the runtime cannot start.
    #[allow(clippy::panic)]
    pub fn start() -> GrpcEcho {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("grpc echo: cannot bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let _ = listener.set_nonblocking(true);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("grpc echo: no runtime: {e}"));
        let calls = Calls::default();
        let (stop, stopped) = oneshot::channel();
        let recorded = Arc::clone(&calls);
        std::thread::spawn(move || runtime.block_on(serve(listener, recorded, stopped)));
        GrpcEcho { port, calls, _stop: stop }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The calls received so far, oldest first (messages as they have arrived).
    pub fn calls(&self) -> Vec<GrpcRequest> {
        lock(&self.calls).clone()
    }
}

async fn serve(listener: TcpListener, calls: Calls, mut stopped: oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let calls = Arc::clone(&calls);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, Arc::clone(&calls)));
            let _ = http2::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn grpc_headers(builder: hyper::http::response::Builder) -> hyper::http::response::Builder {
    builder.status(200).header("content-type", "application/grpc").header("x-echo", "yes")
}

fn trailers(status: u32, message: &str, extra: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = value.parse() {
            map.insert(name, value);
        }
    };
    put("grpc-status", &status.to_string());
    if !message.is_empty() {
        put("grpc-message", message);
    }
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) = (name.parse::<hyper::header::HeaderName>(), value.parse()) {
            map.insert(name, value);
        }
    }
    map
}

async fn answer(request: Request<Incoming>, calls: Calls) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_string();
    let metadata = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let index = {
        let mut calls = lock(&calls);
        calls.push(GrpcRequest { path: path.clone(), metadata, messages: Vec::new() });
        calls.len() - 1
    };
    let (frames_tx, frames_rx) = mpsc::unbounded_channel::<Frame<Bytes>>();
    let method = path.rsplit('/').next().unwrap_or_default().to_string();
    let body = request.into_body();
    match method.as_str() {
        "Say" | "Slow" | "Chat" => {
            tokio::spawn(respond(method, body, calls, index, frames_tx));
            let stream = futures_util::stream::unfold(frames_rx, |mut rx| async move {
                rx.recv().await.map(|frame| (Ok::<_, Infallible>(frame), rx))
            });
            let response = grpc_headers(Response::builder()).body(StreamBody::new(stream).boxed());
            Ok(response.unwrap_or_else(|_| Response::new(Empty::new().boxed())))
        }
        _ => {
            let (status, message) = if method == "Fail" { (7, "denied") } else { (12, "unknown method") };
            let mut response = Response::new(Empty::new().boxed());
            *response.headers_mut() = trailers(status, message, &[]);
            response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/grpc"));
            Ok(response)
        }
    }
}

/// Reads the request's messages and answers them as `method` does.
async fn respond(
    method: String,
    mut body: Incoming,
    calls: Calls,
    index: usize,
    out: mpsc::UnboundedSender<Frame<Bytes>>,
) {
    let mut reader = GrpcMessageReader::default();
    let mut count = 0;
    let mut first = None;
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else { continue };
        let Ok(messages) = reader.push(&data) else { break };
        for message in messages {
            if let Some(call) = lock(&calls).get_mut(index) {
                call.messages.push(message.clone());
            }
            count += 1;
            if method == "Chat" {
                let mut reply = b"echo: ".to_vec();
                reply.extend_from_slice(&message);
                let _ = out.send(Frame::data(Bytes::from(frame_grpc_message(&reply))));
            } else {
                first.get_or_insert(message);
            }
        }
    }
    if method == "Slow" {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if method != "Chat" {
        let mut reply = b"hello ".to_vec();
        reply.extend_from_slice(&first.unwrap_or_default());
        let _ = out.send(Frame::data(Bytes::from(frame_grpc_message(&reply))));
    }
    let extra = if method == "Chat" { vec![("x-done", count.to_string())] } else { Vec::new() };
    let _ = out.send(Frame::trailers(trailers(0, "", &extra)));
}
