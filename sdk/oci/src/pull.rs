//! Pulling a plugin image: manifest (index resolved), layout, verified blobs, module, metadata.

use serde::{Deserialize, Serialize};

use crate::archive::{check_wasm, extract_plugin_wasm};
use crate::error::{Error, Result};
use crate::layout::{Format, ModuleEncoding, Plan, classify, pick_from_index};
use crate::media::{Descriptor, Index, Manifest};
use crate::metadata::{AbiVersion, PluginMetadata};
use crate::reference::{Digest, ImageRef};
use crate::registry::{Progress, Registry};

/// Where an image's metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetadataSource {
    /// The image's `spec.yaml` layer.
    SpecYaml,
    /// The module's `wasmplug.plugin` custom section.
    ModuleSection,
}

/// A pulled, verified plugin image.
#[derive(Debug, Clone)]
pub struct PulledImage {
    pub reference: ImageRef,
    pub format: Format,
    /// The digest of the document the reference names (an index when the image has one):
    /// what a `sha256` field or an `@sha256:` reference means.
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    pub module: Vec<u8>,
    /// The sha256 of the .wasm file itself.
    pub module_digest: Digest,
    pub metadata: Option<PluginMetadata>,
    pub metadata_source: Option<MetadataSource>,
    /// The proxy-wasm ABI the module declares (`None`: none this project knows).
    pub abi_version: Option<AbiVersion>,
    pub readme: Option<String>,
}

/// Fetches and checks the manifest, resolving an index. Returns the top-level digest and the image manifest.
pub async fn fetch_image_manifest(
    registry: &Registry,
    image: &ImageRef,
    expected: Option<&Digest>,
) -> Result<(Digest, Manifest)> {
    let name = image.to_string();
    let (body, digest) = registry.fetch_manifest(image).await?;
    if let Some(expected) = expected
        && *expected != digest
    {
        return Err(Error::DigestMismatch {
            image: name,
            what: "manifest".into(),
            expected: expected.to_string(),
            actual: digest.to_string(),
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| Error::bad(&name, format!("the manifest is not JSON: {e}")))?;
    let body = if value.get("manifests").is_some() {
        let index: Index =
            serde_json::from_value(value).map_err(|e| Error::bad(&name, format!("invalid image index: {e}")))?;
        let entry = pick_from_index(&name, &index, registry.limits())?;
        let entry_digest = Digest::parse(&entry.digest)
            .map_err(|_| Error::bad(&name, format!("index entry has an unsupported digest `{}`", entry.digest)))?;
        let (inner, _) = registry.fetch_manifest(&image.with_digest(&entry_digest)).await?;
        inner
    } else {
        body
    };
    let manifest: Manifest =
        serde_json::from_slice(&body).map_err(|e| Error::bad(&name, format!("invalid image manifest: {e}")))?;
    Ok((digest, manifest))
}

/// Pulls an image. `expected` is a manifest digest (Higress/Istio `sha256`), enforced.
pub async fn pull(
    registry: &Registry,
    image: &ImageRef,
    expected: Option<&Digest>,
    progress: Progress<'_>,
) -> Result<PulledImage> {
    let (manifest_digest, manifest) = fetch_image_manifest(registry, image, expected).await?;
    pull_layers(registry, image, manifest_digest, manifest, progress).await
}

/// The rest of a pull, once the manifest is known: the module and metadata layers.
pub async fn pull_layers(
    registry: &Registry,
    image: &ImageRef,
    manifest_digest: Digest,
    manifest: Manifest,
    progress: Progress<'_>,
) -> Result<PulledImage> {
    let name = image.to_string();
    let limits = *registry.limits();
    let plan: Plan = classify(&name, &manifest, &limits)?;
    let layer_name = |i: usize, d: &Descriptor| match d.title() {
        Some(t) => format!("layer {i} ({t})"),
        None => format!("layer {i}"),
    };
    let module_desc = &manifest.layers[plan.module_layer];
    let module_what = layer_name(plan.module_layer, module_desc);
    let module = match plan.encoding {
        ModuleEncoding::Raw => {
            let limit = limits.max_module_bytes.min(limits.max_blob_bytes);
            registry.fetch_blob(image, module_desc, limit, &module_what, progress).await?
        }
        ModuleEncoding::TarGz => {
            let gz = registry.fetch_blob(image, module_desc, limits.max_blob_bytes, &module_what, progress).await?;
            extract_plugin_wasm(&name, &module_what, &gz, &limits)?
        }
    };
    check_wasm(&format!("{name}: {module_what}"), &module)?;
    let module_digest = Digest::of(&module);

    let text_layer = |i: Option<usize>| {
        let manifest = &manifest;
        let name = &name;
        async move {
            let Some(i) = i else { return Ok::<_, Error>(None) };
            let d = &manifest.layers[i];
            let what = layer_name(i, d);
            let bytes = registry.fetch_blob(image, d, limits.max_metadata_bytes, &what, None).await?;
            String::from_utf8(bytes).map(Some).map_err(|_| Error::bad(name, format!("{what} is not UTF-8 text")))
        }
    };
    let spec = text_layer(plan.spec_layer).await?;
    let readme = text_layer(plan.readme_layer).await?;
    let (metadata, metadata_source) = match spec {
        Some(text) => (
            Some(crate::metadata::from_spec_yaml(&format!("{name}: spec.yaml"), &text)?),
            Some(MetadataSource::SpecYaml),
        ),
        None => match crate::metadata::from_module(&name, &module)? {
            Some(m) => (Some(m), Some(MetadataSource::ModuleSection)),
            None => (None, None),
        },
    };
    let abi_version = crate::metadata::abi_version(&name, &module)?;
    Ok(PulledImage {
        reference: image.clone(),
        format: plan.format,
        manifest_digest,
        manifest,
        module,
        module_digest,
        metadata,
        metadata_source,
        abi_version,
        readme,
    })
}
