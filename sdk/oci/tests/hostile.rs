//! Hostile and broken images, served by a real registry: each gives a clear error naming the
//! image, bounded memory, and nothing in the cache.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]

use tar::EntryType::{Link, Regular, Symlink};
use wasmplug_oci::media::*;
use wasmplug_oci::{Cache, Error, Limits, Registry, RegistryConfig, pull};
use wasmplug_testkit::registry::images::*;
use wasmplug_testkit::registry::{Options, TestRegistry};

const WASM: &[u8] = b"\0asm\x01\0\0\0\0\x08\x04name\x02\0\0";

async fn expect_err(reg: &Registry, r: &TestRegistry, tag: &str, want: &str) -> Error {
    let img = image(&r.host, &format!("bad/img:{tag}"));
    let err = pull(reg, &img, None, None).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(want), "{tag}: `{text}` should mention `{want}`");
    assert!(text.contains(&format!("bad/img:{tag}")), "{tag}: `{text}` should name the image");
    err
}

#[tokio::test]
async fn hostile_layers_and_manifests() {
    let r = TestRegistry::start(Options::default());
    let reg = client(&r.host);
    let tgz = |entries: &[(&str, tar::EntryType, &[u8])]| tar_gz(entries);
    let zeros = vec![0u8; 48 << 20];
    let layouts: Vec<(&str, Vec<(&str, Vec<u8>)>, &str)> = vec![
        ("no-magic", vec![(OCI_LAYER_TAR_GZIP, tgz(&[("plugin.wasm", Regular, b"#!/bin/sh\necho pwned\n")]))], "magic"),
        ("dotdot", vec![(OCI_LAYER_TAR_GZIP, tgz(&[("../../plugin.wasm", Regular, WASM)]))], "`..`"),
        ("absolute", vec![(OCI_LAYER_TAR_GZIP, tgz(&[("/etc/plugin.wasm", Regular, WASM)]))], "absolute"),
        ("symlink", vec![(OCI_LAYER_TAR_GZIP, tgz(&[("plugin.wasm", Symlink, b"")]))], "link"),
        ("hardlink", vec![(OCI_LAYER_TAR_GZIP, tgz(&[("plugin.wasm", Link, b"")]))], "link"),
        (
            "duplicate",
            vec![(OCI_LAYER_TAR_GZIP, tgz(&[("plugin.wasm", Regular, WASM), ("./plugin.wasm", Regular, WASM)]))],
            "more than one",
        ),
        (
            "gzip-bomb",
            vec![(OCI_LAYER_TAR_GZIP, tgz(&[("zeros", Regular, &zeros), ("plugin.wasm", Regular, WASM)]))],
            "decompressed",
        ),
        ("no-layers", vec![], "no layers"),
        ("unknown-type", vec![("application/x-shellscript", b"echo".to_vec())], "unknown media type"),
        ("too-many", (0..17).map(|i| (OCI_LAYER_TAR_GZIP, vec![i as u8])).collect(), "more than the limit"),
        ("raw-not-wasm", vec![(MODULE_WASM_LAYER, b"MZ\x90\0 not wasm".to_vec())], "magic"),
    ];
    let limits = Limits { max_module_bytes: 8 << 20, ..Limits::default() };
    let reg_small =
        Registry::new(RegistryConfig { insecure_registries: vec![r.host.clone()], limits, ..Default::default() })
            .unwrap();
    for (tag, layers, want) in layouts {
        let config = if tag == "raw-not-wasm" { (MODULE_WASM_CONFIG, &b"{}"[..]) } else { OCI_EMPTY_CONFIG };
        push_raw(&reg, &image(&r.host, &format!("bad/img:{tag}")), OCI_MANIFEST, config, &layers).await;
        let err = expect_err(&reg_small, &r, tag, want).await;
        if tag == "gzip-bomb" {
            assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        }
    }
}

#[tokio::test]
async fn declared_sizes_are_checked_before_download() {
    let r = TestRegistry::start(Options::default());
    let reg = client(&r.host);
    let wasm = wasmplug_testkit::registry::padded_module(64 << 10);
    // A blob over the limit: an explicit error, not a truncated module.
    push_raw(
        &reg,
        &image(&r.host, "bad/img:big"),
        OCI_MANIFEST,
        (MODULE_WASM_CONFIG, b"{}"),
        &[(MODULE_WASM_LAYER, wasm.clone())],
    )
    .await;
    let limits = Limits { max_module_bytes: 16 << 10, ..Limits::default() };
    let small =
        Registry::new(RegistryConfig { insecure_registries: vec![r.host.clone()], limits, ..Default::default() })
            .unwrap();
    let err = expect_err(&small, &r, "big", "over the limit").await;
    assert!(
        matches!(err, Error::TooLarge { size, limit, .. } if size == wasm.len() as u64 && limit == 16 << 10),
        "{err}"
    );

    // A descriptor that claims 1 TiB: refused from the manifest alone.
    let img = image(&r.host, "bad/img:huge");
    reg.push_blob(&img, wasm.clone().into(), "layer").await.unwrap();
    reg.push_blob(&img, b"{}".to_vec().into(), "config").await.unwrap();
    let mut layer = desc(MODULE_WASM_LAYER, &wasm);
    layer["size"] = serde_json::json!(1u64 << 40);
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(MODULE_WASM_CONFIG, b"{}"), "layers": [layer]});
    push_manifest_value(&reg, &img, OCI_MANIFEST, &manifest).await;
    let err = expect_err(&reg, &r, "huge", "over the limit").await;
    assert!(matches!(err, Error::TooLarge { size, .. } if size == 1 << 40), "{err}");

    // A descriptor that claims more bytes than the blob has: the blob is truncated.
    let img = image(&r.host, "bad/img:truncated");
    let mut layer = desc(MODULE_WASM_LAYER, &wasm);
    layer["size"] = serde_json::json!(wasm.len() + 100);
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(MODULE_WASM_CONFIG, b"{}"), "layers": [layer]});
    push_manifest_value(&reg, &img, OCI_MANIFEST, &manifest).await;
    expect_err(&reg, &r, "truncated", "truncated").await;

    // A descriptor whose digest names another blob: wrong digest.
    let img = image(&r.host, "bad/img:wrong-digest");
    let other = wasmplug_testkit::registry::padded_module(1000);
    reg.push_blob(&img, other.clone().into(), "layer").await.unwrap();
    let mut layer = desc(MODULE_WASM_LAYER, &other);
    layer["size"] = serde_json::json!(wasm.len());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(MODULE_WASM_CONFIG, b"{}"), "layers": [layer]});
    push_manifest_value(&reg, &img, OCI_MANIFEST, &manifest).await;
    let err = pull(&reg, &img, None, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge { .. } | Error::BadImage { .. } | Error::Registry { .. } | Error::DigestMismatch { .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn index_without_a_usable_entry() {
    let r = TestRegistry::start(Options::default());
    let reg = client(&r.host);
    let img = image(&r.host, "bad/img:index");
    let some = wasmplug_oci::Digest::of(b"x").to_string();
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": some, "size": 10}]});
    // The registry checks that index entries exist; an entry of a foreign type is enough here.
    let nested = image(&r.host, "bad/img:nested");
    let inner = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
    let inner_digest = push_manifest_value(&reg, &nested, OCI_INDEX, &inner).await;
    let mut index = index;
    index["manifests"][0]["digest"] = serde_json::json!(inner_digest.to_string());
    push_manifest_value(&reg, &img, OCI_INDEX, &index).await;
    expect_err(&reg, &r, "index", "no usable image manifest").await;
}

#[tokio::test]
async fn failed_pulls_leave_nothing_in_the_cache() {
    let r = TestRegistry::start(Options::default());
    let reg = client(&r.host);
    let img = image(&r.host, "bad/img:symlink");
    push_raw(
        &reg,
        &img,
        OCI_MANIFEST,
        OCI_EMPTY_CONFIG,
        &[(OCI_LAYER_TAR_GZIP, tar_gz(&[("plugin.wasm", Symlink, b"")]))],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path(), reg).unwrap();
    assert!(cache.resolve(&img, None, None, None).await.is_err());
    for sub in ["modules/sha256", "manifests/sha256", "refs", "tmp"] {
        assert_eq!(std::fs::read_dir(dir.path().join(sub)).unwrap().count(), 0, "{sub}");
    }
    let everything: Vec<_> = walk(dir.path());
    assert!(everything.iter().all(|p| p.starts_with(dir.path())), "{everything:?}");
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}
