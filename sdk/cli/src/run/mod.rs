//! `wasmplug run`: a local gateway. HTTP/1.1 on `--listen` (hyper), the plugin chain in the
//! `wasmplug-host` (one VM per plugin, in phase/priority order), proxying to `--upstream`.
//!
//! The VMs live on one worker thread (as Envoy with `--concurrency 1`), where requests are
//! interleaved: while one waits for its upstream or a callout, the others go on. The server,
//! the upstream client and callouts run on the tokio runtime. A plugin whose .wasm or
//! configuration file changes is reloaded (checked before each request and every half second);
//! when the new version does not start, the running one stays.

mod chain;
mod grpc;
mod network;
mod worker;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};
use wasmplug_contract::Phase;
use wasmplug_host::{Compilation, CompileCache, Request};

use network::{Network, Target};
use worker::{Job, Worker};

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
    let network = Network::new();
    let cluster = target.cluster_name();
    let (jobs, job_rx) = mpsc::unbounded_channel::<Job>();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<Vec<Compilation>>>();
    let worker = Worker {
        specs: specs.clone(),
        clusters: Arc::new(clusters),
        upstream: network::Upstream { target, network },
        compile_cache,
        explain: args.explain,
    };
    std::thread::Builder::new().name("wasmplug-chain".into()).spawn(move || worker.run(job_rx, ready_tx))?;
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
    jobs: mpsc::UnboundedSender<Job>,
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
