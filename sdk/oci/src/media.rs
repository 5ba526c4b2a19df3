//! Media types and the manifest documents, parsed leniently (unknown fields ignored) but checked strictly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Higress: plugin metadata, READMEs, icon (each one file per layer).
pub const HIGRESS_SPEC: &str = "application/vnd.module.wasm.spec.v1+yaml";
pub const HIGRESS_README: &str = "application/vnd.module.wasm.doc.v1+markdown";
pub const HIGRESS_README_PREFIX: &str = "application/vnd.module.wasm.doc.v1.";
pub const HIGRESS_ICON: &str = "application/vnd.module.wasm.icon.v1+png";

/// The Istio/Envoy Gateway two-layer artifact.
pub const MODULE_WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
pub const MODULE_WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// The CNCF TAG-Runtime Wasm artifact.
pub const CNCF_WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
pub const CNCF_WASM_LAYER: &str = "application/wasm";

/// `org.opencontainers.image.title`: the file name oras gives a layer.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// Every manifest media type a pull asks for.
pub const ACCEPTED_MANIFESTS: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn title(&self) -> Option<&str> {
        self.annotations.as_ref()?.get(TITLE_ANNOTATION).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

/// An image manifest (OCI or Docker v2 schema 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index / manifest list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

/// Size limits applied while pulling. Sizes are checked against declared sizes before anything
/// is allocated, and again while bytes arrive: going over is an error, never a truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A manifest or index document.
    pub max_manifest_bytes: u64,
    /// One blob as stored in the registry (compressed).
    pub max_blob_bytes: u64,
    /// The Wasm module, and the total bytes a tar.gz layer may decompress to.
    pub max_module_bytes: u64,
    /// spec.yaml, README and config blobs.
    pub max_metadata_bytes: u64,
    /// Layers in one manifest, entries in one index, entries in one tar.
    pub max_layers: usize,
    pub max_tar_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: 256 << 20,
            max_module_bytes: 256 << 20,
            max_metadata_bytes: 4 << 20,
            max_layers: 16,
            max_tar_entries: 64,
        }
    }
}
