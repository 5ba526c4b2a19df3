//! Interop with other OCI clients on a real registry: skopeo (Debian) and oras (PyPI oras-py,
//! in .venv; `make registry-tools` installs both).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use wasmplug_oci::media::*;
use wasmplug_oci::{Format, PluginPackage, PushFormat, build_image, pull, push};
use wasmplug_testkit::registry::images::*;
use wasmplug_testkit::registry::{Options, TestRegistry, module};

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(p.exists(), "{} is missing: run `make registry-tools`", p.display());
    p
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (run `make registry-tools`)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn no_progress(_: &str, _: usize) {}

#[tokio::test]
async fn skopeo_and_oras_read_our_images() {
    let r = TestRegistry::start(Options::default());
    let reg = client(&r.host);
    let wasm = module("hello-world");
    let mut pkg = PluginPackage::from_module("m", wasm.clone()).unwrap();
    pkg.readme = Some("# hello\n".into());
    for (tag, format) in [("higress", PushFormat::Higress), ("cncf", PushFormat::Cncf)] {
        let built = build_image(&pkg, format).unwrap();
        let img = image(&r.host, &format!("plugins/hello:{tag}"));
        let digest = push(&reg, &img, &built, &no_progress).await.unwrap();
        let target = format!("docker://{}/plugins/hello:{tag}", r.host);
        let raw = run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &target]));
        assert_eq!(raw.as_bytes(), &built.manifest[..], "{tag}");
        if format == PushFormat::Higress {
            // The full inspect parses the config as an OCI image config.
            let info: serde_json::Value =
                serde_json::from_str(&run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &target])))
                    .unwrap();
            assert_eq!(info["Digest"], digest.to_string());
            assert_eq!(info["Architecture"], "wasm");
        }
    }
    let out = tempfile::tempdir().unwrap();
    let script = format!(
        "import oras.client\nc = oras.client.OrasClient(hostname='{h}', insecure=True)\nprint(c.pull(target='{h}/plugins/hello:higress', outdir='{o}'))",
        h = r.host,
        o = out.path().display()
    );
    run(Command::new(python()).args(["-c", &script]));
    for f in ["spec.yaml", "README.md"] {
        assert!(out.path().join(f).exists(), "oras did not write {f}");
    }
    // oras-py unpacks a tar+gzip layer as a directory: plugin.wasm lands in the output directory.
    assert_eq!(std::fs::read(out.path().join("plugin.wasm")).unwrap(), wasm);
    let spec = std::fs::read_to_string(out.path().join("spec.yaml")).unwrap();
    assert_eq!(wasmplug_oci::metadata::from_spec_yaml("spec.yaml", &spec).unwrap().name, "hello-world");
}

#[tokio::test]
async fn we_read_what_oras_and_skopeo_push() {
    let r = TestRegistry::start(Options::default());
    let reg = client(&r.host);
    let wasm = module("hello-world");
    let dir = tempfile::tempdir().unwrap();
    // oras push of a Higress-style image, as Higress's own build does.
    std::fs::write(dir.path().join("plugin.tar.gz"), tar_gz(&[("plugin.wasm", tar::EntryType::Regular, &wasm)]))
        .unwrap();
    std::fs::write(
        dir.path().join("spec.yaml"),
        "apiVersion: 1.0.0\ninfo:\n  name: from-oras\n  version: 2.0.0\nspec:\n  phase: AUTHZ\n  priority: 10\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "# from oras\n").unwrap();
    let script = format!(
        "import os, oras.client\nos.chdir('{d}')\nc = oras.client.OrasClient(hostname='{h}', insecure=True)\nc.push(target='{h}/oras/plugin:1', files=['spec.yaml:{spec}', 'README.md:{readme}', 'plugin.tar.gz:{tgz}'])",
        d = dir.path().display(),
        h = r.host,
        spec = HIGRESS_SPEC,
        readme = HIGRESS_README,
        tgz = OCI_LAYER_TAR_GZIP
    );
    run(Command::new(python()).args(["-c", &script]));
    let pulled = pull(&reg, &image(&r.host, "oras/plugin:1"), None, None).await.unwrap();
    assert_eq!((pulled.format, &pulled.module), (Format::Higress, &wasm));
    let meta = pulled.metadata.unwrap();
    assert_eq!((meta.name.as_str(), meta.phase.as_str(), meta.priority), ("from-oras", "AUTHZ", 10));
    assert_eq!(pulled.readme.as_deref(), Some("# from oras\n"));

    // skopeo copy of an OCI compat image, converted to a Docker image on the way.
    let tgz = tar_gz(&[("plugin.wasm", tar::EntryType::Regular, &wasm)]);
    let config = br#"{"architecture":"wasm","os":"wasip1","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    push_raw(&reg, &image(&r.host, "src/plugin:1"), OCI_MANIFEST, (OCI_CONFIG, config), &[(OCI_LAYER_TAR_GZIP, tgz)])
        .await;
    for (dest, args) in [("copy/oci:1", vec![]), ("copy/docker:1", vec!["--format", "v2s2"])] {
        run(Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .args(&args)
            .arg(format!("docker://{}/src/plugin:1", r.host))
            .arg(format!("docker://{}/{dest}", r.host)));
        let pulled = pull(&reg, &image(&r.host, dest), None, None).await.unwrap();
        let want = if args.is_empty() { Format::OciImage } else { Format::DockerImage };
        assert_eq!((pulled.format, &pulled.module), (want, &wasm), "{dest}");
    }
    // skopeo copy of our Higress image keeps it readable.
    let built = build_image(&PluginPackage::from_module("m", wasm.clone()).unwrap(), PushFormat::Higress).unwrap();
    push(&reg, &image(&r.host, "ours/plugin:1"), &built, &no_progress).await.unwrap();
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{}/ours/plugin:1", r.host))
        .arg(format!("docker://{}/ours-copy/plugin:1", r.host)));
    let pulled = pull(&reg, &image(&r.host, "ours-copy/plugin:1"), None, None).await.unwrap();
    assert_eq!((pulled.format, pulled.manifest_digest), (Format::Higress, built.manifest_digest));
}
