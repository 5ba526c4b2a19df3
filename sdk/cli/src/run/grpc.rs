//! Plugins' gRPC callouts over cleartext HTTP/2 (h2c) to a `--cluster`, reported as Envoy's
//! gRPC client reports them: a unary call ends with its message or its close, a stream reports
//! its initial metadata, each message, its trailing metadata and its close.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::HeaderMap;
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use wasmplug_host::{
    Answer, GrpcCall, GrpcEnd, GrpcEvent, GrpcKind, GrpcMessageReader, Pairs, frame_grpc_message, grpc_status,
};

use super::network::AnswerBoard;

type Body = BoxBody<Bytes, Infallible>;
type H2Client = Client<HttpConnector, Body>;

/// The gRPC calls and streams of one VM that are still open.
pub struct GrpcCallouts {
    client: H2Client,
    runtime: tokio::runtime::Handle,
    /// Where a stream's next messages go; dropped when the plugin half-closes it.
    senders: HashMap<u32, mpsc::UnboundedSender<Bytes>>,
    tasks: HashMap<u32, AbortHandle>,
}

impl GrpcCallouts {
    pub fn new(runtime: tokio::runtime::Handle) -> GrpcCallouts {
        let client = Client::builder(TokioExecutor::new()).http2_only(true).build_http();
        GrpcCallouts { client, runtime, senders: HashMap::new(), tasks: HashMap::new() }
    }

    /// Starts `call` to `authority` (`host:port`); what it reports is posted to `answers`.
    pub fn open(&mut self, call: &GrpcCall, authority: &str, answers: AnswerBoard) {
        self.tasks.retain(|_, task| !task.is_finished());
        let (sender, messages) = mpsc::unbounded_channel::<Bytes>();
        for message in &call.sent {
            let _ = sender.send(Bytes::from(frame_grpc_message(message)));
        }
        if !call.half_closed {
            self.senders.insert(call.token, sender);
        }
        let body = StreamBody::new(futures_util::stream::unfold(messages, |mut messages| async move {
            let data = messages.recv().await?;
            Some((Ok::<_, Infallible>(Frame::data(data)), messages))
        }));
        let mut request = hyper::Request::post(format!("http://{authority}{}", call.path()))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in &call.initial_metadata {
            request = request.header(name.as_str(), value.as_str());
        }
        let (token, kind) = (call.token, call.kind);
        let timeout = (call.timeout_ms > 0).then(|| Duration::from_millis(u64::from(call.timeout_ms)));
        let exchange = request.body(body.boxed()).map(|request| self.client.request(request));
        let task = self.runtime.spawn(async move {
            let report = |event: GrpcEvent| answers.post(token, Answer::Grpc(event));
            let Ok(response) = exchange else {
                report(GrpcEvent::failure(grpc_status::INTERNAL, "invalid gRPC metadata"));
                return;
            };
            let mut events = Events { kind, report: &report, first: None };
            let run = read(response, &mut events);
            let close = match timeout {
                Some(limit) => tokio::time::timeout(limit, run).await.unwrap_or_else(|_| GrpcEvent::timed_out()),
                None => run.await,
            };
            events.close(close);
        });
        self.tasks.insert(token, task.abort_handle());
    }

    /// A message the plugin sent on stream `token`.
    pub fn send(&mut self, token: u32, message: &[u8], end_stream: bool) {
        if let Some(sender) = self.senders.get(&token) {
            let _ = sender.send(Bytes::from(frame_grpc_message(message)));
        }
        if end_stream {
            self.senders.remove(&token);
        }
        self.senders.retain(|_, sender| !sender.is_closed());
    }

    /// The plugin half-closed or cancelled `token`.
    pub fn end(&mut self, token: u32, how: GrpcEnd) {
        self.senders.remove(&token);
        if how == GrpcEnd::Cancel
            && let Some(task) = self.tasks.remove(&token)
        {
            task.abort();
        }
    }
}

/// Reports a call's events as Envoy does for its kind.
struct Events<'a, F: Fn(GrpcEvent)> {
    kind: GrpcKind,
    report: &'a F,
    /// A unary call's answer, reported once the call ended well.
    first: Option<Vec<u8>>,
}

impl<F: Fn(GrpcEvent)> Events<'_, F> {
    fn event(&mut self, event: GrpcEvent) {
        match (self.kind, event) {
            (GrpcKind::Stream, event) => (self.report)(event),
            (GrpcKind::Unary, GrpcEvent::Message(message)) => {
                self.first.get_or_insert(message);
            }
            (GrpcKind::Unary, _) => {}
        }
    }

    fn close(&mut self, close: GrpcEvent) {
        match (self.kind, &close, self.first.take()) {
            (GrpcKind::Unary, GrpcEvent::Close { status: grpc_status::OK, .. }, Some(message)) => {
                (self.report)(GrpcEvent::Message(message))
            }
            (GrpcKind::Unary, GrpcEvent::Close { status: grpc_status::OK, .. }, None) => {
                (self.report)(GrpcEvent::failure(grpc_status::INTERNAL, "the response had no message"))
            }
            _ => (self.report)(close),
        }
    }
}

fn pairs(headers: &HeaderMap) -> Pairs {
    headers.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

/// The status in `grpc-status` / `grpc-message`; `None` without one.
fn status_of(headers: &HeaderMap) -> Option<GrpcEvent> {
    let status = headers.get("grpc-status")?.to_str().ok()?.trim().parse().unwrap_or(grpc_status::UNKNOWN);
    let message = headers.get("grpc-message").and_then(|m| m.to_str().ok()).unwrap_or_default();
    Some(GrpcEvent::from_upstream(status, message))
}

/// Reads the response; returns how the call closed.
async fn read<F: Fn(GrpcEvent)>(
    response: impl std::future::Future<
        Output = Result<hyper::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>,
    >,
    events: &mut Events<'_, F>,
) -> GrpcEvent {
    let response = match response.await {
        Ok(response) => response,
        Err(e) => return GrpcEvent::failure(grpc_status::UNAVAILABLE, format!("upstream connect error: {e}")),
    };
    if response.status() != hyper::StatusCode::OK {
        return GrpcEvent::failure(grpc_status::from_http(response.status().as_u16()), "non-200 HTTP status");
    }
    let (parts, mut body) = response.into_parts();
    // Trailers-only: the status comes with the headers.
    if let Some(close) = status_of(&parts.headers) {
        events.event(GrpcEvent::TrailingMetadata(pairs(&parts.headers)));
        return close;
    }
    events.event(GrpcEvent::InitialMetadata(pairs(&parts.headers)));
    let mut reader = GrpcMessageReader::default();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return GrpcEvent::failure(grpc_status::INTERNAL, format!("the stream was reset: {e}")),
        };
        match frame.into_data() {
            Ok(data) => match reader.push(&data) {
                Ok(messages) => messages.into_iter().for_each(|m| events.event(GrpcEvent::Message(m))),
                Err(reason) => return GrpcEvent::failure(grpc_status::INTERNAL, reason),
            },
            Err(frame) => {
                let Ok(trailers) = frame.into_trailers() else { continue };
                events.event(GrpcEvent::TrailingMetadata(pairs(&trailers)));
                let missing = || GrpcEvent::failure(grpc_status::UNKNOWN, "no grpc-status in the trailers");
                return status_of(&trailers).unwrap_or_else(missing);
            }
        }
    }
    GrpcEvent::failure(grpc_status::INTERNAL, "the stream ended without trailers")
}
