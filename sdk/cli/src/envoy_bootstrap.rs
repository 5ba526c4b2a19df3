//! `wasmplug envoy-bootstrap`: the Envoy bootstrap (YAML) that connects a gateway to the
//! controller's xDS and module servers.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use wasmplug_envoy::bootstrap::{BootstrapOptions, GatewayTls, envoy_bootstrap, split_host_port};

/// The module server's port when `--modules` is not given (same host as `--xds`).
const DEFAULT_MODULES_PORT: u16 = 8081;

#[derive(clap::Args)]
pub struct EnvoyBootstrapArgs {
    /// The xDS server (host:port).
    #[arg(long, value_name = "HOST:PORT")]
    xds: String,
    /// The node name (node.id); plugins select nodes by their labels.
    #[arg(long)]
    node: String,
    /// Route everything to this upstream (http:// or https://) and listen on 127.0.0.1.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// A node label (repeatable), matched by the plugins' label selectors.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// The module server (host:port); default: the --xds host, port 8081.
    #[arg(long, value_name = "HOST:PORT")]
    modules: Option<String>,
    /// The gateway listener's port.
    #[arg(long, default_value_t = 10000)]
    listen_port: u16,
    /// The admin port (always on 127.0.0.1).
    #[arg(long, default_value_t = 9901)]
    admin_port: u16,
    /// Where the gateway's certificate is on the gateway: a mounted TLS Secret (tls.crt and tls.key,
    /// one of whose names is --node, and ca.crt, the CA of the controller's certificate).
    #[arg(long, value_name = "DIR", default_value = "/etc/wasmplug/tls")]
    tls_dir: String,
    /// The name the controller's certificate must carry (default: the host of --xds and --modules).
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
    /// Connect without TLS, to a controller started with --insecure-plaintext (local demos only).
    #[arg(long, conflicts_with_all = ["tls_dir", "tls_server_name"])]
    insecure_plaintext: bool,
}

/// The bootstrap as YAML.
pub fn render(args: &EnvoyBootstrapArgs) -> Result<String> {
    let mut labels = BTreeMap::new();
    for label in &args.labels {
        let Some((k, v)) = label.split_once('=') else { bail!("--label `{label}`: expected KEY=VALUE") };
        if k.is_empty() {
            bail!("--label `{label}`: empty key");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    let modules = match &args.modules {
        Some(m) => m.clone(),
        None => {
            let (host, _) = split_host_port(&args.xds)?;
            if host.contains(':') {
                format!("[{host}]:{DEFAULT_MODULES_PORT}")
            } else {
                format!("{host}:{DEFAULT_MODULES_PORT}")
            }
        }
    };
    let bootstrap = envoy_bootstrap(&BootstrapOptions {
        xds: args.xds.clone(),
        node: args.node.clone(),
        labels,
        upstream: args.upstream.clone(),
        listen_address: None,
        listen_port: args.listen_port,
        admin_port: args.admin_port,
        modules,
        tls: (!args.insecure_plaintext)
            .then(|| GatewayTls { server_name: args.tls_server_name.clone(), ..GatewayTls::from_dir(&args.tls_dir) }),
    })?;
    serde_saphyr::to_string(&bootstrap).context("cannot render the bootstrap as YAML")
}
