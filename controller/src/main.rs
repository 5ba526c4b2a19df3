//! `wasmplug-controller`.
//!
//! In a cluster (no `--manifests`): watches WasmPlugins through the Kubernetes API (in-cluster
//! config or `KUBECONFIG`), reconciles them and serves `/metrics`, `/healthz` and `/readyz`.
//!
//! Standalone (`--manifests <dir> --output <dir>`): one pass over a directory of WasmPlugin
//! manifests: resolve each module (file://, or oci:// through the cache), validate the configs
//! against the plugin's schema, write the rendered output and print each object's status. Exit
//! code 0 when every plugin is Ready, 2 when some are not, 1 on an error that stopped the run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::collections::BTreeMap;

use clap::{Parser, ValueEnum};
use wasmplug_controller::operator;
use wasmplug_controller::operator::certificates::ManagedCa;
use wasmplug_controller::operator::delivery::GatewayAuth;
use wasmplug_controller::preflight::{self, Limits};
use wasmplug_controller::render::ModuleSource;
use wasmplug_controller::standalone::{Options, run, summary};
use wasmplug_controller::status::is_ready;
use wasmplug_oci::{Cache, Registry, RegistryConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Parser, Debug)]
#[command(
    name = "wasmplug-controller",
    version,
    about = "Resolves, validates and renders WasmPlugins for Envoy, Higress and Istio"
)]
struct Args {
    /// Standalone mode: a directory of WasmPlugin manifests (*.yaml, *.yml; several documents per file).
    #[arg(long, requires = "output")]
    manifests: Option<PathBuf>,
    /// Standalone mode: the directory to write the rendered output and statuses into.
    #[arg(long, requires = "manifests")]
    output: Option<PathBuf>,
    /// Module cache for oci:// images (standalone: needed for them; in a cluster: /var/cache/wasmplug).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Registries reachable over plain HTTP (host:port), e.g. a local test registry.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// The module server's URL as gateways reach it; modules are at `{url}/modules/sha256/<hex>.wasm`
    /// (default: https://wasmplug-controller.wasmplug-system.svc:8081, http:// with --insecure-plaintext).
    #[arg(long)]
    modules_url: Option<String>,
    /// The xDS and module servers' certificates (a mounted TLS Secret: tls.crt, tls.key, and ca.crt,
    /// the CA gateway certificates must chain to), re-read when they change. Default: /etc/wasmplug/tls.
    #[arg(long, conflicts_with = "tls_ca_secret")]
    tls_dir: Option<PathBuf>,
    /// Keep a CA in this Secret of the controller's namespace (created if missing), sign the servers'
    /// certificate with it and fill the --tls-gateway-secret Secrets with gateway certificates.
    #[arg(long)]
    tls_ca_secret: Option<String>,
    /// With --tls-ca-secret: a TLS Secret (in the controller's namespace) to keep a gateway certificate in,
    /// for node id NODE (`prefix-*`: node ids starting with `prefix-`, such as a Deployment's pod names).
    #[arg(long = "tls-gateway-secret", value_name = "NAME=NODE", requires = "tls_ca_secret")]
    tls_gateway_secrets: Vec<String>,
    /// With --tls-ca-secret: a name gateways reach the controller by (repeatable; default: the
    /// wasmplug-controller Service's names in the controller's namespace).
    #[arg(long = "tls-server-name", requires = "tls_ca_secret")]
    tls_server_names: Vec<String>,
    /// Serve xDS and modules without TLS or authentication: any process that reaches the ports gets
    /// every plugin's configuration (consumer credentials included) and module. Local demos only.
    #[arg(long)]
    insecure_plaintext: bool,
    /// The Envoy cluster that reaches the module server.
    #[arg(long, default_value_t = ModuleSource::default().cluster)]
    module_cluster: String,
    /// The gRPC xDS (ADS) server for Envoy gateways.
    #[arg(long, default_value = "0.0.0.0:18000")]
    xds_listen: SocketAddr,
    /// The module server (Envoy fetches modules from it; see --modules-url).
    #[arg(long, default_value = "0.0.0.0:8081")]
    modules_listen: SocketAddr,
    /// The gateway listener's address, for gateways whose bootstrap does not set one.
    #[arg(long, default_value = "0.0.0.0:10000")]
    gateway_listener: String,
    /// The cluster gateways route requests to (defined in their bootstrap).
    #[arg(long, default_value = "upstream")]
    upstream_cluster: String,
    /// Do not serve xDS and modules (only render Higress/Istio objects and status).
    #[arg(long)]
    no_xds: bool,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_listen: SocketAddr,
    /// Watch one namespace only (default: all namespaces).
    #[arg(long)]
    watch_namespace: Option<String>,
    /// WasmPlugins reconciled in parallel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Accept file:// urls in a cluster (paths on the controller's own disk).
    #[arg(long)]
    allow_file_urls: bool,
    /// Seconds between re-checks of a Ready plugin (tags pulled with Always may move).
    #[arg(long, default_value_t = 600)]
    resync_seconds: u64,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Reconcile only while holding the Lease `wasmplug-controller` (for several replicas).
    #[arg(long)]
    leader_elect: bool,
    /// The Lease's namespace (default: $POD_NAMESPACE, else wasmplug-system).
    #[arg(long)]
    leader_elect_namespace: Option<String>,
    /// Deliver valid configs without starting them in the controller's proxy-wasm host first.
    #[arg(long)]
    no_preflight: bool,
    /// The pre-flight VM's memory cap, in MiB.
    #[arg(long, default_value_t = preflight::DEFAULT_MEMORY_MIB, value_parser = clap::value_parser!(u64).range(1..=4096))]
    preflight_memory_mib: u64,
    /// The pre-flight's time budget per plugin call, in milliseconds.
    #[arg(long, default_value_t = preflight::DEFAULT_CALL_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    preflight_timeout_ms: u64,
    /// Seconds a Lease holds without renewal.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=300))]
    leader_elect_lease_duration: u64,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let modules_url = args.modules_url.clone().unwrap_or_else(|| {
        let scheme = if args.insecure_plaintext { "http" } else { "https" };
        format!("{scheme}://wasmplug-controller.wasmplug-system.svc:8081")
    });
    let module_server = ModuleSource {
        base_url: format!("{}/modules", modules_url.trim_end_matches('/')),
        cluster: args.module_cluster.clone(),
        ..Default::default()
    };
    match (&args.manifests, &args.output) {
        (Some(manifests), Some(output)) => standalone(&args, manifests.clone(), output.clone(), module_server).await,
        _ => cluster(args, module_server).await,
    }
}

async fn cluster(args: Args, module_server: ModuleSource) -> ExitCode {
    init_logging(args.log_format);
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no Kubernetes API (in-cluster config or KUBECONFIG); for a directory of manifests use --manifests/--output");
            return ExitCode::FAILURE;
        }
    };
    let leader_election = args.leader_elect.then(|| operator::leader::Election {
        namespace: args
            .leader_elect_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "wasmplug-system".into()),
        name: "wasmplug-controller".into(),
        identity: std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| format!("wasmplug-controller-{}", std::process::id())),
        lease_duration: Duration::from_secs(args.leader_elect_lease_duration),
    });
    let auth = match gateway_auth(&args) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let preflight = preflight_limits(&args);
    let options = operator::Options {
        cache_dir: args.cache_dir.unwrap_or_else(|| PathBuf::from("/var/cache/wasmplug")),
        insecure_registries: args.insecure_registries,
        watch_namespace: args.watch_namespace,
        concurrency: args.concurrency,
        metrics_listen: Some(args.metrics_listen),
        module_server,
        allow_file_urls: args.allow_file_urls,
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        leader_election,
        delivery: (!args.no_xds).then(|| operator::delivery::DeliveryOptions {
            xds_listen: args.xds_listen,
            modules_listen: args.modules_listen,
            auth,
            listener_address: args.gateway_listener.clone(),
            upstream_cluster: args.upstream_cluster.clone(),
        }),
        preflight,
    };
    match operator::serve(client, options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped");
            ExitCode::FAILURE
        }
    }
}

/// The pre-flight's limits from the flags; `None` with `--no-preflight`.
fn preflight_limits(args: &Args) -> Option<Limits> {
    let memory = usize::try_from(args.preflight_memory_mib << 20).unwrap_or(usize::MAX);
    (!args.no_preflight).then(|| Limits { memory, call_timeout: Duration::from_millis(args.preflight_timeout_ms) })
}

/// How gateways authenticate, from the flags.
fn gateway_auth(args: &Args) -> Result<GatewayAuth, String> {
    if args.insecure_plaintext {
        return Ok(GatewayAuth::Plaintext);
    }
    let Some(ca_secret) = &args.tls_ca_secret else {
        return Ok(GatewayAuth::Files(args.tls_dir.clone().unwrap_or_else(|| PathBuf::from("/etc/wasmplug/tls"))));
    };
    let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "wasmplug-system".into());
    let mut gateway_secrets = BTreeMap::new();
    for entry in &args.tls_gateway_secrets {
        match entry.split_once('=') {
            Some((name, node)) if !name.is_empty() && !node.is_empty() => {
                gateway_secrets.insert(name.to_string(), node.to_string());
            }
            _ => return Err(format!("--tls-gateway-secret `{entry}`: expected NAME=NODE")),
        }
    }
    let server_names = if args.tls_server_names.is_empty() {
        let service = "wasmplug-controller";
        vec![
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
            format!("{service}.{namespace}"),
            service.to_string(),
        ]
    } else {
        args.tls_server_names.clone()
    };
    Ok(GatewayAuth::ManagedCa(ManagedCa { namespace, ca_secret: ca_secret.clone(), server_names, gateway_secrets }))
}

async fn standalone(args: &Args, manifests: PathBuf, output: PathBuf, module_server: ModuleSource) -> ExitCode {
    let cache = match &args.cache_dir {
        None => None,
        Some(dir) => {
            let config = RegistryConfig { insecure_registries: args.insecure_registries.clone(), ..Default::default() };
            match Registry::new(config).and_then(|r| Cache::new(dir, r)) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("wasmplug-controller: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let opts = Options { manifests, output, cache, module_server, preflight: preflight_limits(args) };
    match run(&opts).await {
        Ok(reports) => {
            print!("{}", summary(&reports));
            if reports.iter().all(|r| is_ready(&r.status)) { ExitCode::SUCCESS } else { ExitCode::from(2) }
        }
        Err(e) => {
            eprintln!("wasmplug-controller: {e}");
            ExitCode::FAILURE
        }
    }
}
