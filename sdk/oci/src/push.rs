//! Building and pushing plugin images: the Higress layout (default) or the CNCF Wasm artifact.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use serde_json::json;

use crate::archive::{PLUGIN_WASM, check_wasm, pack_plugin_wasm};
use crate::error::{Error, Result};
use crate::media::*;
use crate::metadata::PluginMetadata;
use crate::reference::{Digest, ImageRef};
use crate::registry::Registry;

/// The layout written by a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushFormat {
    /// spec.yaml, README.md, then `plugin.tar.gz` holding `plugin.wasm`, with Higress's media
    /// types: readable by Higress, Istio and Envoy Gateway as is.
    #[default]
    Higress,
    /// `application/vnd.wasm.config.v0+json` + one `application/wasm` layer.
    Cncf,
}

/// What goes into an image.
#[derive(Debug, Clone)]
pub struct PluginPackage {
    pub module: Vec<u8>,
    pub metadata: Option<PluginMetadata>,
    /// A spec.yaml to ship verbatim (e.g. a hand-written Higress one); generated from `metadata` otherwise.
    pub spec_yaml: Option<String>,
    pub readme: Option<String>,
}

impl PluginPackage {
    /// From a module alone: metadata from its `wasmplug.plugin` section, if any.
    pub fn from_module(source_name: &str, module: Vec<u8>) -> Result<Self> {
        let metadata = crate::metadata::from_module(source_name, &module)?;
        Ok(PluginPackage { module, metadata, spec_yaml: None, readme: None })
    }

    /// From a directory written by `wasmplug build`: `plugin.wasm`, optional `spec.yaml` and `README.md`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| Error::io(dir.join(name), e));
        let read_opt = |name: &str| -> Result<Option<String>> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(path, e)),
            }
        };
        let module = read(PLUGIN_WASM)?;
        let mut pkg = Self::from_module(&dir.join(PLUGIN_WASM).display().to_string(), module)?;
        if let Some(spec) = read_opt("spec.yaml")? {
            pkg.metadata = Some(crate::metadata::from_spec_yaml(&dir.join("spec.yaml").display().to_string(), &spec)?);
            pkg.spec_yaml = Some(spec);
        }
        pkg.readme = read_opt("README.md")?;
        Ok(pkg)
    }
}

/// A complete image ready to upload: blobs, then the manifest.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub blobs: Vec<(String, Bytes)>,
    pub manifest: Bytes,
    pub manifest_digest: Digest,
    pub module_digest: Digest,
}

fn descriptor(media_type: &str, data: &[u8], title: Option<&str>) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::of(data).to_string(),
        size: data.len() as i64,
        annotations: title.map(|t| BTreeMap::from([(TITLE_ANNOTATION.to_string(), t.to_string())])),
        platform: None,
    }
}

/// Builds the image in memory. Deterministic: the same package gives the same manifest digest.
pub fn build_image(pkg: &PluginPackage, format: PushFormat) -> Result<BuiltImage> {
    check_wasm(PLUGIN_WASM, &pkg.module)?;
    let module_digest = Digest::of(&pkg.module);
    let mut blobs: Vec<(String, Bytes)> = Vec::new();
    let mut layers = Vec::new();
    let mut annotations = BTreeMap::new();
    if let Some(m) = &pkg.metadata {
        for (k, v) in [("title", &m.name), ("version", &m.version), ("description", &m.description)] {
            if !v.is_empty() {
                annotations.insert(format!("org.opencontainers.image.{k}"), v.clone());
            }
        }
    }
    let config = match format {
        PushFormat::Higress => {
            let spec = match (&pkg.spec_yaml, &pkg.metadata) {
                (Some(s), _) => Some(s.clone()),
                (None, Some(m)) => Some(crate::metadata::to_spec_yaml(m)?),
                (None, None) => None,
            };
            let mut add = |media_type: &str, title: &str, data: Vec<u8>| {
                layers.push(descriptor(media_type, &data, Some(title)));
                blobs.push((title.to_string(), Bytes::from(data)));
            };
            if let Some(spec) = spec {
                add(HIGRESS_SPEC, "spec.yaml", spec.into_bytes());
            }
            if let Some(readme) = &pkg.readme {
                add(HIGRESS_README, "README.md", readme.clone().into_bytes());
            }
            let tar_gz = pack_plugin_wasm(&pkg.module)?;
            let diff_id = {
                // The uncompressed tar's digest, as an OCI image config expects.
                let mut tar = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&tar_gz[..]), &mut tar)
                    .map_err(|e| Error::io("plugin.tar.gz", e))?;
                Digest::of(&tar)
            };
            add(OCI_LAYER_TAR_GZIP, "plugin.tar.gz", tar_gz);
            let config = json!({
                "architecture": "wasm",
                "os": "wasip1",
                "config": {},
                "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
            });
            (OCI_CONFIG, config)
        }
        PushFormat::Cncf => {
            layers.push(descriptor(CNCF_WASM_LAYER, &pkg.module, Some(PLUGIN_WASM)));
            blobs.push((PLUGIN_WASM.to_string(), Bytes::from(pkg.module.clone())));
            (
                CNCF_WASM_CONFIG,
                json!({ "architecture": "wasm", "os": "wasip1", "layerDigests": [module_digest.to_string()] }),
            )
        }
    };
    let config_bytes = serde_json::to_vec(&config.1).map_err(|e| Error::bad("config", e.to_string()))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: None,
        config: descriptor(config.0, &config_bytes, None),
        layers,
        annotations: Some(annotations).filter(|a| !a.is_empty()),
    };
    blobs.push(("config".into(), Bytes::from(config_bytes)));
    let manifest = Bytes::from(serde_json::to_vec(&manifest).map_err(|e| Error::bad("manifest", e.to_string()))?);
    Ok(BuiltImage { manifest_digest: Digest::of(&manifest), blobs, manifest, module_digest })
}

/// Uploads a built image under the reference's tag (or by digest). Returns the manifest digest.
pub async fn push(
    registry: &Registry,
    image: &ImageRef,
    built: &BuiltImage,
    on_blob: &(dyn Fn(&str, usize) + Send + Sync),
) -> Result<Digest> {
    for (what, data) in &built.blobs {
        on_blob(what, data.len());
        registry.push_blob(image, data.clone(), what).await?;
    }
    registry.push_manifest(image, built.manifest.clone(), OCI_MANIFEST).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Format, classify};

    #[test]
    fn layouts_are_deterministic_and_readable() {
        let pkg = PluginPackage {
            module: b"\0asm\x01\0\0\0".to_vec(),
            metadata: Some(PluginMetadata { name: "x".into(), version: "1.0.0".into(), ..Default::default() }),
            spec_yaml: None,
            readme: Some("# x\n".into()),
        };
        for (format, expect) in [(PushFormat::Higress, Format::Higress), (PushFormat::Cncf, Format::CncfWasm)] {
            let a = build_image(&pkg, format).unwrap();
            assert_eq!(a.manifest_digest, build_image(&pkg, format).unwrap().manifest_digest);
            let m: Manifest = serde_json::from_slice(&a.manifest).unwrap();
            assert_eq!(classify("x", &m, &Limits::default()).unwrap().format, expect);
        }
        let m: Manifest = serde_json::from_slice(&build_image(&pkg, PushFormat::Higress).unwrap().manifest).unwrap();
        let titles: Vec<_> = m.layers.iter().map(|l| l.title().unwrap()).collect();
        assert_eq!(titles, ["spec.yaml", "README.md", "plugin.tar.gz"]);
        assert!(build_image(&PluginPackage { module: b"nope".to_vec(), ..pkg }, PushFormat::Higress).is_err());
    }
}
