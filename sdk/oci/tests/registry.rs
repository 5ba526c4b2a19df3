//! Push/pull round trips against a real registry, for every layout, by tag and by digest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]

use wasmplug_oci::media::*;
use wasmplug_oci::{Error, Format, MetadataSource, PluginPackage, PushFormat, build_image, pull, push};
use wasmplug_testkit::registry::images::*;
use wasmplug_testkit::registry::{Options, TestRegistry, module};

fn no_progress(_: &str, _: usize) {}

#[tokio::test]
async fn higress_layout_round_trip_by_tag_and_digest() {
    let r = TestRegistry::start(Options::default());
    let reg = client(&r.host);
    let wasm = module("hello-world");
    let mut pkg = PluginPackage::from_module("hello_world.wasm", wasm.clone()).unwrap();
    pkg.readme = Some("# hello-world\n".into());
    let built = build_image(&pkg, PushFormat::Higress).unwrap();
    let tagged = image(&r.host, "plugins/hello-world:1.0.0");
    let digest = push(&reg, &tagged, &built, &no_progress).await.unwrap();
    assert_eq!(digest, built.manifest_digest);

    let by_tag = pull(&reg, &tagged, None, None).await.unwrap();
    assert_eq!(by_tag.format, Format::Higress);
    assert_eq!(by_tag.module, wasm);
    assert_eq!(by_tag.module_digest.to_string(), wasmplug_oci::Digest::of(&wasm).to_string());
    assert_eq!(by_tag.manifest_digest, digest);
    assert_eq!(by_tag.metadata_source, Some(MetadataSource::SpecYaml));
    let meta = by_tag.metadata.unwrap();
    assert_eq!(meta.name, "hello-world");
    assert!(meta.config_schema.unwrap()["properties"]["mockEnable"].is_object());
    assert_eq!(by_tag.readme.as_deref(), Some("# hello-world\n"));
    let layers: Vec<_> = by_tag.manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(layers, [HIGRESS_SPEC, HIGRESS_README, OCI_LAYER_TAR_GZIP]);

    let by_digest = image(&r.host, &format!("plugins/hello-world@{digest}"));
    assert_eq!(pull(&reg, &by_digest, None, None).await.unwrap().module, wasm);
    let both = image(&r.host, &format!("plugins/hello-world:1.0.0@{digest}"));
    assert_eq!(pull(&reg, &both, Some(&digest), None).await.unwrap().module, wasm);
}

#[tokio::test]
async fn cncf_artifact_round_trip_reads_metadata_from_the_module() {
    let r = TestRegistry::start(Options::default());
    let reg = client(&r.host);
    let wasm = module("request-block");
    let built = build_image(&PluginPackage::from_module("m", wasm.clone()).unwrap(), PushFormat::Cncf).unwrap();
    let img = image(&r.host, "plugins/request-block:cncf");
    push(&reg, &img, &built, &no_progress).await.unwrap();
    let pulled = pull(&reg, &img, None, None).await.unwrap();
    assert_eq!(pulled.format, Format::CncfWasm);
    assert_eq!(pulled.module, wasm);
    assert_eq!(pulled.manifest.config.media_type, CNCF_WASM_CONFIG);
    assert_eq!(pulled.metadata_source, Some(MetadataSource::ModuleSection));
    assert_eq!(pulled.metadata.unwrap().name, "request-block");
}

#[tokio::test]
async fn compat_layouts_and_index_are_pulled() {
    let r = TestRegistry::start(Options::default());
    let reg = client(&r.host);
    let wasm = module("hello-world");
    let tgz = tar_gz(&[("plugin.wasm", tar::EntryType::Regular, &wasm)]);
    let cases = [
        (
            "docker",
            DOCKER_MANIFEST,
            ("application/vnd.docker.container.image.v1+json", &br#"{"rootfs":{}}"#[..]),
            vec![(DOCKER_LAYER_TAR_GZIP, tgz.clone())],
            Format::DockerImage,
        ),
        ("oci", OCI_MANIFEST, OCI_EMPTY_CONFIG, vec![(OCI_LAYER_TAR_GZIP, tgz.clone())], Format::OciImage),
        (
            "artifact",
            OCI_MANIFEST,
            (MODULE_WASM_CONFIG, &b"{}"[..]),
            vec![(MODULE_WASM_LAYER, wasm.clone()), (HIGRESS_README, b"# doc".to_vec())],
            Format::ModuleWasmArtifact,
        ),
    ];
    let mut digests = Vec::new();
    for (tag, mt, config, layers, format) in cases {
        let img = image(&r.host, &format!("compat/hello:{tag}"));
        let d = push_raw(&reg, &img, mt, config, &layers).await;
        let pulled = pull(&reg, &img, None, None).await.unwrap();
        assert_eq!((pulled.format, &pulled.module), (format, &wasm), "{tag}");
        digests.push((d, mt));
    }
    // An index with a wasm/wasip1 entry next to a linux one.
    let (oci_digest, _) = &digests[1];
    let (docker_digest, _) = &digests[0];
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": docker_digest.to_string(), "size": 1, "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": oci_digest.to_string(), "size": 1, "platform": {"architecture": "wasm", "os": "wasip1"}}]});
    let img = image(&r.host, "compat/hello:index");
    let index_digest = push_manifest_value(&reg, &img, OCI_INDEX, &index).await;
    let pulled = pull(&reg, &img, Some(&index_digest), None).await.unwrap();
    assert_eq!((pulled.format, pulled.manifest_digest), (Format::OciImage, index_digest));
}

#[tokio::test]
async fn wrong_and_unknown_digests_are_refused() {
    let r = TestRegistry::start(Options::default());
    let reg = client(&r.host);
    let built =
        build_image(&PluginPackage::from_module("m", module("hello-world")).unwrap(), PushFormat::Higress).unwrap();
    let img = image(&r.host, "plugins/hello:1");
    let digest = push(&reg, &img, &built, &no_progress).await.unwrap();
    let other = wasmplug_oci::Digest::of(b"something else");
    // Expected digest (sha256 field) differs from what the tag points at.
    let err = pull(&reg, &img, Some(&other), None).await.unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected, actual, .. } if *expected == other.to_string() && *actual == digest.to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("plugins/hello:1"), "{err}");
    // A digest reference that the repository does not have.
    let err = pull(&reg, &image(&r.host, &format!("plugins/hello@{other}")), None, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = pull(&reg, &image(&r.host, "plugins/hello:nope"), None, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}
