//! Whole requests through a plugin, the way Envoy 1.40 drives its HTTP filter: the
//! high-level API of the test harness ([`Vm::run`]) and of a local gateway ([`run_shared`]).
//!
//! What is emulated (see README.md for the differences that remain):
//! - the request headers are passed on (snapshot for the upstream) when the headers phase
//!   continues; a `Pause` there holds the whole request, body included, until the plugin
//!   resumes (`allow_on_headers_stop_iteration: false`, Envoy's default);
//! - a body `Pause` buffers (`StopIterationAndBuffer`): the plugin sees the whole held body in
//!   the next call; at end of stream a `Pause` holds the stream until the plugin resumes;
//! - callouts are answered by the VM's [`crate::CalloutHandler`] at once, or later through
//!   [`Answers`] while the stream waits; a call nobody will answer times out as in Envoy
//!   (a 504 answer for HTTP, status 13 for gRPC);
//! - a local reply sent while the request is processed passes the plugin's response phases
//!   (as in Envoy); one sent while the response is processed replaces it directly;
//! - local reply headers: the plugin's headers replace same-named ones, `content-type:
//!   text/plain` is added to a non-empty body without one, an empty body drops
//!   `content-type`; `content-length` is set from the body.

use std::borrow::BorrowMut;
use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::abi::{Action, Pairs};
use crate::callout::HttpResponse;
use crate::error::{HostError, Result};
use crate::exchange::{
    Answer, Answers, AsyncUpstream, Exchange, Immediate, NoAnswers, Request, Upstream, UpstreamRequest,
};
use crate::state::LocalResponse;
use crate::stream::{Detached, Step, Stream};
use crate::vm::Vm;

enum Settled {
    Resumed,
    Local,
    Hung,
}

impl Vm {
    /// Runs `request` through the plugin, forwarding it to `upstream` when the plugin lets
    /// it through, and the response back through the plugin. Callouts the VM's
    /// [`crate::CalloutHandler`] leaves pending fail when nothing else can happen.
    pub fn run(&mut self, request: &Request, upstream: &mut dyn Upstream) -> Result<Exchange> {
        let plugin = self.plugin.name().to_string();
        let vm = RefCell::new(self);
        let mut upstream = Immediate(upstream);
        let exchange = run_shared(&vm, request, &mut upstream, &NoAnswers);
        // Nothing in it waits: the immediate upstream and `NoAnswers` are ready when polled.
        match pin!(exchange).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(HostError::Usage { plugin, reason: "the request did not complete at once".into() }),
        }
    }
}

/// Runs `request` through the VM in `vm` as [`Vm::run`] does, but waits for the upstream and
/// for callout answers (from `answers`) asynchronously, so that several requests can go
/// through one VM at once, as on an Envoy worker. The VM is borrowed only while the plugin
/// runs; run the futures of one VM on one thread (e.g. a `LocalSet`).
pub async fn run_shared<V: BorrowMut<Vm>>(
    vm: &RefCell<V>,
    request: &Request,
    upstream: &mut impl AsyncUpstream,
    answers: &impl Answers,
) -> Result<Exchange> {
    let mut properties = Vec::new();
    if let Some(route) = &request.route_name {
        properties.push(("xds.route_name".to_string(), route.clone().into_bytes()));
        properties.push(("route_name".to_string(), route.clone().into_bytes()));
    }
    if let Some(cluster) = &request.cluster_name {
        properties.push(("xds.cluster_name".to_string(), cluster.clone().into_bytes()));
        properties.push(("cluster_name".to_string(), cluster.clone().into_bytes()));
    }
    let stream = {
        let mut guard = vm.borrow_mut();
        let vm: &mut Vm = (*guard).borrow_mut();
        vm.stream_with(properties)?.detach()
    };
    let mut driver = Driver { vm, stream, ended: false };
    let mut exchange = Exchange::default();
    let outcome = driver.drive(request, upstream, answers, &mut exchange).await;
    exchange.hung = matches!(outcome, Settled::Hung);
    if matches!(outcome, Settled::Local) {
        driver.local_reply(&mut exchange, answers).await;
    }
    driver.with(|stream| {
        exchange.local_response = stream.local_response();
        exchange.http_calls = stream.http_calls();
        exchange.redis_calls = stream.redis_calls();
        exchange.grpc_calls = stream.grpc_calls();
        exchange.fault = stream.fault().cloned();
        exchange.custom_log = stream.property("custom_log").map(|v| String::from_utf8_lossy(&v).into_owned());
    });
    let id = driver.stream_id();
    driver.finish();
    let guard = vm.borrow();
    let vm: &Vm = (*guard).borrow();
    exchange.logs = vm.logs().iter().filter(|l| l.context == id).cloned().collect();
    Ok(exchange)
}

/// One stream of a shared VM, attached to it only inside [`Driver::with`].
struct Driver<'v, V: BorrowMut<Vm>> {
    vm: &'v RefCell<V>,
    stream: Detached,
    ended: bool,
}

/// A request dropped half-way (its client went away) still ends its stream in the plugin.
impl<V: BorrowMut<Vm>> Drop for Driver<'_, V> {
    fn drop(&mut self) {
        if !self.ended
            && let Ok(mut guard) = self.vm.try_borrow_mut()
        {
            Stream::attach((*guard).borrow_mut(), std::mem::take(&mut self.stream)).finish();
        }
    }
}

fn strs(pairs: &Pairs) -> Vec<(&str, &str)> {
    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

impl<V: BorrowMut<Vm>> Driver<'_, V> {
    /// Runs `f` on the stream, the VM borrowed for that time only.
    fn with<R>(&mut self, f: impl FnOnce(&mut Stream<'_>) -> R) -> R {
        let mut guard = self.vm.borrow_mut();
        let mut stream = Stream::attach((*guard).borrow_mut(), std::mem::take(&mut self.stream));
        let result = f(&mut stream);
        self.stream = stream.detach();
        result
    }

    fn stream_id(&mut self) -> u32 {
        self.with(|s| s.id())
    }

    fn finish(&mut self) {
        self.with(|s| s.end());
        self.ended = true;
    }

    fn local_sent(&mut self) -> bool {
        self.with(|s| s.local_response().is_some())
    }

    /// Waits until the plugin resumes the request (or response), answers locally, or nothing
    /// can resume it any more.
    async fn settle(&mut self, request: bool, answers: &impl Answers) -> Settled {
        loop {
            let next = self.with(|s| {
                if s.local_response().is_some() {
                    return Err(Settled::Local);
                }
                let resumed = if request { s.take_request_resumed() } else { s.take_response_resumed() };
                if resumed {
                    return Err(Settled::Resumed);
                }
                Ok(s.step())
            });
            match next {
                Err(settled) => return settled,
                Ok(Step::Delivered) => {}
                Ok(Step::Stuck) => return Settled::Hung,
                Ok(Step::Await(tokens)) => match answers.answer(&tokens).await {
                    Some((token, Answer::Http(reply))) => self.with(|s| s.answer_http_call(token, reply)),
                    Some((token, Answer::Grpc(event))) => self.with(|s| s.answer_grpc(token, event)),
                    None => {
                        let Some(&oldest) = tokens.first() else { return Settled::Hung };
                        self.with(|s| s.time_out(oldest));
                    }
                },
            }
        }
    }

    /// Feeds a body in chunks; `Some(outcome)` when the stream stopped (local reply or hang).
    async fn feed_body(
        &mut self,
        body: &[u8],
        chunk: Option<usize>,
        has_trailers: bool,
        request: bool,
        answers: &impl Answers,
    ) -> Option<Settled> {
        let size = chunk.unwrap_or(body.len()).max(1);
        let chunks: Vec<&[u8]> = body.chunks(size).collect();
        let last = chunks.len().saturating_sub(1);
        for (i, piece) in chunks.into_iter().enumerate() {
            let eos = i == last && !has_trailers;
            let action = self.with(|s| if request { s.request_body(piece, eos) } else { s.response_body(piece, eos) });
            if self.local_sent() {
                return Some(Settled::Local);
            }
            if action == Action::Pause && eos {
                match self.settle(request, answers).await {
                    Settled::Resumed => self.with(|s| {
                        if request {
                            s.flush_request_body();
                        } else {
                            s.flush_response_body();
                        }
                    }),
                    other => return Some(other),
                }
            }
        }
        None
    }

    /// The request and response paths; `Resumed` means the response reached the client.
    async fn drive(
        &mut self,
        request: &Request,
        upstream: &mut impl AsyncUpstream,
        answers: &impl Answers,
        exchange: &mut Exchange,
    ) -> Settled {
        let headers = request.filter_headers(self.stream_id());
        let has_body = !request.body.is_empty();
        let has_trailers = !request.trailers.is_empty();
        let action = self.with(|s| s.request_headers(&strs(&headers), !has_body && !has_trailers));
        if self.local_sent() {
            return Settled::Local;
        }
        if action == Action::Pause {
            match self.settle(true, answers).await {
                Settled::Resumed => {}
                other => return other,
            }
        }
        let upstream_headers = self.with(|s| s.request_header_map());
        if has_body
            && let Some(stopped) = self.feed_body(&request.body, request.chunk_size, has_trailers, true, answers).await
        {
            return stopped;
        }
        if has_trailers {
            let action = self.with(|s| s.request_trailers(&strs(&request.trailers)));
            if self.local_sent() {
                return Settled::Local;
            }
            if action == Action::Pause {
                match self.settle(true, answers).await {
                    Settled::Resumed => self.with(|s| s.flush_request_body()),
                    other => return other,
                }
            }
        }
        let forwarded =
            self.with(|s| to_upstream(&upstream_headers, s.forwarded_request_body(), s.request_trailers_map()));
        let response = upstream.handle(&forwarded).await;
        exchange.upstream_request = Some(forwarded);

        let mut headers = vec![(":status".to_string(), response.status.to_string())];
        headers.extend(response.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())));
        let has_body = !response.body.is_empty();
        let has_trailers = !response.trailers.is_empty();
        let action = self.with(|s| s.response_headers(&strs(&headers), !has_body && !has_trailers));
        if self.local_sent() {
            return Settled::Local;
        }
        if action == Action::Pause {
            match self.settle(false, answers).await {
                Settled::Resumed => {}
                other => return other,
            }
        }
        let downstream_headers = self.with(|s| s.response_header_map());
        if has_body && let Some(stopped) = self.feed_body(&response.body, None, has_trailers, false, answers).await {
            return stopped;
        }
        if has_trailers {
            let action = self.with(|s| s.response_trailers(&strs(&response.trailers)));
            if action == Action::Pause {
                match self.settle(false, answers).await {
                    Settled::Resumed => self.with(|s| s.flush_response_body()),
                    other => return other,
                }
            }
        }
        self.with(|s| {
            exchange.response = to_downstream(&downstream_headers, s.forwarded_response_body().to_vec());
            exchange.response.trailers = s.response_trailers_map();
        });
        Settled::Resumed
    }

    /// Sends the local reply downstream: through the plugin's response phases when it was sent
    /// while the request was processed, directly otherwise (or when the VM failed).
    async fn local_reply(&mut self, exchange: &mut Exchange, answers: &impl Answers) {
        let Some(local) = self.with(|s| s.local_response()) else { return };
        let headers = local_reply_headers(&local);
        let (during_request, failed) = self.with(|s| (s.response_header_map().is_empty(), s.fault().is_some()));
        if during_request {
            exchange.upstream_request = None;
        }
        if !during_request || failed {
            exchange.response = to_downstream(&headers, local.body);
            return;
        }
        let action = self.with(|s| s.response_headers(&strs(&headers), local.body.is_empty()));
        if action == Action::Pause && !matches!(self.settle(false, answers).await, Settled::Resumed) {
            exchange.hung = self.with(|s| s.local_response()) == Some(local.clone());
        }
        let downstream_headers = self.with(|s| s.response_header_map());
        if !local.body.is_empty() {
            let action = self.with(|s| s.response_body(&local.body, true));
            if action == Action::Pause && matches!(self.settle(false, answers).await, Settled::Resumed) {
                self.with(|s| s.flush_response_body());
            }
        }
        exchange.response = self.with(|s| to_downstream(&downstream_headers, s.forwarded_response_body().to_vec()));
    }
}

fn to_upstream(headers: &Pairs, body: &[u8], trailers: Pairs) -> UpstreamRequest {
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut out = vec![("host".to_string(), get(":authority"))];
    out.extend(headers.iter().filter(|(k, _)| !k.starts_with(':')).cloned());
    UpstreamRequest { method: get(":method"), path: get(":path"), headers: out, body: body.to_vec(), trailers }
}

fn to_downstream(headers: &Pairs, body: Vec<u8>) -> HttpResponse {
    let status = headers.iter().find(|(k, _)| k == ":status").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let headers = headers.iter().filter(|(k, _)| !k.starts_with(':')).cloned().collect();
    HttpResponse { status, headers, body, trailers: Vec::new() }
}

/// Envoy's local reply headers (`Utility::sendLocalReply`).
fn local_reply_headers(local: &LocalResponse) -> Pairs {
    let mut headers: Pairs = vec![(":status".into(), local.status.to_string())];
    for (k, v) in &local.headers {
        headers.retain(|(name, _)| name != k);
        headers.push((k.clone(), v.clone()));
    }
    if local.body.is_empty() {
        headers.retain(|(k, _)| k != "content-type" && k != "content-length");
    } else {
        headers.retain(|(k, _)| k != "content-length");
        headers.push(("content-length".into(), local.body.len().to_string()));
        if !headers.iter().any(|(k, _)| k == "content-type") {
            headers.push(("content-type".into(), "text/plain".into()));
        }
    }
    headers
}
