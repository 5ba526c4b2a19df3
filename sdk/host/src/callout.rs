//! Callouts a plugin makes (HTTP and Higress Redis calls) and how a test or a gateway answers them.

use crate::abi::Pairs;
use crate::grpc::{GrpcCall, GrpcEnd, GrpcReply};

/// An HTTP call dispatched by a plugin with `proxy_http_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub token: u32,
    /// The context that dispatched it (the HTTP stream, or the root context).
    pub context_id: u32,
    pub cluster: String,
    /// All headers, pseudo-headers (`:method`, `:path`, `:authority`) included.
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub trailers: Pairs,
    pub timeout_ms: u32,
}

impl HttpCall {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn method(&self) -> &str {
        self.header(":method").unwrap_or_default()
    }
    pub fn path(&self) -> &str {
        self.header(":path").unwrap_or_default()
    }
    pub fn authority(&self) -> &str {
        self.header(":authority").unwrap_or_default()
    }
}

/// An HTTP response (to a callout, from an upstream, or sent downstream).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lowercased, without `:status`.
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub trailers: Pairs,
}

impl HttpResponse {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse { status, headers: Vec::new(), body: body.into(), trailers: Vec::new() }
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into().to_ascii_lowercase(), value.into()));
        self
    }
    /// The first value of header `name` (case-insensitive).
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// All values of header `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How an HTTP callout ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalloutReply {
    /// The cluster answered.
    Response(HttpResponse),
    /// The exchange broke off without an answer (a reset): the plugin is called with no
    /// headers, as Envoy does. A timeout or a refused connection is an answer in Envoy: see
    /// [`CalloutReply::timed_out`] and [`CalloutReply::connect_failed`].
    Failure,
    /// No such cluster: `proxy_http_call` itself fails with `BadArgument`, as in Envoy.
    UnknownCluster,
    /// Not answered yet: the test answers later with `Stream::answer_http_call`.
    Pending,
}

impl CalloutReply {
    /// What Envoy 1.40 answers a callout whose timeout passed: its router's local reply.
    pub fn timed_out() -> CalloutReply {
        CalloutReply::envoy_local_reply(504, "upstream request timeout")
    }

    /// What Envoy 1.40 answers a callout to a cluster it cannot connect to.
    pub fn connect_failed() -> CalloutReply {
        let body = "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure";
        CalloutReply::envoy_local_reply(503, body)
    }

    fn envoy_local_reply(status: u16, body: &str) -> CalloutReply {
        let response = HttpResponse::new(status, body)
            .header("content-length", body.len().to_string())
            .header("content-type", "text/plain");
        CalloutReply::Response(response)
    }
}

/// A Redis command dispatched with Higress's `proxy_dispatch_redis_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisCall {
    pub token: u32,
    pub context_id: u32,
    pub cluster: String,
    /// The RESP2-encoded command.
    pub query: Vec<u8>,
}

impl RedisCall {
    /// The command's arguments, decoded from RESP2 (`["GET", "k"]`); empty if malformed.
    pub fn args(&self) -> Vec<String> {
        decode_command(&self.query).unwrap_or_default()
    }
}

/// How a Redis call ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisReply {
    /// A RESP2-encoded reply, e.g. `b"+OK\r\n"` or `b"$3\r\nbar\r\n"`.
    Reply(Vec<u8>),
    /// The call failed (status 1 to the plugin).
    Failure,
    /// No such Redis cluster: the dispatch itself fails.
    UnknownCluster,
    /// Answered later with `Stream::answer_redis_call`.
    Pending,
}

/// Answers a plugin's callouts. Called while the plugin runs (inside the host function), so
/// an `UnknownCluster` can fail the dispatch the way Envoy does; the answer is delivered to the
/// plugin after the current handler returns.
pub trait CalloutHandler: Send {
    fn http_call(&mut self, call: &HttpCall) -> CalloutReply;

    /// `proxy_redis_init`: whether the cluster is known. Default: every cluster is.
    fn redis_init(&mut self, _cluster: &str, _username: &str, _password: &str, _timeout_ms: u32) -> bool {
        true
    }

    /// A Redis command. Default: left pending for the test to answer.
    fn redis_call(&mut self, _call: &RedisCall) -> RedisReply {
        RedisReply::Pending
    }

    /// A gRPC call or stream opened (`proxy_grpc_call`, `proxy_grpc_stream`). Default: no
    /// such cluster, as in an Envoy without one.
    fn grpc_call(&mut self, _call: &GrpcCall) -> GrpcReply {
        GrpcReply::UnknownCluster
    }

    /// A message the plugin sent on a stream (`end_stream`: its last).
    fn grpc_send(&mut self, _token: u32, _message: &[u8], _end_stream: bool) {}

    /// The plugin half-closed or cancelled a call or stream.
    fn grpc_end(&mut self, _token: u32, _how: GrpcEnd) {}
}

/// A boxed handler answers as the handler in it.
impl CalloutHandler for Box<dyn CalloutHandler> {
    fn http_call(&mut self, call: &HttpCall) -> CalloutReply {
        (**self).http_call(call)
    }
    fn redis_init(&mut self, cluster: &str, username: &str, password: &str, timeout_ms: u32) -> bool {
        (**self).redis_init(cluster, username, password, timeout_ms)
    }
    fn redis_call(&mut self, call: &RedisCall) -> RedisReply {
        (**self).redis_call(call)
    }
    fn grpc_call(&mut self, call: &GrpcCall) -> GrpcReply {
        (**self).grpc_call(call)
    }
    fn grpc_send(&mut self, token: u32, message: &[u8], end_stream: bool) {
        (**self).grpc_send(token, message, end_stream);
    }
    fn grpc_end(&mut self, token: u32, how: GrpcEnd) {
        (**self).grpc_end(token, how);
    }
}

/// Leaves every callout pending (the test answers them).
#[derive(Debug, Default, Clone, Copy)]
pub struct ManualCallouts;

impl CalloutHandler for ManualCallouts {
    fn http_call(&mut self, _call: &HttpCall) -> CalloutReply {
        CalloutReply::Pending
    }
}

/// A closure answering HTTP callouts (Redis calls stay pending).
pub struct FnCallouts<F>(pub F);

impl<F: FnMut(&HttpCall) -> CalloutReply + Send> CalloutHandler for FnCallouts<F> {
    fn http_call(&mut self, call: &HttpCall) -> CalloutReply {
        (self.0)(call)
    }
}

/// Encodes a Redis command as a RESP2 array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Decodes a RESP2 array of bulk strings (a command as clients send it).
pub fn decode_command(bytes: &[u8]) -> Option<Vec<String>> {
    let mut lines = Lines { bytes, at: 0 };
    let count: usize = lines.next()?.strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let len: usize = lines.next()?.strip_prefix('$')?.parse().ok()?;
        let data = bytes.get(lines.at..lines.at.checked_add(len)?)?;
        args.push(String::from_utf8_lossy(data).into_owned());
        lines.at += len + 2;
    }
    Some(args)
}

struct Lines<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Lines<'_> {
    fn next(&mut self) -> Option<String> {
        let rest = self.bytes.get(self.at..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        self.at += end + 2;
        Some(String::from_utf8_lossy(rest.get(..end)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_commands_round_trip() {
        let encoded = encode_command(&["SET", "k", "a b"]);
        assert_eq!(encoded, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na b\r\n");
        assert_eq!(decode_command(&encoded), Some(vec!["SET".into(), "k".into(), "a b".into()]));
        assert_eq!(decode_command(b"*2\r\n$3\r\nGET\r\n"), None);
    }
}
