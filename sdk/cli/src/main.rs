//! `wasmplug`: build, push, pull, inspect and validate Wasm plugin images.

mod build;
mod envoy_bootstrap;
mod inspect;
mod new;
mod run;
mod validate;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use wasmplug_oci::{
    DockerConfig, ImageRef, PluginPackage, PullPolicy, PushFormat, Registry, RegistryConfig, build_image, pull, push,
};

#[derive(Parser)]
#[command(name = "wasmplug", version, about = "Scaffold, run, build, push, pull, inspect and validate Wasm plugins")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct RegistryArgs {
    /// Talk plain HTTP to the registry of the reference (never done otherwise).
    #[arg(long)]
    plain_http: bool,
    /// Docker config JSON with credentials (default: $DOCKER_CONFIG/config.json, ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// Extra trusted CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Output {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Higress,
    Cncf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print an Envoy bootstrap (YAML) that connects a gateway to the controller's xDS server.
    EnvoyBootstrap(envoy_bootstrap::EnvoyBootstrapArgs),
    /// Serve a local gateway: the plugin chain in the wasmplug host, proxying to an upstream.
    Run(run::RunArgs),
    /// Scaffold a plugin crate: config type, handler, a test through the wasmplug-host harness, README.
    New {
        name: String,
        /// Parent directory (default: `plugins/` of the enclosing wasmplug workspace, else the current directory).
        #[arg(long, value_name = "PARENT")]
        dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Compile a plugin crate (wasm32-wasip1, release) and write plugin.wasm, spec.yaml, README.md.
    Build {
        dir: PathBuf,
        /// Output directory (default: <dir>/target/wasmplug).
        #[arg(short, long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Push a built directory or a .wasm module as an image.
    Push {
        source: PathBuf,
        reference: String,
        #[arg(long, value_enum, default_value = "higress")]
        format: Format,
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Pull an image and write its module.
    Pull {
        reference: String,
        /// Where to write the module (default: <name>.wasm in the current directory).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Expected manifest digest (as the WasmPlugin `sha256` field).
        #[arg(long)]
        sha256: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Show an image's (or a local module's) format, digests, layers, metadata and schema.
    Inspect {
        source: String,
        /// Print the config schema in text output.
        #[arg(long)]
        schema: bool,
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Check a plugin config (JSON or YAML, `_rules_` included) against the plugin's schema.
    Validate {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        source: String,
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

fn registry_for(args: &RegistryArgs, image: &ImageRef) -> Result<Registry> {
    let docker_path = args.docker_config.clone().or_else(|| {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
        Some(dir.join("config.json")).filter(|p| p.exists())
    });
    let docker_config = match docker_path {
        Some(p) => {
            Some(DockerConfig::from_json(&std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?)?)
        }
        None => None,
    };
    let ca = match &args.ca_file {
        Some(p) => vec![std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?],
        None => Vec::new(),
    };
    Ok(Registry::new(RegistryConfig {
        insecure_registries: if args.plain_http { vec![image.registry().to_string()] } else { Vec::new() },
        ca_certificates_pem: ca,
        docker_config,
        ..RegistryConfig::default()
    })?)
}

fn progress_bar(what: &'static str) -> Option<Box<dyn Fn(u64, u64) + Send + Sync>> {
    std::io::stderr().is_terminal().then(|| {
        Box::new(move |done: u64, total: u64| {
            eprint!("\r{what}: {} / {} KiB", done / 1024, total / 1024);
            if done == total {
                eprintln!();
            }
        }) as Box<dyn Fn(u64, u64) + Send + Sync>
    })
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn local_package(path: &Path) -> Result<PluginPackage> {
    Ok(if path.is_dir() {
        PluginPackage::from_dir(path)?
    } else {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        PluginPackage::from_module(&path.display().to_string(), bytes)?
    })
}

/// A local path when one exists, otherwise an image reference.
async fn load(source: &str, args: &RegistryArgs) -> Result<inspect::Inspection> {
    let path = Path::new(source);
    if path.exists() {
        return Ok(inspect::Inspection::of_local(path, &local_package(path)?));
    }
    let image = ImageRef::parse(source)?;
    let registry = registry_for(args, &image)?;
    let bar = progress_bar("module");
    Ok(inspect::Inspection::of_image(&pull(&registry, &image, None, bar.as_deref()).await?))
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Run(args) => run::run(args).await?,
        Cmd::EnvoyBootstrap(args) => print!("{}", envoy_bootstrap::render(&args)?),
        Cmd::New { name, dir, output } => {
            let parent = match dir {
                Some(d) => d,
                None => new::default_parent()?,
            };
            let created = new::create(&name, &parent)?;
            match output {
                Output::Json => print_json(&created)?,
                Output::Text => {
                    println!("created {} in {}", created.name, created.dir.display());
                    if let Some(ws) = &created.workspace {
                        println!("added to the workspace members in {}", ws.display());
                    }
                    println!("next: cd {} && cargo test", created.dir.display());
                }
            }
        }
        Cmd::Build { dir, out, output } => {
            let built = build::build(&dir, out.as_deref())?;
            match output {
                Output::Json => print_json(&built)?,
                Output::Text => println!(
                    "{}: {} ({} bytes, {}) in {}",
                    built.name,
                    built.module_digest,
                    built.module_size,
                    if built.has_schema { "config schema embedded" } else { "no config schema" },
                    built.out_dir.display()
                ),
            }
        }
        Cmd::Push { source, reference, format, registry, output } => {
            let image = ImageRef::parse(&reference)?;
            let reg = registry_for(&registry, &image)?;
            let pkg = local_package(&source)?;
            let format = match format {
                Format::Higress => PushFormat::Higress,
                Format::Cncf => PushFormat::Cncf,
            };
            let built = build_image(&pkg, format)?;
            let tty = std::io::stderr().is_terminal();
            let digest = push(&reg, &image, &built, &|what, size| {
                if tty {
                    eprintln!("uploading {what} ({size} bytes)");
                }
            })
            .await?;
            let pinned = image.with_digest(&digest);
            match output {
                Output::Json => print_json(&serde_json::json!({
                    "reference": image.to_string(), "manifestDigest": digest.to_string(),
                    "moduleDigest": built.module_digest.to_string(), "pinned": pinned.to_string(),
                }))?,
                Output::Text => println!("{pinned}"),
            }
        }
        Cmd::Pull { reference, out, sha256, registry, output } => {
            let image = ImageRef::parse(&reference)?;
            let expected = sha256.as_deref().map(wasmplug_oci::Digest::parse).transpose()?;
            let reg = registry_for(&registry, &image)?;
            let bar = progress_bar("module");
            let pulled = pull(&reg, &image, expected.as_ref(), bar.as_deref()).await?;
            let name = pulled.metadata.as_ref().map(|m| m.name.clone()).filter(|n| !n.is_empty());
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{}.wasm", name.as_deref().unwrap_or("plugin"))));
            let tmp = out.with_extension("wasm.partial");
            std::fs::write(&tmp, &pulled.module).with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &out).with_context(|| format!("cannot write {}", out.display()))?;
            let policy = PullPolicy::default_for(&image);
            match output {
                Output::Json => print_json(&serde_json::json!({
                    "file": out, "format": pulled.format.name(), "manifestDigest": pulled.manifest_digest.to_string(),
                    "moduleDigest": pulled.module_digest.to_string(), "size": pulled.module.len(),
                    "defaultPullPolicy": format!("{policy:?}"),
                }))?,
                Output::Text => println!(
                    "{}: {} bytes, module {}, manifest {} ({})",
                    out.display(),
                    pulled.module.len(),
                    pulled.module_digest,
                    pulled.manifest_digest,
                    pulled.format.name()
                ),
            }
        }
        Cmd::Inspect { source, schema, registry, output } => {
            let inspection = load(&source, &registry).await?;
            match output {
                Output::Json => print_json(&inspection)?,
                Output::Text => inspection.print_text(schema)?,
            }
        }
        Cmd::Validate { config, source, registry, output } => {
            let doc = validate::read_config(&config)?;
            let inspection = load(&source, &registry).await?;
            let schema = inspection.metadata.as_ref().and_then(|m| m.config_schema.as_ref());
            let violations = validate::validate_against(schema, &inspection.source, &doc)?;
            match output {
                Output::Json => {
                    print_json(&serde_json::json!({"valid": violations.is_empty(), "violations": violations}))?
                }
                Output::Text if violations.is_empty() => println!("{}: valid", config.display()),
                Output::Text => {
                    for v in &violations {
                        println!(
                            "{}: {}: {}",
                            config.display(),
                            if v.pointer.is_empty() { "/" } else { &v.pointer },
                            v.message
                        );
                    }
                    eprintln!("{} violation(s)", violations.len());
                }
            }
            if !violations.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // One TLS provider for the process (ring), installed before any client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let (Cmd::Run(args), Some(("run", sub))) = (&mut cli.command, matches.subcommand()) {
        args.config_of = run::pair_configs(sub);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
