//! `wasmplug run`: a local gateway. HTTP/1.1 on `--listen` (hyper), the plugin chain in the
//! `wasmplug-host` (one VM per plugin, in phase/priority order), proxying to `--upstream`.
//!
//! The VMs live on one worker thread and handle one request at a time (as Envoy with
//! `--concurrency 1`); the server and the upstream client run on the tokio runtime. A plugin
//! whose .wasm or configuration file changes is reloaded (checked before each request and every
//! half second); when the new version does not start, the running one stays.

mod chain;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;
use wasmplug_contract::Phase;
use wasmplug_host::{
    CalloutHandler, CalloutReply, Compilation, CompileCache, HttpCall, HttpResponse, Request, UpstreamRequest,
};

pub use chain::PluginSpec;

/// Largest request or upstream response body held in memory.
const MAX_BODY: usize = 64 << 20;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:10000")]
    pub listen: SocketAddr,
    /// Where requests go after the chain: `http://host:port` (an optional path prefix is kept).
    #[arg(long)]
    pub upstream: String,
    /// A plugin module (.wasm); repeat for a chain.
    #[arg(long = "plugin", value_name = "WASM", required = true)]
    pub plugins: Vec<PathBuf>,
    /// The configuration of the `--plugin` before it, passed to the plugin byte for byte as Envoy
    /// passes `configuration`; a `.yaml`/`.yml` file is converted to JSON first (only because it
    /// is YAML). A plugin without one gets an empty configuration.
    #[arg(long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// For each plugin, the index of its `--config` (from the command line's order).
    #[arg(skip)]
    pub config_of: Option<Vec<Option<usize>>>,
    /// A cluster for plugin callouts: `NAME=http://host:port` (e.g. `outbound|8080||auth.static=http://127.0.0.1:9000`).
    #[arg(long = "cluster", value_name = "NAME=URL")]
    pub clusters: Vec<String>,
    /// Print, per request, which plugins ran, what each changed and why a request was answered locally.
    #[arg(long)]
    pub explain: bool,
    /// Where compiled modules are kept, by module sha256 and engine settings, so a module
    /// compiles once per machine [default: $XDG_CACHE_HOME/wasmplug/compiled, else
    /// ~/.cache/wasmplug/compiled].
    #[arg(long, value_name = "DIR", conflicts_with = "no_compile_cache")]
    pub compile_cache: Option<PathBuf>,
    /// Compile every module at each start instead.
    #[arg(long)]
    pub no_compile_cache: bool,
}

/// `http://host:port[/prefix]`.
#[derive(Debug, Clone)]
struct Target {
    authority: String,
    prefix: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
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

    fn uri(&self, path: &str) -> String {
        format!("http://{}{}{}", self.authority, self.prefix, path)
    }

    /// The Istio/Higress cluster name of this target (`outbound|PORT||HOST`).
    fn cluster_name(&self) -> String {
        let (host, port) = self.authority.rsplit_once(':').unwrap_or((&self.authority, "80"));
        format!("outbound|{port}||{host}")
    }
}

/// Pairs each `--config` with the `--plugin` given before it: for each plugin, the index of its
/// configuration. `None` when a `--config` comes before any `--plugin` or two follow one plugin.
pub fn pair_configs(matches: &clap::ArgMatches) -> Option<Vec<Option<usize>>> {
    let plugins: Vec<usize> = matches.indices_of("plugins").map(Iterator::collect).unwrap_or_default();
    let configs: Vec<usize> = matches.indices_of("configs").map(Iterator::collect).unwrap_or_default();
    let mut config_of = vec![None; plugins.len()];
    for (c, at) in configs.iter().enumerate() {
        let owner = plugins.iter().rposition(|p| p < at)?;
        if config_of[owner].replace(c).is_some() {
            return None;
        }
    }
    Some(config_of)
}

fn load_specs(args: &RunArgs) -> Result<Vec<PluginSpec>> {
    let config_of = match &args.config_of {
        Some(pairs) => pairs.clone(),
        None if args.configs.is_empty() => vec![None; args.plugins.len()],
        None => bail!("each --config must follow the --plugin it configures (at most one per plugin)"),
    };
    let mut specs = Vec::new();
    for (i, module) in args.plugins.iter().enumerate() {
        let bytes = std::fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
        let metadata = wasmplug_oci::metadata::from_module(&module.display().to_string(), &bytes)?;
        let stem = module.file_stem().map(|s| s.to_string_lossy().replace('_', "-")).unwrap_or_default();
        let name = metadata.as_ref().map(|m| m.name.clone()).filter(|n| !n.is_empty()).unwrap_or(stem);
        let config_path = config_of.get(i).copied().flatten().and_then(|c| args.configs.get(c)).cloned();
        let configuration = read_configuration(config_path.as_deref())?;
        specs.push(PluginSpec {
            name,
            module: module.clone(),
            configuration,
            config_path,
            phase: metadata.as_ref().map(|m| Phase::parse_lenient(&m.phase)).unwrap_or_default(),
            priority: metadata.as_ref().map_or(0, |m| m.priority),
        });
    }
    chain::order(&mut specs);
    Ok(specs)
}

/// The configuration a plugin gets from its `--config` file: the file's text as it is, or JSON
/// for a YAML file.
fn read_configuration(path: Option<&std::path::Path>) -> Result<String> {
    let Some(path) = path else { return Ok(String::new()) };
    let yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if yaml {
        return Ok(serde_json::to_string(&crate::validate::read_config(path)?)?);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8 text (Envoy's configuration is a string)", path.display()))
}

/// Modification time and size of a plugin's module and configuration file.
type Stamp = Vec<Option<(std::time::SystemTime, u64)>>;

fn stamp(spec: &PluginSpec) -> Stamp {
    std::iter::once(Some(spec.module.as_path()))
        .chain(std::iter::once(spec.config_path.as_deref()))
        .map(|p| {
            let meta = std::fs::metadata(p?).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A blocking HTTP exchange on the runtime (called from the worker thread).
fn send_blocking(
    runtime: &tokio::runtime::Handle,
    client: &HttpClient,
    uri: &str,
    method: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<HttpResponse> {
    let mut builder = hyper::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        if k.starts_with(':') || matches!(k.as_str(), "content-length" | "transfer-encoding" | "connection") {
            continue;
        }
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder.body(Full::new(Bytes::from(body)))?;
    runtime.block_on(async {
        let response =
            tokio::time::timeout(Duration::from_secs(30), client.request(request)).await.context("timed out")??;
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
    })
}

/// Callouts to the clusters of `--cluster`.
struct ClusterCallouts {
    clusters: HashMap<String, Target>,
    runtime: tokio::runtime::Handle,
    client: HttpClient,
}

impl CalloutHandler for ClusterCallouts {
    fn http_call(&mut self, call: &HttpCall) -> CalloutReply {
        let Some(target) = self.clusters.get(&call.cluster) else {
            return CalloutReply::UnknownCluster;
        };
        let mut headers: Vec<(String, String)> = vec![("host".into(), call.authority().to_string())];
        headers.extend(call.headers.iter().filter(|(k, _)| !k.starts_with(':') && k != "host").cloned());
        match send_blocking(
            &self.runtime,
            &self.client,
            &target.uri(call.path()),
            call.method(),
            &headers,
            call.body.clone(),
        ) {
            Ok(response) => CalloutReply::Response(response),
            Err(_) => CalloutReply::Failure,
        }
    }
}

struct Job {
    request: Request,
    reply: oneshot::Sender<HttpResponse>,
}

pub async fn run(args: RunArgs) -> Result<()> {
    let target = Target::parse(&args.upstream)?;
    let specs = load_specs(&args)?;
    let mut clusters = HashMap::new();
    for c in &args.clusters {
        let (name, url) = c.split_once('=').with_context(|| format!("--cluster {c}: expected NAME=URL"))?;
        clusters.insert(name.to_string(), Target::parse(url)?);
    }
    let compile_cache = match (&args.compile_cache, args.no_compile_cache) {
        (_, true) => None,
        (Some(dir), false) => Some(CompileCache::new(dir)),
        (None, false) => CompileCache::default_dir().map(CompileCache::new),
    };
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let runtime = tokio::runtime::Handle::current();

    // The worker thread owns the VMs.
    let (jobs, job_rx) = mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<Vec<Compilation>>>();
    {
        let (specs, client, runtime, target, explain) =
            (specs.clone(), client.clone(), runtime.clone(), target.clone(), args.explain);
        std::thread::Builder::new().name("wasmplug-chain".into()).spawn(move || {
            let callouts = || -> Box<dyn CalloutHandler> {
                Box::new(ClusterCallouts {
                    clusters: clusters.clone(),
                    runtime: runtime.clone(),
                    client: client.clone(),
                })
            };
            let starter = chain::Starter { callouts: &callouts, cache: compile_cache.as_ref() };
            let mut stages = match chain::start(&specs, &starter) {
                Ok(stages) => {
                    let _ = ready_tx.send(Ok(stages.iter().map(|s| s.compilation).collect()));
                    stages
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut stamps: Vec<Stamp> = specs.iter().map(stamp).collect();
            loop {
                let job = job_rx.recv_timeout(Duration::from_millis(500));
                if let Err(mpsc::RecvTimeoutError::Disconnected) = job {
                    break;
                }
                for (stage, seen) in stages.iter_mut().zip(stamps.iter_mut()) {
                    let now = stamp(&stage.spec);
                    if now == *seen {
                        continue;
                    }
                    *seen = now;
                    let mut spec = stage.spec.clone();
                    let result = read_configuration(spec.config_path.as_deref()).and_then(|configuration| {
                        spec.configuration = configuration;
                        stage.reload(spec, &starter)
                    });
                    match result {
                        Ok(()) => {
                            say(&format!("reloaded {} ({})", stage.spec.name, chain::describe(&stage.compilation)))
                        }
                        Err(e) => say(&format!(
                            "reload of {} failed, the previous version keeps running: {e:#}",
                            stage.spec.name
                        )),
                    }
                }
                let Ok(job) = job else { continue };
                let mut upstream = |req: &UpstreamRequest| {
                    send_blocking(
                        &runtime,
                        &client,
                        &target.uri(&req.path),
                        &req.method,
                        &req.headers,
                        req.body.clone(),
                    )
                    .unwrap_or_else(|e| {
                        HttpResponse::new(503, format!("upstream connect error: {e:#}\n"))
                            .header("content-type", "text/plain")
                    })
                };
                let (response, reports) = chain::run(&mut stages, &job.request, &mut upstream);
                if explain {
                    say(chain::explain(&job.request, &response, &reports).trim_end());
                }
                let _ = job.reply.send(response);
            }
        })?;
    }
    let compilations = ready_rx.await.context("the plugin chain did not start")??;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    say(&format!("listening on http://{addr}, upstream {}", args.upstream));
    for (i, (s, compilation)) in specs.iter().zip(&compilations).enumerate() {
        say(&format!(
            "  {}. {} ({}, priority {}) {}, {}",
            i + 1,
            s.name,
            s.phase,
            s.priority,
            s.module.display(),
            chain::describe(compilation)
        ));
    }

    let cluster = target.cluster_name();
    loop {
        let (stream, _) = listener.accept().await?;
        let (jobs, cluster) = (jobs.clone(), cluster.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let (jobs, cluster) = (jobs.clone(), cluster.clone());
                async move { Ok::<_, Infallible>(handle(req, jobs, cluster).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn handle(
    req: hyper::Request<Incoming>,
    jobs: mpsc::Sender<Job>,
    cluster: String,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text_response(413, "request body too large or unreadable\n"),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let authority = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let mut request = Request::new(parts.method.as_str(), &path).host(authority).body(body.to_vec());
    for (k, v) in &parts.headers {
        if matches!(k.as_str(), "host" | "connection" | "transfer-encoding" | "keep-alive") {
            continue;
        }
        request = request.header(k.as_str(), String::from_utf8_lossy(v.as_bytes()));
    }
    let request = request.route("wasmplug-run").cluster(cluster);
    let (reply, answer) = oneshot::channel();
    if jobs.send(Job { request, reply }).is_err() {
        return text_response(503, "the plugin chain stopped\n");
    }
    let Ok(response) = answer.await else {
        return text_response(503, "the plugin chain stopped\n");
    };
    let mut builder = hyper::Response::builder().status(response.status);
    for (k, v) in &response.headers {
        if matches!(k.as_str(), "content-length" | "transfer-encoding" | "connection") || k.starts_with(':') {
            continue;
        }
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder.body(Full::new(Bytes::from(response.body))).unwrap_or_else(|_| text_response(502, "invalid response\n"))
}

fn text_response(status: u16, body: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain"));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    response
}

/// Prints a line to stdout. A closed stdout (`wasmplug run | head -1`) must not stop the gateway,
/// so write errors are ignored instead of panicking as `println!` would.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
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
