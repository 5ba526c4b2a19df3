//! Resolving a WasmPlugin's url to a module, its digests and its config schema.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wasmplug_contract::AbiVersion;
use wasmplug_oci::cache::Served;
use wasmplug_oci::{Cache, Digest, ImageRef, MetadataSource, PluginMetadata, Registry};

use crate::crd::{PullPolicy, WasmPluginSpec};
use crate::error::{Error, Result};

/// Where the schema came from, as status reports it.
pub const SCHEMA_FROM_SECTION: &str = wasmplug_contract::PLUGIN_SECTION;
pub const SCHEMA_FROM_SPEC_YAML: &str = "spec.yaml";

/// What resolving the plugin's url gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModule {
    /// The image manifest digest (`sha256:<hex>`), for oci:// urls.
    pub image_digest: Option<String>,
    /// The module's sha256 (hex).
    pub module_sha256: String,
}

/// A module on local disk and what it says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub module: ResolvedModule,
    pub path: PathBuf,
    pub size: u64,
    pub schema: Option<Value>,
    pub schema_source: Option<String>,
    /// The proxy-wasm ABI the module declares (`None`: none known).
    pub abi: Option<AbiVersion>,
}

fn schema_of(meta: Option<PluginMetadata>, source: Option<&str>) -> (Option<Value>, Option<String>) {
    match meta.and_then(|m| m.config_schema) {
        Some(schema) => (Some(schema), source.map(str::to_string)),
        None => (None, None),
    }
}

/// A `file://` module: its digest is checked against `sha256` when set; the schema is the
/// module's `wasmplug.plugin` section, else a `spec.yaml` next to it.
pub fn resolve_file(spec: &WasmPluginSpec, path: &Path) -> Result<Resolved> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let digest = Digest::of(&bytes);
    if !spec.sha256.is_empty() && spec.sha256 != digest.hex() {
        return Err(Error::DigestMismatch { expected: spec.sha256.clone(), actual: digest.hex().to_string() });
    }
    let name = path.display().to_string();
    let mut found = schema_of(wasmplug_oci::metadata::from_module(&name, &bytes)?, Some(SCHEMA_FROM_SECTION));
    let spec_yaml = path.with_file_name("spec.yaml");
    if found.0.is_none()
        && let Ok(text) = std::fs::read_to_string(&spec_yaml)
    {
        let meta = wasmplug_oci::metadata::from_spec_yaml(&spec_yaml.display().to_string(), &text)?;
        found = schema_of(Some(meta), Some(SCHEMA_FROM_SPEC_YAML));
    }
    Ok(Resolved {
        module: ResolvedModule { image_digest: None, module_sha256: digest.hex().to_string() },
        path: path.to_path_buf(),
        size: bytes.len() as u64,
        schema: found.0,
        schema_source: found.1,
        abi: wasmplug_oci::metadata::abi_version(&name, &bytes)?,
    })
}

/// Whose credentials an image is resolved with (in-cluster: the plugin's pull secret).
#[derive(Debug, Clone)]
pub struct Access {
    pub registry: Registry,
    /// Identifies the credentials (`namespace/secret@resourceVersion`, or `anonymous`).
    pub tenant: String,
}

/// An `oci://` image, through the cache, and whether the cache answered without the registry.
/// `sha256` is the manifest digest and is enforced. With `access`, the download uses the
/// tenant's registry client.
pub async fn resolve_image(
    spec: &WasmPluginSpec,
    cache: &Cache,
    access: Option<&Access>,
) -> Result<(Resolved, Served)> {
    let image = ImageRef::parse(&spec.url)?;
    let expected = if spec.sha256.is_empty() { None } else { Some(Digest::parse(&format!("sha256:{}", spec.sha256))?) };
    let policy = match spec.image_pull_policy {
        Some(PullPolicy::Always) => Some(wasmplug_oci::PullPolicy::Always),
        Some(PullPolicy::IfNotPresent) => Some(wasmplug_oci::PullPolicy::IfNotPresent),
        Some(PullPolicy::Unspecified) | None => None,
    };
    let (registry, tenant) = access.map_or((cache.registry(), ""), |a| (&a.registry, a.tenant.as_str()));
    let (m, served) = cache.resolve_served(registry, tenant, &image, expected.as_ref(), policy, None).await?;
    let source = match m.metadata_source {
        Some(MetadataSource::ModuleSection) => Some(SCHEMA_FROM_SECTION),
        Some(MetadataSource::SpecYaml) => Some(SCHEMA_FROM_SPEC_YAML),
        None => None,
    };
    let (schema, schema_source) = schema_of(m.metadata, source);
    let resolved = Resolved {
        module: ResolvedModule {
            image_digest: Some(m.manifest_digest),
            module_sha256: m.module_digest.strip_prefix("sha256:").unwrap_or(&m.module_digest).to_string(),
        },
        path: m.path,
        size: m.size,
        schema,
        schema_source,
        abi: m.abi_version,
    };
    Ok((resolved, served))
}

/// Refuses a module that one of the spec's targets cannot load (upstream Envoy, and so Istio's
/// proxy, refuses Higress's ABI 0.2.100).
pub fn check_loadable(spec: &WasmPluginSpec, resolved: Resolved) -> Result<Resolved> {
    let Some(abi) = resolved.abi else { return Ok(resolved) };
    match spec.effective_targets().into_iter().find(|t| !t.loads(abi)) {
        Some(target) => Err(Error::AbiUnsupported { abi, target }),
        None => Ok(resolved),
    }
}

/// Resolves any supported url. `cache` is needed for images.
pub async fn resolve(spec: &WasmPluginSpec, cache: Option<&Cache>) -> Result<Resolved> {
    let url = spec.url.as_str();
    if let Some(path) = url.strip_prefix("file://") {
        return resolve_file(spec, Path::new(path));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(Error::Unsupported { what: "http(s):// module urls in standalone mode" });
    }
    match cache {
        Some(cache) => resolve_image(spec, cache, None).await.map(|(r, _)| r),
        None => Err(Error::Unsupported { what: "oci:// images without --cache-dir" }),
    }
}
