//! Crafting images: raw blobs and manifests pushed with the library's low-level calls.

use bytes::Bytes;
use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};
use wasmplug_oci::media::*;
use wasmplug_oci::{Digest, ImageRef, Registry, RegistryConfig, RetryPolicy};

pub fn client(host: &str) -> Registry {
    Registry::new(RegistryConfig {
        insecure_registries: vec![host.to_string()],
        retry: RetryPolicy { attempts: 3, initial_backoff: std::time::Duration::from_millis(20), ..Default::default() },
        ..Default::default()
    })
    .unwrap()
}

pub fn image(host: &str, repo_tag: &str) -> ImageRef {
    ImageRef::parse(&format!("oci://{host}/{repo_tag}")).unwrap()
}

pub fn desc(media_type: &str, data: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": Digest::of(data).to_string(), "size": data.len()})
}

/// A tar.gz with raw headers, so hostile names and link entries can be written.
pub fn tar_gz(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) { 0 } else { data.len() as u64 });
        h.set_mode(0o644);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.set_link_name("/etc/passwd").unwrap();
        }
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        let data: &[u8] = if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) { b"" } else { data };
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// Pushes blobs and a manifest made of (media type, bytes) layers. Returns the manifest digest.
pub async fn push_raw(
    reg: &Registry,
    image: &ImageRef,
    manifest_type: &str,
    config: (&str, &[u8]),
    layers: &[(&str, Vec<u8>)],
) -> Digest {
    let mut descs = Vec::new();
    for (mt, data) in layers {
        reg.push_blob(image, Bytes::from(data.clone()), "layer").await.unwrap();
        descs.push(desc(mt, data));
    }
    reg.push_blob(image, Bytes::from(config.1.to_vec()), "config").await.unwrap();
    let manifest =
        json!({"schemaVersion": 2, "mediaType": manifest_type, "config": desc(config.0, config.1), "layers": descs});
    push_manifest_value(reg, image, manifest_type, &manifest).await
}

pub async fn push_manifest_value(reg: &Registry, image: &ImageRef, media_type: &str, manifest: &Value) -> Digest {
    reg.push_manifest(image, Bytes::from(serde_json::to_vec(manifest).unwrap()), media_type).await.unwrap()
}

pub const OCI_EMPTY_CONFIG: (&str, &[u8]) = (OCI_CONFIG, br#"{"architecture":"wasm","os":"wasip1"}"#);
