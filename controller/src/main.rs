//! `wasmplug-controller`: standalone mode (no cluster) for now.
//!
//! `wasmplug-controller --manifests <dir> --output <dir> [--cache-dir <dir>]` reads WasmPlugin
//! manifests, resolves each module (file://, or oci:// through the cache), validates the configs
//! against the plugin's schema, renders the output and prints each object's status. Exit code 0
//! when every plugin is Ready, 2 when some are not, 1 on an error that stopped the run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wasmplug_controller::render::ModuleServer;
use wasmplug_controller::standalone::{Options, run, summary};
use wasmplug_controller::status::is_ready;
use wasmplug_oci::{Cache, Registry, RegistryConfig};

#[derive(Parser, Debug)]
#[command(name = "wasmplug-controller", version, about = "Renders WasmPlugin manifests for Envoy, Higress and Istio")]
struct Args {
    /// Directory of WasmPlugin manifests (*.yaml, *.yml; several documents per file allowed).
    #[arg(long)]
    manifests: PathBuf,
    /// Directory to write the rendered output and statuses into.
    #[arg(long)]
    output: PathBuf,
    /// Module cache for oci:// images (needed for them).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Registries reachable over plain HTTP (host:port), e.g. a local test registry.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Base URL Envoy fetches modules from (`{base}/sha256/<hex>.wasm`).
    #[arg(long, default_value_t = ModuleServer::default().base_url)]
    module_base_url: String,
    /// The Envoy cluster that reaches the module server.
    #[arg(long, default_value_t = ModuleServer::default().cluster)]
    module_cluster: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
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
    let opts = Options {
        manifests: args.manifests,
        output: args.output,
        cache,
        module_server: ModuleServer {
            base_url: args.module_base_url,
            cluster: args.module_cluster,
            ..Default::default()
        },
    };
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
