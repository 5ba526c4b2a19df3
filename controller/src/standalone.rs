//! Standalone mode: no cluster. Reads WasmPlugin manifests from a directory (a GitOps checkout),
//! resolves, validates and renders each, and writes the output and each object's status.
//!
//! Output layout: `modules/sha256/<hex>.wasm` (to serve to Envoy), `envoy-filters.json` (the
//! `envoy.filters.http.wasm` filters of every ready plugin targeting Envoy, in chain order),
//! `<namespace>.<name>.higress.yaml`, `<namespace>.<name>.istio.yaml` and
//! `<namespace>.<name>.status.yaml`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use tracing::Instrument;
use wasmplug_oci::Cache;

use crate::crd::{Target, WasmPlugin, WasmPluginStatus};
use crate::error::{Error, Result};
use crate::pipeline;
use crate::preflight::{Limits, Preflight};
use crate::render::{self, ModuleSource, Plugin};
use crate::resolve::{self, Resolved};
use crate::status::{self, Facts};

/// What to read, where to write.
#[derive(Debug)]
pub struct Options {
    pub manifests: PathBuf,
    pub output: PathBuf,
    pub cache: Option<Cache>,
    pub module_server: ModuleSource,
    /// The pre-flight host's limits; `None`: no pre-flight.
    pub preflight: Option<Limits>,
}

/// One object's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `namespace/name`.
    pub id: String,
    pub file: PathBuf,
    pub status: WasmPluginStatus,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// A WasmPlugin document read from a file, or why it could not be read as one.
type Entry = (PathBuf, std::result::Result<WasmPlugin, (String, String)>);

/// Every WasmPlugin (`wasmplug.io/v1alpha1`) in the `*.yaml`/`*.yml` files of `dir`, in file
/// order; other kinds are skipped. A document that is not a valid WasmPlugin gives
/// `Err((id, reason))` for that document only: one bad object never stops the others.
pub fn read_manifests(dir: &Path) -> Result<Vec<Entry>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(io(&file))?;
        let docs: Vec<Value> = match serde_saphyr::from_multiple(&text) {
            Ok(docs) => docs,
            Err(e) => {
                out.push((file.clone(), Err((file.display().to_string(), format!("not valid YAML: {e}")))));
                continue;
            }
        };
        for doc in docs {
            let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            if doc.get("kind").and_then(Value::as_str) != Some("WasmPlugin") || api != "wasmplug.io/v1alpha1" {
                continue;
            }
            let meta = |k: &str| doc.pointer(&format!("/metadata/{k}")).and_then(Value::as_str).map(str::to_string);
            let id = format!(
                "{}/{}",
                meta("namespace").unwrap_or_else(|| "default".into()),
                meta("name").unwrap_or_default()
            );
            let entry = match serde_json::from_value::<WasmPlugin>(doc) {
                Ok(mut wp) if wp.metadata.name.as_deref().is_some_and(|n| !n.is_empty()) => {
                    wp.metadata.namespace.get_or_insert_with(|| "default".into());
                    Ok(wp)
                }
                Ok(_) => Err((id, "a WasmPlugin needs metadata.name".into())),
                Err(e) => Err((id, format!("not a valid WasmPlugin: {e}"))),
            };
            out.push((file.clone(), entry));
        }
    }
    Ok(out)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(io(path))
}

fn yaml(value: &impl serde::Serialize, what: &str) -> Result<String> {
    serde_saphyr::to_string(value).map_err(|source| Error::Yaml { what: what.into(), source })
}

/// Runs one pass over the manifests. Objects that fail do not stop the others.
pub async fn run(opts: &Options) -> Result<Vec<Report>> {
    let objects = read_manifests(&opts.manifests)?;
    let modules = opts.output.join("modules/sha256");
    std::fs::create_dir_all(&modules).map_err(io(&modules))?;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut reports = Vec::new();
    let mut envoy: Vec<(WasmPlugin, Resolved)> = Vec::new();
    let preflight = Arc::new(opts.preflight.clone().map_or_else(Preflight::off, Preflight::new));
    for (file, entry) in objects {
        let (id, status) = match entry {
            Ok(wp) => {
                let ns = wp.metadata.namespace.as_deref().unwrap_or_default();
                let id = format!("{ns}/{}", wp.metadata.name.as_deref().unwrap_or_default());
                // Whatever resolving logs (registry retries) names the object.
                let span = tracing::info_span!("object", plugin = %id);
                let status = object(opts, &modules, wp, &now, &mut envoy, &preflight).instrument(span).await?;
                (id, status)
            }
            Err((id, reason)) => {
                let facts = Facts { problems: std::slice::from_ref(&reason), ..Facts::default() };
                (id, status::build(facts, &now))
            }
        };
        reports.push(Report { id, file, status });
    }
    let plugins: Vec<Plugin<'_>> = envoy.iter().map(|(o, r)| Plugin { object: o, module: &r.module }).collect();
    let chain = Value::Array(render::envoy_filter_chain(&plugins, &opts.module_server));
    let text = serde_json::to_string_pretty(&chain)
        .map_err(|source| Error::Json { what: "envoy-filters.json".into(), source })?;
    write(&opts.output.join("envoy-filters.json"), &(text + "\n"))?;
    Ok(reports)
}

/// One object: writes its status and, when it passed, its module and renderings. A plugin for
/// Envoy joins `envoy`, for the filter chain of all of them.
async fn object(
    opts: &Options,
    modules: &Path,
    wp: WasmPlugin,
    now: &Time,
    envoy: &mut Vec<(WasmPlugin, Resolved)>,
    preflight: &Arc<Preflight>,
) -> Result<WasmPluginStatus> {
    let checked = pipeline::check(&wp, None, || resolve::resolve(&wp.spec, opts.cache.as_ref()), preflight).await;
    let st = status::build(checked.facts(), now);
    let ns = wp.metadata.namespace.as_deref().unwrap_or_default();
    let stem = format!("{ns}.{}", wp.metadata.name.as_deref().unwrap_or_default());
    let base = |suffix: &str| opts.output.join(format!("{stem}.{suffix}"));
    write(&base("status.yaml"), &yaml(&st, "status")?)?;
    let Some(r) = checked.into_module() else { return Ok(st) };
    let target = modules.join(format!("{}.wasm", r.module.module_sha256));
    if !target.exists() {
        std::fs::copy(&r.path, &target).map_err(io(&target))?;
    }
    let plugin = Plugin { object: &wp, module: &r.module };
    let targets = wp.spec.effective_targets();
    if targets.contains(&Target::Higress) {
        write(&base("higress.yaml"), &yaml(&render::higress_wasmplugin(&plugin), "higress")?)?;
    }
    if targets.contains(&Target::Istio) {
        write(&base("istio.yaml"), &yaml(&render::istio_wasmplugin(&plugin), "istio")?)?;
    }
    if targets.contains(&Target::Envoy) {
        envoy.push((wp, r));
    }
    Ok(st)
}

/// One line per object, then its conditions (`kubectl get`-like).
pub fn summary(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        let ready = if status::is_ready(&r.status) { "Ready" } else { "NotReady" };
        let digest = r.status.image_digest.as_deref().or(r.status.module_sha256.as_deref()).unwrap_or("-");
        out.push_str(&format!("{}\t{ready}\t{digest}\t({})\n", r.id, r.file.display()));
        for c in r.status.conditions.iter().filter(|c| c.status != "True") {
            out.push_str(&format!("  {}={} {}: {}\n", c.type_, c.status, c.reason, c.message));
        }
        for v in &r.status.config_violations {
            out.push_str(&format!("  violation {}: {}\n", v.pointer, v.message));
        }
    }
    out
}
