//! gRPC callouts: `proxy_grpc_call` (unary), `proxy_grpc_stream` and what goes with them
//! (`proxy_grpc_send`, `proxy_grpc_close`, `proxy_grpc_cancel`, `proxy_get_status`), with
//! Envoy's semantics (`source/extensions/common/wasm/context.cc`):
//! - calls are made on the root context and their callbacks run there (the plugin sets the
//!   effective context to the stream it calls for), as for HTTP calls;
//! - the `service` argument is a cluster name, or a serialized `envoy.config.core.v3.GrpcService`
//!   naming one in `envoy_grpc.cluster_name`; an unknown cluster fails the call with `BadArgument`;
//! - a unary call ends with `proxy_on_grpc_receive` (the response message) on success or with
//!   `proxy_on_grpc_close` (status, message by `proxy_get_status`) on failure, never both, and
//!   reports no metadata;
//! - a stream reports initial metadata, each message, trailing metadata, then its close;
//! - `proxy_grpc_close` cancels a unary call and half-closes a stream; `proxy_grpc_cancel`
//!   resets either; neither is followed by callbacks.

use prost::Message as _;

use crate::abi::{self, Pairs, status};
use crate::error::{Callback, Fault};
use crate::memory::{Ctx, Fail, HostResult, copy_out, fail, read, read_string, write_u32};
use crate::state::{CallRecord, Delivery, HostState};
use crate::vm::{ROOT_ID, Vm};

/// gRPC status codes, and the status of an HTTP answer without one.
pub mod code {
    pub const OK: u32 = 0;
    pub const UNKNOWN: u32 = 2;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const PERMISSION_DENIED: u32 = 7;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
    pub const UNAUTHENTICATED: u32 = 16;

    /// gRPC's mapping of an HTTP status (`doc/http-grpc-status-mapping.md`), as Envoy applies it.
    pub fn from_http(status: u16) -> u32 {
        match status {
            400 => INTERNAL,
            401 => UNAUTHENTICATED,
            403 => PERMISSION_DENIED,
            404 => UNIMPLEMENTED,
            429 | 502 | 503 | 504 => UNAVAILABLE,
            _ => UNKNOWN,
        }
    }
}

/// Whether a call is unary (`proxy_grpc_call`) or a stream (`proxy_grpc_stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcKind {
    Unary,
    Stream,
}

/// A gRPC call or stream a plugin opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    pub token: u32,
    pub context_id: u32,
    pub kind: GrpcKind,
    /// The cluster it goes to.
    pub cluster: String,
    /// The fully qualified service, e.g. `echo.Echo`.
    pub service: String,
    pub method: String,
    pub initial_metadata: Pairs,
    /// The messages sent: a unary call's request, or each `proxy_grpc_send` of a stream.
    pub sent: Vec<Vec<u8>>,
    /// Whether the plugin half-closed the stream (`end_stream`, or `proxy_grpc_close`).
    pub half_closed: bool,
    /// Unary calls only; 0 is no timeout.
    pub timeout_ms: u32,
}

impl GrpcCall {
    /// The HTTP/2 path of the call: `/service/method`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }
}

/// Something a gRPC call or stream reports to the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcEvent {
    /// The response headers (streams only).
    InitialMetadata(Pairs),
    /// A response message (without the gRPC length prefix).
    Message(Vec<u8>),
    /// The trailers (streams only).
    TrailingMetadata(Pairs),
    /// The end: a gRPC status and its message. A unary call that succeeded ends with its
    /// `Message` instead.
    Close { status: u32, message: String },
}

impl GrpcEvent {
    /// A close with `status` and `message`.
    pub fn failure(status: u32, message: impl Into<String>) -> GrpcEvent {
        GrpcEvent::Close { status, message: message.into() }
    }

    /// How Envoy 1.40 closes a unary call whose timeout passed.
    pub fn timed_out() -> GrpcEvent {
        GrpcEvent::failure(code::INTERNAL, "response_timeout")
    }

    /// How Envoy 1.40 reports a non-OK status the service sent: its `grpc-message` with the
    /// response details appended.
    pub fn from_upstream(status: u32, message: &str) -> GrpcEvent {
        if status == code::OK {
            return GrpcEvent::failure(status, message);
        }
        GrpcEvent::failure(status, format!("{message}{{via_upstream}}"))
    }
}

/// How a handler answers a new gRPC call or stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcReply {
    /// These events, delivered after the plugin's current call returns.
    Events(Vec<GrpcEvent>),
    /// Answered later (`Stream::answer_grpc`, or the async driver's answers).
    Pending,
    /// No such cluster: the call fails with `BadArgument`, as in Envoy.
    UnknownCluster,
}

/// How the plugin ended a call or stream early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcEnd {
    /// `proxy_grpc_close` on a stream: no more messages from the plugin (half-close).
    HalfClose,
    /// `proxy_grpc_cancel`, or `proxy_grpc_close` on a unary call: reset, no more callbacks.
    Cancel,
}

/// `envoy.config.core.v3.GrpcService`, as far as the host reads it.
#[derive(Clone, PartialEq, prost::Message)]
struct GrpcService {
    #[prost(message, optional, tag = "1")]
    envoy_grpc: Option<EnvoyGrpc>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EnvoyGrpc {
    #[prost(string, tag = "1")]
    cluster_name: String,
}

/// The cluster a `service` argument names.
fn cluster_of(service: &[u8]) -> String {
    match GrpcService::decode(service) {
        Ok(GrpcService { envoy_grpc: Some(EnvoyGrpc { cluster_name }) }) if !cluster_name.is_empty() => cluster_name,
        _ => String::from_utf8_lossy(service).into_owned(),
    }
}

/// The arguments common to `proxy_grpc_call` and `proxy_grpc_stream` (pointer, length pairs).
pub struct Target {
    pub service: (i32, i32),
    pub service_name: (i32, i32),
    pub method: (i32, i32),
    pub metadata: (i32, i32),
}

fn open(
    mut caller: Ctx<'_>,
    target: &Target,
    kind: GrpcKind,
    message: Option<Vec<u8>>,
    timeout_ms: u32,
    token_ptr: i32,
) -> HostResult {
    let cluster = cluster_of(&read(&caller, target.service.0, target.service.1)?);
    let service = read_string(&caller, target.service_name.0, target.service_name.1)?;
    let method = read_string(&caller, target.method.0, target.method.1)?;
    let metadata = read(&caller, target.metadata.0, target.metadata.1)?;
    let initial_metadata = abi::decode_pairs(&metadata).ok_or(Fail::Status(status::BAD_ARGUMENT))?;
    let state = caller.data_mut();
    let token = state.next_token();
    let call = GrpcCall {
        token,
        context_id: state.effective,
        kind,
        cluster,
        service,
        method,
        initial_metadata,
        sent: message.into_iter().collect(),
        half_closed: kind == GrpcKind::Unary,
        timeout_ms,
    };
    match state.callouts.grpc_call(&call) {
        GrpcReply::UnknownCluster => {
            state.log(abi::LogLevel::Debug, format!("gRPC call to unknown cluster `{}` refused", call.cluster));
            return fail(status::BAD_ARGUMENT);
        }
        GrpcReply::Pending => {}
        GrpcReply::Events(events) => {
            state.deliveries.extend(events.into_iter().map(|event| Delivery::Grpc { token, event }));
        }
    }
    state.grpc_calls.push(CallRecord { call, answered: false });
    write_u32(&mut caller, token_ptr, token)
}

/// `proxy_grpc_call`.
pub fn call(caller: Ctx<'_>, target: &Target, message: (i32, i32), timeout_ms: i32, token_ptr: i32) -> HostResult {
    let message = read(&caller, message.0, message.1)?;
    open(caller, target, GrpcKind::Unary, Some(message), timeout_ms as u32, token_ptr)
}

/// `proxy_grpc_stream`.
pub fn stream(caller: Ctx<'_>, target: &Target, token_ptr: i32) -> HostResult {
    open(caller, target, GrpcKind::Stream, None, 0, token_ptr)
}

fn open_call(state: &mut HostState, token: i32) -> Result<&mut CallRecord<GrpcCall>, Fail> {
    let token = token as u32;
    state.grpc_calls.iter_mut().find(|r| r.call.token == token && !r.answered).ok_or(Fail::Status(status::NOT_FOUND))
}

/// `proxy_grpc_send`: a message on an open stream.
pub fn send(mut caller: Ctx<'_>, token: i32, mp: i32, ml: i32, end_stream: i32) -> HostResult {
    let message = read(&caller, mp, ml)?;
    let state = caller.data_mut();
    let record = open_call(state, token)?;
    if record.call.kind != GrpcKind::Stream {
        return fail(status::NOT_FOUND);
    }
    // Envoy accepts (and drops) a message after the half-close.
    if record.call.half_closed {
        return Ok(());
    }
    record.call.sent.push(message.clone());
    record.call.half_closed = end_stream != 0;
    state.callouts.grpc_send(token as u32, &message, end_stream != 0);
    Ok(())
}

/// `proxy_grpc_close` (`cancel` false) and `proxy_grpc_cancel` (`cancel` true).
pub fn end(mut caller: Ctx<'_>, token: i32, cancel: bool) -> HostResult {
    let state = caller.data_mut();
    let record = open_call(state, token)?;
    let how = if cancel || record.call.kind == GrpcKind::Unary { GrpcEnd::Cancel } else { GrpcEnd::HalfClose };
    match how {
        GrpcEnd::Cancel => record.answered = true,
        GrpcEnd::HalfClose => record.call.half_closed = true,
    }
    state.callouts.grpc_end(token as u32, how);
    Ok(())
}

/// `proxy_get_status`: the status of the call being closed (`proxy_on_grpc_close`).
pub fn get_status(mut caller: Ctx<'_>, code_ptr: i32, ptr_ptr: i32, size_ptr: i32) -> HostResult {
    let (code, message) = caller.data().grpc_status.clone();
    write_u32(&mut caller, code_ptr, code)?;
    copy_out(&mut caller, message.as_bytes(), ptr_ptr, size_ptr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_argument_names_a_cluster_either_way() {
        assert_eq!(cluster_of(b"outbound|50051||echo.static"), "outbound|50051||echo.static");
        let proto = GrpcService { envoy_grpc: Some(EnvoyGrpc { cluster_name: "grpc-echo".into() }) };
        assert_eq!(cluster_of(&proto.encode_to_vec()), "grpc-echo");
    }

    #[test]
    fn messages_are_framed_and_read_back_across_chunks() {
        let mut wire = frame_message(b"one");
        wire.extend(frame_message(b""));
        wire.extend(frame_message(b"three"));
        let mut reader = MessageReader::default();
        let (a, b) = wire.split_at(6);
        assert_eq!(reader.push(a).unwrap(), Vec::<Vec<u8>>::new());
        assert!(reader.is_partial());
        assert_eq!(reader.push(b).unwrap(), vec![b"one".to_vec(), Vec::new(), b"three".to_vec()]);
        assert!(!reader.is_partial());
        assert!(reader.push(&[1, 0, 0, 0, 0]).is_err());
    }
}

impl Vm {
    /// One gRPC event, as Envoy reports it: a unary call reports only its message or its
    /// close; a stream everything, until its close. Events of closed calls are dropped.
    pub(crate) fn deliver_grpc(&mut self, token: u32, event: GrpcEvent) -> std::result::Result<(), Fault> {
        let exports = self.exports.clone();
        let state = self.store.data_mut();
        let Some(record) = state.grpc_calls.iter_mut().find(|r| r.call.token == token && !r.answered) else {
            return Ok(());
        };
        let (context, unary) = (record.call.context_id, record.call.kind == GrpcKind::Unary);
        let metadata = matches!(event, GrpcEvent::InitialMetadata(_) | GrpcEvent::TrailingMetadata(_));
        if unary && metadata {
            return Ok(());
        }
        record.answered = unary || matches!(event, GrpcEvent::Close { .. });
        if context != ROOT_ID && !state.streams.contains_key(&context) {
            return Ok(());
        }
        // As HTTP calls: made on the root context and answered there.
        let (id, token) = (ROOT_ID as i32, token as i32);
        let result = match event {
            GrpcEvent::InitialMetadata(pairs) => {
                let count = pairs.len() as i32;
                state.grpc_metadata = Some(pairs);
                let func = exports.on_grpc_receive_initial_metadata;
                self.call(Callback::GrpcReceiveInitialMetadata, ROOT_ID, func, (id, token, count))
            }
            GrpcEvent::TrailingMetadata(pairs) => {
                let count = pairs.len() as i32;
                state.grpc_metadata = Some(pairs);
                let func = exports.on_grpc_receive_trailing_metadata;
                self.call(Callback::GrpcReceiveTrailingMetadata, ROOT_ID, func, (id, token, count))
            }
            GrpcEvent::Message(message) => {
                let size = message.len() as i32;
                state.grpc_message = Some(message);
                self.call(Callback::GrpcReceive, ROOT_ID, exports.on_grpc_receive, (id, token, size))
            }
            GrpcEvent::Close { status, message } => {
                state.grpc_status = (status, message);
                self.call(Callback::GrpcClose, ROOT_ID, exports.on_grpc_close, (id, token, status as i32))
            }
        };
        let state = self.store.data_mut();
        (state.grpc_metadata, state.grpc_message, state.grpc_status) = (None, None, (0, String::new()));
        result.map(drop)
    }
}

/// One gRPC message on the wire: the uncompressed flag, its length (big-endian) and the bytes.
pub fn frame_message(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Splits a byte stream into gRPC messages as the bytes arrive.
#[derive(Debug, Default)]
pub struct MessageReader {
    pending: Vec<u8>,
}

impl MessageReader {
    /// Adds received bytes; returns the messages they complete. A compressed message (flag
    /// set) is an error: nothing here negotiates compression.
    pub fn push(&mut self, bytes: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
        self.pending.extend_from_slice(bytes);
        let mut messages = Vec::new();
        while let Some(header) = self.pending.get(..5) {
            if header[0] != 0 {
                return Err("a compressed gRPC message (no compression was negotiated)".into());
            }
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let Some(message) = self.pending.get(5..5 + len) else { break };
            messages.push(message.to_vec());
            self.pending.drain(..5 + len);
        }
        Ok(messages)
    }

    /// Whether bytes of an incomplete message are left.
    pub fn is_partial(&self) -> bool {
        !self.pending.is_empty()
    }
}
