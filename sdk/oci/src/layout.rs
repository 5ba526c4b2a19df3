//! Which layout a manifest is, and where its module, spec.yaml and README are.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::media::*;

/// The image layouts read (all of them) and written (Higress and CNCF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Higress: spec.yaml, README(s), icon, and last `plugin.tar.gz`.
    Higress,
    /// OCI image whose last tar.gz layer holds `plugin.wasm` (Istio's "compat" image).
    OciImage,
    /// Docker image whose last tar.gz layer holds `plugin.wasm`.
    DockerImage,
    /// Two layers, one of them `application/vnd.module.wasm.content.layer.v1+wasm`.
    ModuleWasmArtifact,
    /// CNCF Wasm artifact: config `application/vnd.wasm.config.v0+json`, one `application/wasm` layer.
    CncfWasm,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Higress => "higress",
            Format::OciImage => "oci-image",
            Format::DockerImage => "docker-image",
            Format::ModuleWasmArtifact => "module-wasm-artifact",
            Format::CncfWasm => "cncf-wasm",
        }
    }
}

/// How the module is stored in its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleEncoding {
    Raw,
    TarGz,
}

/// Where to find things in a manifest's layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub format: Format,
    pub module_layer: usize,
    pub encoding: ModuleEncoding,
    pub spec_layer: Option<usize>,
    pub readme_layer: Option<usize>,
}

fn is_tar_gzip(media_type: &str) -> bool {
    media_type == OCI_LAYER_TAR_GZIP || media_type == DOCKER_LAYER_TAR_GZIP
}

fn is_known_layer(media_type: &str) -> bool {
    is_tar_gzip(media_type)
        || matches!(
            media_type,
            "application/vnd.oci.image.layer.v1.tar"
                | "application/vnd.docker.image.rootfs.diff.tar"
                | HIGRESS_SPEC
                | HIGRESS_README
                | HIGRESS_ICON
                | MODULE_WASM_LAYER
                | CNCF_WASM_LAYER
        )
        || (media_type.starts_with(HIGRESS_README_PREFIX) && media_type.ends_with("+markdown"))
}

/// Classifies an image manifest. Errors name the image and the offending layer.
pub fn classify(image: &str, manifest: &Manifest, limits: &Limits) -> Result<Plan> {
    let bad = |reason: String| Error::bad(image, reason);
    if manifest.schema_version != 2 {
        return Err(bad(format!("unsupported manifest schemaVersion {}", manifest.schema_version)));
    }
    let layers = &manifest.layers;
    if layers.is_empty() {
        return Err(bad("the manifest has no layers".into()));
    }
    if layers.len() > limits.max_layers {
        return Err(bad(format!(
            "the manifest has {} layers, more than the limit of {}",
            layers.len(),
            limits.max_layers
        )));
    }
    for (i, l) in layers.iter().enumerate() {
        if !is_known_layer(&l.media_type) {
            return Err(bad(format!("layer {i} has an unknown media type `{}`", l.media_type)));
        }
    }
    let find = |mt: &str| layers.iter().position(|l| l.media_type == mt);
    let count = |mt: &str| layers.iter().filter(|l| l.media_type == mt).count();
    let spec_layer = find(HIGRESS_SPEC);
    let readme_layer = find(HIGRESS_README);

    if manifest.config.media_type == CNCF_WASM_CONFIG || count(CNCF_WASM_LAYER) > 0 {
        if count(CNCF_WASM_LAYER) != 1 || layers.len() != 1 {
            return Err(bad(format!("a CNCF Wasm artifact has exactly one `{CNCF_WASM_LAYER}` layer")));
        }
        return Ok(Plan {
            format: Format::CncfWasm,
            module_layer: 0,
            encoding: ModuleEncoding::Raw,
            spec_layer: None,
            readme_layer: None,
        });
    }
    if let Some(i) = find(MODULE_WASM_LAYER) {
        if layers.len() > 2 || count(MODULE_WASM_LAYER) != 1 {
            return Err(bad(format!("a Wasm artifact has at most two layers, one of them `{MODULE_WASM_LAYER}`")));
        }
        return Ok(Plan {
            format: Format::ModuleWasmArtifact,
            module_layer: i,
            encoding: ModuleEncoding::Raw,
            spec_layer,
            readme_layer,
        });
    }
    let last = layers.len() - 1;
    if !is_tar_gzip(&layers[last].media_type) {
        return Err(bad(format!(
            "the last layer has media type `{}`; expected a tar.gzip layer holding plugin.wasm",
            layers[last].media_type
        )));
    }
    let docker = manifest.media_type.as_deref() == Some(DOCKER_MANIFEST);
    let higress = layers.iter().any(|l| !is_tar_gzip(&l.media_type) && !l.media_type.contains(".tar"));
    let format = match (higress, docker) {
        (true, _) => Format::Higress,
        (false, true) => Format::DockerImage,
        (false, false) => Format::OciImage,
    };
    Ok(Plan { format, module_layer: last, encoding: ModuleEncoding::TarGz, spec_layer, readme_layer })
}

/// Picks the manifest to use from an index: the single entry, or the one for wasm/wasip1.
pub fn pick_from_index(image: &str, index: &Index, limits: &Limits) -> Result<Descriptor> {
    let bad = |reason: String| Error::bad(image, reason);
    if index.manifests.len() > limits.max_layers {
        return Err(bad(format!(
            "the index has {} entries, more than the limit of {}",
            index.manifests.len(),
            limits.max_layers
        )));
    }
    let usable: Vec<&Descriptor> =
        index.manifests.iter().filter(|d| d.media_type == OCI_MANIFEST || d.media_type == DOCKER_MANIFEST).collect();
    let wasm = usable
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.architecture == "wasm" || p.os == "wasip1" || p.os == "wasi"));
    match (wasm, usable.as_slice()) {
        (Some(d), _) => Ok((*d).clone()),
        (None, [only]) => Ok((*only).clone()),
        (None, []) => Err(bad("the index has no usable image manifest entry".into())),
        (None, _) => Err(bad("the index has several image manifests and none for wasm/wasip1".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(mt: &str) -> Descriptor {
        Descriptor {
            media_type: mt.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            annotations: None,
            platform: None,
        }
    }

    fn manifest(mt: Option<&str>, config: &str, layers: &[&str]) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: mt.map(String::from),
            artifact_type: None,
            config: desc(config),
            layers: layers.iter().map(|l| desc(l)).collect(),
            annotations: None,
        }
    }

    fn format_of(m: &Manifest) -> Result<Format> {
        classify("img", m, &Limits::default()).map(|p| p.format)
    }

    #[test]
    fn recognises_every_layout() {
        let higress = manifest(
            Some(OCI_MANIFEST),
            OCI_CONFIG,
            &[HIGRESS_SPEC, HIGRESS_README, "application/vnd.module.wasm.doc.v1.en+markdown", OCI_LAYER_TAR_GZIP],
        );
        let plan = classify("img", &higress, &Limits::default()).unwrap();
        assert_eq!(
            (plan.format, plan.module_layer, plan.spec_layer, plan.readme_layer),
            (Format::Higress, 3, Some(0), Some(1))
        );
        assert_eq!(
            format_of(&manifest(Some(OCI_MANIFEST), OCI_CONFIG, &[OCI_LAYER_TAR_GZIP])).unwrap(),
            Format::OciImage
        );
        assert_eq!(
            format_of(&manifest(None, OCI_CONFIG, &[OCI_LAYER_TAR_GZIP, OCI_LAYER_TAR_GZIP])).unwrap(),
            Format::OciImage
        );
        assert_eq!(
            format_of(&manifest(
                Some(DOCKER_MANIFEST),
                "application/vnd.docker.container.image.v1+json",
                &[DOCKER_LAYER_TAR_GZIP]
            ))
            .unwrap(),
            Format::DockerImage
        );
        let art = manifest(Some(OCI_MANIFEST), MODULE_WASM_CONFIG, &[MODULE_WASM_LAYER, HIGRESS_SPEC]);
        assert_eq!(classify("img", &art, &Limits::default()).unwrap().encoding, ModuleEncoding::Raw);
        assert_eq!(
            format_of(&manifest(Some(OCI_MANIFEST), CNCF_WASM_CONFIG, &[CNCF_WASM_LAYER])).unwrap(),
            Format::CncfWasm
        );
    }

    #[test]
    fn refuses_broken_manifests() {
        let cases = [
            (manifest(None, OCI_CONFIG, &[]), "no layers"),
            (manifest(None, OCI_CONFIG, &[OCI_LAYER_TAR_GZIP; 17]), "more than the limit"),
            (manifest(None, OCI_CONFIG, &["application/x-evil"]), "unknown media type"),
            (manifest(None, OCI_CONFIG, &[OCI_LAYER_TAR_GZIP, HIGRESS_SPEC]), "last layer"),
            (manifest(None, CNCF_WASM_CONFIG, &[CNCF_WASM_LAYER, CNCF_WASM_LAYER]), "exactly one"),
            (manifest(None, MODULE_WASM_CONFIG, &[MODULE_WASM_LAYER, HIGRESS_SPEC, HIGRESS_README]), "at most two"),
        ];
        for (m, want) in cases {
            let err = format_of(&m).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn index_entries() {
        let l = Limits::default();
        let mut wasm = desc(OCI_MANIFEST);
        wasm.platform = Some(Platform { architecture: "wasm".into(), os: "wasip1".into() });
        let mut amd = desc(OCI_MANIFEST);
        amd.platform = Some(Platform { architecture: "amd64".into(), os: "linux".into() });
        assert_eq!(pick_from_index("i", &Index { manifests: vec![amd.clone(), wasm.clone()] }, &l).unwrap(), wasm);
        assert_eq!(pick_from_index("i", &Index { manifests: vec![amd.clone()] }, &l).unwrap(), amd);
        assert!(pick_from_index("i", &Index { manifests: vec![amd.clone(), amd.clone()] }, &l).is_err());
        let err = pick_from_index("i", &Index { manifests: vec![desc(OCI_INDEX)] }, &l).unwrap_err();
        assert!(err.to_string().contains("no usable"), "{err}");
    }
}
