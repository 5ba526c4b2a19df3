//! One HTTP stream driven phase by phase: the low-level API of the test harness.
//!
//! ```no_run
//! # use wasmplug_host::{Plugin, VmOptions, Action};
//! let plugin = Plugin::load("hello-world", "target/wasm32-wasip1/wasm/hello_world.wasm").unwrap();
//! let mut vm = plugin.start(VmOptions::default().configuration("{}")).unwrap();
//! let mut stream = vm.stream().unwrap();
//! let action = stream.request_headers(&[(":method", "GET"), (":path", "/"), (":authority", "a")], true);
//! assert_eq!(action, Action::Continue);
//! assert_eq!(stream.request_header("hello").as_deref(), Some("world"));
//! ```

use crate::abi::{Action, Pairs, map};
use crate::callout::{CalloutReply, HttpCall, RedisCall, RedisReply};
use crate::error::{Callback, Fault, FaultKind, Result};
use crate::grpc::{GrpcCall, GrpcEvent};
use crate::state::{Delivery, LocalResponse, StreamState};
use crate::vm::{FailStrategy, ROOT_ID, Vm};

/// An HTTP stream (a proxy-wasm HTTP context) of a [`Vm`]. Dropping it ends the stream
/// (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`).
pub struct Stream<'a> {
    pub(crate) vm: &'a mut Vm,
    id: u32,
    fault: Option<Fault>,
    forwarded_request: Vec<u8>,
    forwarded_response: Vec<u8>,
    finished: bool,
}

/// A stream's own state apart from its VM, so that several streams of one VM can be driven at
/// once (each attaches to the VM only while the plugin runs).
#[derive(Default)]
pub(crate) struct Detached {
    id: u32,
    fault: Option<Fault>,
    forwarded_request: Vec<u8>,
    forwarded_response: Vec<u8>,
}

/// What a paused stream can do next ([`Stream::step`]).
pub(crate) enum Step {
    /// Something was delivered to the plugin: look again.
    Delivered,
    /// These HTTP calls and gRPC calls or streams (tokens) are open: wait for one's answer.
    Await(Vec<u32>),
    /// Nothing is pending: nothing can resume the stream.
    Stuck,
}

fn lower(pairs: &[(&str, &str)]) -> Pairs {
    pairs.iter().map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_string())).collect()
}

impl Vm {
    /// Opens an HTTP stream.
    pub fn stream(&mut self) -> Result<Stream<'_>> {
        self.stream_with(Vec::new())
    }

    /// Opens an HTTP stream with per-stream properties, e.g. `("xds.route_name", b"r1")`.
    pub fn stream_with(&mut self, properties: Vec<(String, Vec<u8>)>) -> Result<Stream<'_>> {
        self.reload_if_failed()?;
        let id = self.next_context_id();
        let state = StreamState { properties: properties.into_iter().collect(), ..Default::default() };
        self.store.data_mut().streams.insert(id, state);
        let create = self.exports.on_context_create.clone();
        let fault = self.call(Callback::ContextCreate, id, create, (id as i32, ROOT_ID as i32)).err();
        Ok(Stream {
            vm: self,
            id,
            fault,
            forwarded_request: Vec::new(),
            forwarded_response: Vec::new(),
            finished: false,
        })
    }
}

impl<'a> Stream<'a> {
    pub(crate) fn attach(vm: &'a mut Vm, detached: Detached) -> Stream<'a> {
        let Detached { id, fault, forwarded_request, forwarded_response } = detached;
        Stream { vm, id, fault, forwarded_request, forwarded_response, finished: false }
    }

    /// Lets go of the VM without ending the stream.
    pub(crate) fn detach(mut self) -> Detached {
        self.finished = true;
        Detached {
            id: self.id,
            fault: self.fault.take(),
            forwarded_request: std::mem::take(&mut self.forwarded_request),
            forwarded_response: std::mem::take(&mut self.forwarded_response),
        }
    }
}

impl Stream<'_> {
    /// The context id of this stream.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn state(&self) -> Option<&StreamState> {
        self.vm.store.data().streams.get(&self.id)
    }

    fn state_mut(&mut self) -> Option<&mut StreamState> {
        self.vm.store.data_mut().streams.get_mut(&self.id)
    }

    /// Calls a phase; on a fault applies the fail strategy.
    fn phase(
        &mut self,
        phase: Callback,
        func: Option<wasmtime::TypedFunc<(i32, i32, i32), i32>>,
        a: i32,
        b: i32,
    ) -> Action {
        if let Some(fault) = self.fault.clone() {
            return self.failed(fault);
        }
        let result = self.vm.call(phase, self.id, func, (self.id as i32, a, b));
        match result {
            Ok(raw) => {
                let action = raw.map_or(Action::Continue, Action::from_raw);
                match self.vm.deliver_all() {
                    Ok(()) => action,
                    Err(fault) => self.failed(fault),
                }
            }
            Err(fault) => self.failed(fault),
        }
    }

    fn phase2(&mut self, phase: Callback, func: Option<wasmtime::TypedFunc<(i32, i32), i32>>, a: i32) -> Action {
        if let Some(fault) = self.fault.clone() {
            return self.failed(fault);
        }
        match self.vm.call(phase, self.id, func, (self.id as i32, a)) {
            Ok(raw) => {
                let action = raw.map_or(Action::Continue, Action::from_raw);
                match self.vm.deliver_all() {
                    Ok(()) => action,
                    Err(fault) => self.failed(fault),
                }
            }
            Err(fault) => self.failed(fault),
        }
    }

    /// After a headers or trailers phase: a `Continue` releases the map (see [`StreamState::released`]).
    fn release_if_continued(&mut self, map_type: i32, action: Action) {
        if action == Action::Continue
            && let Some(state) = self.state_mut()
            && let Some(released) = usize::try_from(map_type).ok().and_then(|i| state.released.get_mut(i))
        {
            *released = true;
        }
    }

    /// Applies the fail strategy as Envoy 1.40 does: the request during which the VM fails
    /// gets Envoy's `wasm_fail_stream` local reply (503, empty body) whatever the strategy;
    /// once the VM has failed, FAIL_OPEN lets later requests through without the plugin and
    /// FAIL_CLOSE answers them 503.
    fn failed(&mut self, fault: Fault) -> Action {
        let earlier = fault.kind == FaultKind::VmFailed;
        self.fault.get_or_insert(fault);
        match self.vm.fail_strategy {
            FailStrategy::FailOpen if earlier => {
                if let Some(state) = self.state_mut() {
                    state.continue_request = true;
                    state.continue_response = true;
                }
                Action::Continue
            }
            _ => {
                if let Some(state) = self.state_mut()
                    && state.local_response.is_none()
                {
                    state.local_response = Some(LocalResponse {
                        status: 503,
                        details: "wasm_fail_stream".into(),
                        headers: Vec::new(),
                        body: Vec::new(),
                        grpc_status: 14,
                    });
                }
                Action::Pause
            }
        }
    }

    fn set_request_properties(&mut self) {
        let Some(state) = self.state_mut() else { return };
        let get = |name: &str| state.request_headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let path = get(":path").unwrap_or_default();
        let url_path = path.split('?').next().unwrap_or_default().to_string();
        let mut props = vec![
            ("request.path", path.clone()),
            ("request.url_path", url_path),
            ("request.host", get(":authority").unwrap_or_default()),
            ("request.method", get(":method").unwrap_or_default()),
            ("request.scheme", get(":scheme").unwrap_or_else(|| "http".into())),
            ("request.protocol", "HTTP/1.1".into()),
        ];
        if let Some(id) = get("x-request-id") {
            props.push(("request.id", id));
        }
        for (key, value) in props {
            state.properties.entry(key.to_string()).or_insert_with(|| value.into_bytes());
        }
    }

    /// `proxy_on_request_headers` with these headers (pseudo-headers included).
    pub fn request_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Action {
        let pairs = lower(headers);
        self.set_request_headers(pairs);
        let count = self.state().map_or(0, |s| s.request_headers.len()) as i32;
        let func = self.vm.exports.on_request_headers.clone();
        let action = self.phase(Callback::RequestHeaders, func, count, i32::from(end_of_stream));
        self.release_if_continued(map::REQUEST_HEADERS, action);
        action
    }

    pub(crate) fn set_request_headers(&mut self, pairs: Pairs) {
        if let Some(state) = self.state_mut() {
            state.request_headers = pairs;
        }
        self.set_request_properties();
    }

    /// Adds `chunk` to the request body the host holds and calls `proxy_on_request_body`
    /// with the whole held size. On `Continue` the held bytes go on (see
    /// [`Stream::forwarded_request_body`]); on `Pause` they stay buffered, as in Envoy.
    pub fn request_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Action {
        let size = match self.state_mut() {
            Some(state) => {
                state.request_body.extend_from_slice(chunk);
                state.request_body.len()
            }
            None => 0,
        };
        let func = self.vm.exports.on_request_body.clone();
        let action = self.phase(Callback::RequestBody, func, size as i32, i32::from(end_of_stream));
        if action == Action::Continue {
            self.flush_request_body();
        }
        action
    }

    /// `proxy_on_request_trailers`.
    pub fn request_trailers(&mut self, trailers: &[(&str, &str)]) -> Action {
        let pairs = lower(trailers);
        let count = pairs.len() as i32;
        if let Some(state) = self.state_mut() {
            state.request_trailers = pairs;
        }
        let func = self.vm.exports.on_request_trailers.clone();
        let action = self.phase2(Callback::RequestTrailers, func, count);
        self.release_if_continued(map::REQUEST_TRAILERS, action);
        action
    }

    /// `proxy_on_response_headers` (include `:status`).
    pub fn response_headers(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> Action {
        self.set_response_headers(lower(headers));
        let count = self.state().map_or(0, |s| s.response_headers.len()) as i32;
        let func = self.vm.exports.on_response_headers.clone();
        let action = self.phase(Callback::ResponseHeaders, func, count, i32::from(end_of_stream));
        self.release_if_continued(map::RESPONSE_HEADERS, action);
        action
    }

    pub(crate) fn set_response_headers(&mut self, pairs: Pairs) {
        let Some(state) = self.state_mut() else { return };
        if let Some(code) = pairs.iter().find(|(k, _)| k == ":status").and_then(|(_, v)| v.parse::<i64>().ok()) {
            state.properties.insert("response.code".into(), code.to_le_bytes().to_vec());
        }
        state.response_headers = pairs;
    }

    /// As [`Stream::request_body`], for the response.
    pub fn response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> Action {
        let size = match self.state_mut() {
            Some(state) => {
                state.response_body.extend_from_slice(chunk);
                state.response_body.len()
            }
            None => 0,
        };
        let func = self.vm.exports.on_response_body.clone();
        let action = self.phase(Callback::ResponseBody, func, size as i32, i32::from(end_of_stream));
        if action == Action::Continue {
            self.flush_response_body();
        }
        action
    }

    /// `proxy_on_response_trailers`.
    pub fn response_trailers(&mut self, trailers: &[(&str, &str)]) -> Action {
        let pairs = lower(trailers);
        let count = pairs.len() as i32;
        if let Some(state) = self.state_mut() {
            state.response_trailers = pairs;
        }
        let func = self.vm.exports.on_response_trailers.clone();
        let action = self.phase2(Callback::ResponseTrailers, func, count);
        self.release_if_continued(map::RESPONSE_TRAILERS, action);
        action
    }

    /// Moves the held request body on (what a resume does).
    pub fn flush_request_body(&mut self) {
        let held = self.state_mut().map(|s| std::mem::take(&mut s.request_body)).unwrap_or_default();
        self.forwarded_request.extend_from_slice(&held);
    }

    pub fn flush_response_body(&mut self) {
        let held = self.state_mut().map(|s| std::mem::take(&mut s.response_body)).unwrap_or_default();
        self.forwarded_response.extend_from_slice(&held);
    }

    /// The request headers as they are now.
    pub fn request_header_map(&self) -> Pairs {
        self.state().map(|s| s.request_headers.clone()).unwrap_or_default()
    }

    /// The first value of a request header.
    pub fn request_header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.state()?.request_headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    }

    pub fn response_header_map(&self) -> Pairs {
        self.state().map(|s| s.response_headers.clone()).unwrap_or_default()
    }

    pub fn response_header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.state()?.response_headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    }

    /// The request body the host holds (buffered, not yet passed on).
    pub fn held_request_body(&self) -> Vec<u8> {
        self.state().map(|s| s.request_body.clone()).unwrap_or_default()
    }

    pub fn held_response_body(&self) -> Vec<u8> {
        self.state().map(|s| s.response_body.clone()).unwrap_or_default()
    }

    /// The request body passed on so far (what the upstream receives).
    pub fn forwarded_request_body(&self) -> &[u8] {
        &self.forwarded_request
    }

    /// The response body passed on so far (what the client receives).
    pub fn forwarded_response_body(&self) -> &[u8] {
        &self.forwarded_response
    }

    pub fn request_trailers_map(&self) -> Pairs {
        self.state().map(|s| s.request_trailers.clone()).unwrap_or_default()
    }

    pub fn response_trailers_map(&self) -> Pairs {
        self.state().map(|s| s.response_trailers.clone()).unwrap_or_default()
    }

    /// The response the plugin (or the fail strategy) sent itself.
    pub fn local_response(&self) -> Option<LocalResponse> {
        self.state()?.local_response.clone()
    }

    /// A property this stream sees or the plugin set, e.g. `custom_log` (segments joined by `.`).
    pub fn property(&self, path: &str) -> Option<Vec<u8>> {
        self.state()?.properties.get(path).cloned()
    }

    /// Whether the plugin resumed the request (`proxy_continue_stream`) since the last call;
    /// clears the flag.
    pub fn take_request_resumed(&mut self) -> bool {
        self.state_mut().is_some_and(|s| std::mem::take(&mut s.continue_request))
    }

    pub fn take_response_resumed(&mut self) -> bool {
        self.state_mut().is_some_and(|s| std::mem::take(&mut s.continue_response))
    }

    /// Whether the plugin closed the stream (`proxy_close_stream`).
    pub fn closed(&self) -> bool {
        self.state().is_some_and(|s| s.closed)
    }

    /// The fault this stream met (the fail strategy was applied).
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    /// HTTP calls this stream dispatched.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        let calls = &self.vm.store.data().http_calls;
        calls.iter().filter(|r| r.call.context_id == self.id).map(|r| r.call.clone()).collect()
    }

    /// HTTP calls of this stream not answered yet.
    pub fn pending_http_calls(&self) -> Vec<HttpCall> {
        let calls = &self.vm.store.data().http_calls;
        calls.iter().filter(|r| r.call.context_id == self.id && !r.answered).map(|r| r.call.clone()).collect()
    }

    /// gRPC calls and streams this stream opened.
    pub fn grpc_calls(&self) -> Vec<GrpcCall> {
        let calls = &self.vm.store.data().grpc_calls;
        calls.iter().filter(|r| r.call.context_id == self.id).map(|r| r.call.clone()).collect()
    }

    /// gRPC calls and streams of this stream not closed yet.
    pub fn pending_grpc_calls(&self) -> Vec<GrpcCall> {
        let calls = &self.vm.store.data().grpc_calls;
        calls.iter().filter(|r| r.call.context_id == self.id && !r.answered).map(|r| r.call.clone()).collect()
    }

    pub fn redis_calls(&self) -> Vec<RedisCall> {
        let calls = &self.vm.store.data().redis_calls;
        calls.iter().filter(|r| r.call.context_id == self.id).map(|r| r.call.clone()).collect()
    }

    pub fn pending_redis_calls(&self) -> Vec<RedisCall> {
        let calls = &self.vm.store.data().redis_calls;
        calls.iter().filter(|r| r.call.context_id == self.id && !r.answered).map(|r| r.call.clone()).collect()
    }

    fn deliver(&mut self, delivery: Delivery) {
        let result = self.vm.deliver(delivery).and_then(|()| self.vm.deliver_all());
        if let Err(fault) = result {
            self.failed(fault);
        }
    }

    /// Answers an HTTP call (`proxy_on_http_call_response` runs now).
    pub fn answer_http_call(&mut self, token: u32, reply: CalloutReply) {
        self.deliver(Delivery::Http { token, reply });
    }

    /// Reports a gRPC event to the plugin (its `proxy_on_grpc_*` callback runs now).
    pub fn answer_grpc(&mut self, token: u32, event: GrpcEvent) {
        self.deliver(Delivery::Grpc { token, event });
    }

    /// Times callout `token` out as Envoy does: an HTTP call gets [`CalloutReply::timed_out`],
    /// a gRPC call or stream closes as [`GrpcEvent::timed_out`].
    pub(crate) fn time_out(&mut self, token: u32) {
        if self.pending_http_calls().iter().any(|c| c.token == token) {
            self.answer_http_call(token, CalloutReply::timed_out());
        } else {
            self.answer_grpc(token, GrpcEvent::timed_out());
        }
    }

    /// Answers a Redis call (`proxy_on_redis_call_response` runs now).
    pub fn answer_redis_call(&mut self, token: u32, reply: RedisReply) {
        self.deliver(Delivery::Redis { token, reply });
    }

    /// Delivers one queued answer, or fails (as a timeout) the oldest unanswered Redis call of
    /// this stream; open HTTP and gRPC calls are left to the caller to wait for.
    pub(crate) fn step(&mut self) -> Step {
        if let Some(delivery) = self.vm.store.data_mut().deliveries.pop_front() {
            self.deliver(delivery);
            return Step::Delivered;
        }
        let mut open: Vec<u32> = self.pending_http_calls().iter().map(|c| c.token).collect();
        open.extend(self.pending_grpc_calls().iter().map(|c| c.token));
        if !open.is_empty() {
            open.sort_unstable();
            return Step::Await(open);
        }
        if let Some(call) = self.pending_redis_calls().first() {
            self.answer_redis_call(call.token, RedisReply::Failure);
            return Step::Delivered;
        }
        Step::Stuck
    }

    pub fn vm(&mut self) -> &mut Vm {
        self.vm
    }

    /// Ends the stream: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    pub fn finish(mut self) {
        self.end();
    }

    pub(crate) fn end(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (id, exports) = (self.id as i32, self.vm.exports.clone());
        if self.vm.failed.is_none() {
            let _ = self.vm.call(Callback::Done, self.id, exports.on_done, id);
            let _ = self.vm.call(Callback::Log, self.id, exports.on_log, id);
            let _ = self.vm.call(Callback::Delete, self.id, exports.on_delete, id);
        }
        self.vm.store.data_mut().streams.remove(&self.id);
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        self.end();
    }
}
