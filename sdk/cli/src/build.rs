//! `wasmplug build`: compile a plugin crate to wasm32-wasip1 and write the image contents.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use wasmplug_contract::build;

/// What `build` wrote.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Built {
    pub out_dir: PathBuf,
    pub name: String,
    pub module_digest: String,
    pub module_size: u64,
    pub has_schema: bool,
}

/// The package name and the target directory, from `cargo metadata`.
fn package(dir: &Path) -> Result<(String, PathBuf)> {
    let manifest = dir.join("Cargo.toml");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(&manifest)
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed for {}: {}", manifest.display(), String::from_utf8_lossy(&out.stderr));
    }
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    let canonical = manifest.canonicalize()?;
    let name = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["manifest_path"].as_str().map(PathBuf::from).and_then(|p| p.canonicalize().ok())
                == Some(canonical.clone())
        })
        .and_then(|p| p["name"].as_str())
        .with_context(|| format!("{} has no [package]", manifest.display()))?
        .to_string();
    let target = meta["target_directory"].as_str().context("cargo metadata: no target_directory")?;
    Ok((name, PathBuf::from(target)))
}

pub fn build(dir: &Path, out_dir: Option<&Path>) -> Result<Built> {
    let (name, target) = package(dir)?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(build::CARGO_ARGS)
        .args(["-p", &name, "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build of {name} for wasm32-wasip1 failed");
    }
    let module_path = build::module_path(&target, &name);
    let module = std::fs::read(&module_path)
        .with_context(|| format!("{} not found: is {name} a cdylib crate?", module_path.display()))?;
    let metadata = wasmplug_oci::metadata::from_module(&module_path.display().to_string(), &module)?;
    let out_dir = out_dir.map(Path::to_path_buf).unwrap_or_else(|| dir.join("target/wasmplug"));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    std::fs::write(out_dir.join("plugin.wasm"), &module)?;
    let spec = out_dir.join("spec.yaml");
    match &metadata {
        Some(m) => std::fs::write(&spec, wasmplug_oci::metadata::to_spec_yaml(m)?)?,
        None => {
            eprintln!("warning: {name} has no `wasmplug.plugin` section (not built with wasmplug-sdk): no spec.yaml");
            let _ = std::fs::remove_file(&spec);
        }
    }
    let readme = dir.join("README.md");
    if readme.exists() {
        std::fs::copy(&readme, out_dir.join("README.md"))?;
    }
    Ok(Built {
        out_dir,
        name,
        module_digest: wasmplug_oci::Digest::of(&module).to_string(),
        module_size: module.len() as u64,
        has_schema: metadata.as_ref().is_some_and(|m| m.config_schema.is_some()),
    })
}
