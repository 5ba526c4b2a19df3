//! The gateway's outbound side: the upstream (`--upstream`) and the clusters plugins call out
//! to (`--cluster`). Every exchange runs on the tokio runtime; the VMs' worker awaits it, so a
//! slow upstream or callout never holds up other requests.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;
use wasmplug_host::{
    Answer, Answers, CalloutHandler, CalloutReply, GrpcCall, GrpcEnd, GrpcReply, HttpCall, HttpResponse,
    UpstreamRequest,
};

use super::MAX_BODY;
use super::chain::Origin;
use super::grpc::GrpcCallouts;

/// How long the upstream has to answer (Envoy's default route timeout is 15 s).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// `http://host:port[/prefix]`.
#[derive(Debug, Clone)]
pub struct Target {
    authority: String,
    prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let rest =
            url.strip_prefix("http://").with_context(|| format!("{url}: only http:// upstreams are supported"))?;
        let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            bail!("{url}: no host");
        }
        let prefix = prefix.trim_end_matches('/');
        Ok(Target {
            authority: authority.to_string(),
            prefix: if prefix.is_empty() { String::new() } else { format!("/{prefix}") },
        })
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    fn uri(&self, path: &str) -> String {
        format!("http://{}{}{}", self.authority, self.prefix, path)
    }

    /// The Istio/Higress cluster name of this target (`outbound|PORT||HOST`).
    pub fn cluster_name(&self) -> String {
        let (host, port) = self.authority.rsplit_once(':').unwrap_or((&self.authority, "80"));
        format!("outbound|{port}||{host}")
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The HTTP client and the runtime every outbound exchange runs on.
#[derive(Clone)]
pub struct Network {
    client: HttpClient,
    runtime: tokio::runtime::Handle,
}

impl Network {
    /// On the current runtime.
    pub fn new() -> Network {
        Network {
            client: Client::builder(TokioExecutor::new()).build_http(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// A request to send, to be spawned on `runtime`; the caller bounds how long it may take.
    fn request(
        &self,
        uri: String,
        method: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> impl Future<Output = Result<HttpResponse>> + Send + 'static {
        let request = build_request(&uri, method, headers, body);
        let client = self.client.clone();
        async move { exchange(client, request?).await }
    }
}

fn build_request(
    uri: &str,
    method: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<hyper::Request<Full<Bytes>>> {
    let mut builder = hyper::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        if k.starts_with(':') || matches!(k.as_str(), "content-length" | "transfer-encoding" | "connection") {
            continue;
        }
        builder = builder.header(k.as_str(), v.as_str());
    }
    Ok(builder.body(Full::new(Bytes::from(body)))?)
}

async fn exchange(client: HttpClient, request: hyper::Request<Full<Bytes>>) -> Result<HttpResponse> {
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the body: {e}"))?
        .to_bytes();
    let mut out = HttpResponse::new(status, body.to_vec());
    out.headers = headers;
    Ok(out)
}

/// The `--upstream`: where requests go after the chain.
pub struct Upstream {
    pub target: Target,
    pub network: Network,
}

impl Origin for Upstream {
    fn send(&self, request: &UpstreamRequest) -> impl Future<Output = HttpResponse> {
        let uri = self.target.uri(&request.path);
        let sent = self.network.request(uri, &request.method, &request.headers, request.body.clone());
        let task = self
            .network
            .runtime
            .spawn(async move { tokio::time::timeout(UPSTREAM_TIMEOUT, sent).await.context("timed out")? });
        async move {
            let response = task.await.map_err(anyhow::Error::from).and_then(|r| r);
            response.unwrap_or_else(|e| {
                HttpResponse::new(503, format!("upstream connect error: {e:#}\n")).header("content-type", "text/plain")
            })
        }
    }
}

/// What one VM's callouts report (HTTP answers, gRPC events in order), posted as they come
/// and taken by the stream that waits for them.
#[derive(Clone, Default)]
pub struct AnswerBoard(Arc<Board>);

#[derive(Default)]
struct Board {
    /// By token: when the first answer not taken yet came, and the answers.
    answers: Mutex<HashMap<u32, (Instant, VecDeque<Answer>)>>,
    posted: Notify,
}

/// Answers nobody took for this long (their request ended first) are dropped.
const UNCLAIMED: Duration = Duration::from_secs(60);

impl AnswerBoard {
    pub fn post(&self, token: u32, answer: Answer) {
        let mut answers = self.0.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() >= 256 {
            answers.retain(|_, (since, _)| since.elapsed() < UNCLAIMED);
        }
        answers.entry(token).or_insert_with(|| (Instant::now(), VecDeque::new())).1.push_back(answer);
        drop(answers);
        self.0.posted.notify_waiters();
    }

    /// Drops what is left for `tokens` (of a request that ended: nobody will take it).
    pub fn forget(&self, tokens: impl IntoIterator<Item = u32>) {
        let mut answers = self.0.answers.lock().unwrap_or_else(PoisonError::into_inner);
        for token in tokens {
            answers.remove(&token);
        }
    }

    fn take(&self, tokens: &[u32]) -> Option<(u32, Answer)> {
        let mut answers = self.0.answers.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.iter().find_map(|token| {
            let (_, queue) = answers.get_mut(token)?;
            let answer = queue.pop_front()?;
            if queue.is_empty() {
                answers.remove(token);
            }
            Some((*token, answer))
        })
    }
}

impl Answers for AnswerBoard {
    async fn answer(&self, tokens: &[u32]) -> Option<(u32, Answer)> {
        loop {
            // Registered before looking, so a post in between is not missed.
            let posted = self.0.posted.notified();
            if let Some(answer) = self.take(tokens) {
                return Some(answer);
            }
            posted.await;
        }
    }
}

/// Callouts to the clusters of `--cluster`, run with the plugin's own timeout; the answer (or
/// the failure) reaches the plugin through `proxy_on_http_call_response` (gRPC: its
/// `proxy_on_grpc_*` callbacks), as in Envoy.
pub struct ClusterCallouts {
    pub clusters: Arc<HashMap<String, Target>>,
    pub network: Network,
    pub answers: AnswerBoard,
    pub grpc: GrpcCallouts,
}

impl ClusterCallouts {
    pub fn new(clusters: Arc<HashMap<String, Target>>, network: Network, answers: AnswerBoard) -> ClusterCallouts {
        let grpc = GrpcCallouts::new(network.runtime.clone());
        ClusterCallouts { clusters, network, answers, grpc }
    }
}

impl CalloutHandler for ClusterCallouts {
    fn http_call(&mut self, call: &HttpCall) -> CalloutReply {
        let Some(target) = self.clusters.get(&call.cluster) else {
            return CalloutReply::UnknownCluster;
        };
        let mut headers: Vec<(String, String)> = vec![("host".into(), call.authority().to_string())];
        headers.extend(call.headers.iter().filter(|(k, _)| !k.starts_with(':') && k != "host").cloned());
        let sent = self.network.request(target.uri(call.path()), call.method(), &headers, call.body.clone());
        let (answers, token, timeout_ms) = (self.answers.clone(), call.token, call.timeout_ms);
        self.network.runtime.spawn(async move {
            // Envoy arms no timer for a zero timeout; a timeout and a refused connection are
            // answered as Envoy's router answers them.
            let sent = match timeout_ms {
                0 => Ok(sent.await),
                ms => tokio::time::timeout(Duration::from_millis(u64::from(ms)), sent).await,
            };
            let reply = match sent {
                Err(_elapsed) => CalloutReply::timed_out(),
                Ok(Ok(response)) => CalloutReply::Response(response),
                Ok(Err(e)) if connect_error(&e) => CalloutReply::connect_failed(),
                Ok(Err(_)) => CalloutReply::Failure,
            };
            answers.post(token, Answer::Http(reply));
        });
        CalloutReply::Pending
    }

    fn grpc_call(&mut self, call: &GrpcCall) -> GrpcReply {
        let Some(target) = self.clusters.get(&call.cluster) else {
            return GrpcReply::UnknownCluster;
        };
        self.grpc.open(call, target.authority(), self.answers.clone());
        GrpcReply::Pending
    }

    fn grpc_send(&mut self, token: u32, message: &[u8], end_stream: bool) {
        self.grpc.send(token, message, end_stream);
    }

    fn grpc_end(&mut self, token: u32, how: GrpcEnd) {
        self.grpc.end(token, how);
    }
}

/// Whether the exchange failed because no connection could be made.
fn connect_error(error: &anyhow::Error) -> bool {
    error.downcast_ref::<hyper_util::client::legacy::Error>().is_some_and(|e| e.is_connect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (t.uri("/a?b=1"), t.cluster_name()),
            ("http://127.0.0.1:8080/a?b=1".into(), "outbound|8080||127.0.0.1".into())
        );
        let t = Target::parse("http://svc/base/").unwrap();
        assert_eq!((t.uri("/a"), t.cluster_name()), ("http://svc/base/a".into(), "outbound|80||svc".into()));
        assert!(Target::parse("https://x").is_err());
    }
}
