//! Standalone mode end to end on disk: the real hello-world and request-block modules (built for
//! wasm32-wasip1) referenced with file:// urls, resolved, validated against the schema embedded in
//! each module, rendered, with a status per object.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use serde_json::Value;
use wasmplug_controller::render::ModuleSource;
use wasmplug_controller::standalone::{Options, Report, run};
use wasmplug_controller::status::is_ready;
use wasmplug_testkit::wasm::plugin_module;

fn manifest(name: &str, url: &str, extra: &str) -> String {
    format!(
        "apiVersion: wasmplug.io/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: {name}\n  namespace: gw\nspec:\n  url: {url}\n{extra}"
    )
}

fn cond<'a>(r: &'a Report, kind: &str) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    r.status.conditions.iter().find(|c| c.type_ == kind).unwrap()
}

/// The smallest binary module that declares Higress's proxy-wasm ABI 0.2.100.
fn higress_abi_module() -> Vec<u8> {
    let name = b"proxy_abi_version_0_2_100";
    let section = |id: u8, body: Vec<u8>| [vec![id, body.len() as u8], body].concat();
    let export = [vec![1, name.len() as u8], name.to_vec(), vec![0, 0]].concat();
    [
        b"\0asm\x01\0\0\0".to_vec(),
        section(1, vec![1, 0x60, 0, 0]),
        section(3, vec![1, 0]),
        section(7, export),
        section(10, vec![1, 2, 0, 0x0b]),
    ]
    .concat()
}

fn setup(dir: &Path) -> (String, String) {
    let hello = format!("file://{}", plugin_module("hello-world").display());
    let block = format!("file://{}", plugin_module("request-block").display());
    let bare = dir.join("bare.wasm");
    std::fs::write(&bare, b"\0asm\x01\0\0\0").unwrap();
    let m = dir.join("manifests");
    std::fs::create_dir(&m).unwrap();
    let w = |f: &str, t: String| std::fs::write(m.join(f), t).unwrap();
    w(
        "a-hello.yaml",
        manifest(
            "hello",
            &hello,
            "  phase: AUTHN\n  priority: 10\n  targets: [envoy, higress, istio]\n  defaultConfig: {}\n",
        ),
    );
    w(
        "b-block.yaml",
        manifest(
            "block",
            &block,
            "  phase: AUTHZ\n  defaultConfig:\n    block_urls: [/admin]\n  matchRules:\n  - domain: ['*.example.com']\n    config: {blocked_code: 451}\n",
        ) + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n",
    );
    w(
        "c-bad-config.yaml",
        manifest(
            "bad-config",
            &block,
            "  defaultConfig: {block_urls: [x]}\n  matchRules:\n  - ingress: [api]\n    config: {typo: 1}\n",
        ),
    );
    w("d-digest.yaml", manifest("wrong-digest", &hello, &format!("  sha256: '{}'\n", "0".repeat(64))));
    // Unquoted, YAML reads 64 zeros as a number: that object is refused, the others go on.
    w("d-unquoted.yaml", manifest("unquoted", &hello, &format!("  sha256: {}\n", "0".repeat(64))));
    w("e-noschema.yaml", manifest("no-schema", &format!("file://{}", bare.display()), ""));
    w("f-scheme.yaml", manifest("bad-scheme", "ftp://x/y", ""));
    w("g-missing.yaml", manifest("missing", "file:///nonexistent/x.wasm", ""));
    let higress = dir.join("higress-abi.wasm");
    std::fs::write(&higress, higress_abi_module()).unwrap();
    let higress = format!("file://{}", higress.display());
    w("h-abi-envoy.yaml", manifest("abi-for-envoy", &higress, "  targets: [higress, envoy]\n"));
    w("h-abi-higress.yaml", manifest("abi-for-higress", &higress, "  targets: [higress]\n"));
    (hello, block)
}

#[tokio::test]
async fn renders_ready_plugins_and_reports_each_failure() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let out = dir.path().join("out");
    let opts = Options {
        manifests: dir.path().join("manifests"),
        output: out.clone(),
        cache: None,
        module_server: ModuleSource::default(),
        preflight: Some(Default::default()),
    };
    let reports = run(&opts).await.unwrap();
    let ids: Vec<&str> = reports.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "gw/hello",
            "gw/block",
            "gw/bad-config",
            "gw/wrong-digest",
            "gw/unquoted",
            "gw/no-schema",
            "gw/bad-scheme",
            "gw/missing",
            "gw/abi-for-envoy",
            "gw/abi-for-higress"
        ]
    );
    let r = |id: &str| reports.iter().find(|r| r.id == id).unwrap();

    assert!(is_ready(&r("gw/hello").status), "{:#?}", r("gw/hello").status);
    assert!(is_ready(&r("gw/block").status), "{:#?}", r("gw/block").status);
    assert_eq!(r("gw/block").status.schema_source.as_deref(), Some("wasmplug.plugin"));

    let bad = r("gw/bad-config");
    assert_eq!(
        (cond(bad, "ConfigValid").status.as_str(), cond(bad, "ConfigValid").reason.as_str()),
        ("False", "SchemaViolation")
    );
    let v = &bad.status.config_violations;
    assert!(
        v.iter().any(|v| v.rule_index == Some(0) && v.pointer == "/matchRules/0/config" && v.message.contains("typo")),
        "{v:#?}"
    );
    assert_eq!(cond(bad, "Ready").reason, "SchemaViolation");

    assert_eq!(cond(r("gw/wrong-digest"), "ResolvedRefs").reason, "DigestMismatch");
    let unquoted = cond(r("gw/unquoted"), "Accepted");
    assert_eq!(unquoted.reason, "InvalidSpec");
    assert!(unquoted.message.contains("expected a string"), "{}", unquoted.message);
    assert_eq!(cond(r("gw/no-schema"), "ConfigValid").reason, "NoSchema");
    assert!(!is_ready(&r("gw/no-schema").status), "no schema is never a pass");
    assert_eq!(cond(r("gw/bad-scheme"), "Accepted").status, "False");
    assert!(cond(r("gw/bad-scheme"), "Accepted").message.contains("ftp://x/y"));
    assert_eq!(cond(r("gw/missing"), "ResolvedRefs").reason, "ModuleUnreadable");
    // Upstream Envoy refuses Higress's ABI 0.2.100: not delivered to it, and status says why.
    let refused = cond(r("gw/abi-for-envoy"), "ResolvedRefs");
    assert_eq!((refused.status.as_str(), refused.reason.as_str()), ("False", "UnsupportedAbi"));
    assert!(
        refused.message.contains("ABI 0.2.100") && refused.message.contains("spec.targets lists `envoy`"),
        "{}",
        refused.message
    );
    assert_eq!(cond(r("gw/abi-for-higress"), "ResolvedRefs").status, "True", "Higress loads ABI 0.2.100");

    // Only the ready plugins are rendered; the filter chain is in phase order.
    let chain: Value = serde_json::from_str(&std::fs::read_to_string(out.join("envoy-filters.json")).unwrap()).unwrap();
    let names: Vec<&str> = chain.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["gw.hello", "gw.block"]);
    let block = &chain[1]["typed_config"]["config"];
    let sha = block["vm_config"]["code"]["remote"]["sha256"].as_str().unwrap();
    let module = std::fs::read(out.join(format!("modules/sha256/{sha}.wasm"))).unwrap();
    assert_eq!(wasmplug_oci::Digest::of(&module).hex(), sha, "the served module is the one pinned");
    let cfg: Value = serde_json::from_str(block["configuration"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(cfg["_rules_"][0]["_match_domain_"][0], "*.example.com");
    assert!(out.join("gw.hello.higress.yaml").is_file() && out.join("gw.hello.istio.yaml").is_file());
    assert!(!out.join("gw.block.higress.yaml").exists(), "block targets envoy only");
    assert!(out.join("gw.bad-config.status.yaml").is_file());
}

#[test]
fn the_binary_prints_statuses_and_exits_2_when_some_are_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmplug-controller"))
        .arg("--manifests")
        .arg(dir.path().join("manifests"))
        .arg("--output")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("gw/hello\tReady"), "{stdout}");
    assert!(stdout.contains("gw/wrong-digest\tNotReady"), "{stdout}");
    assert!(stdout.contains("violation /matchRules/0/config"), "{stdout}");
}

/// oci:// urls in standalone mode, from a real registry through the binary's cache: an image by
/// tag, the same pinned by its digest, a wrong digest and a missing repository.
#[test]
fn the_binary_resolves_oci_images_through_its_cache() {
    let registry = wasmplug_testkit::registry::TestRegistry::start(wasmplug_testkit::registry::Options::default());
    let host = registry.host.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let digest = rt.block_on(async {
        let config = wasmplug_oci::RegistryConfig { insecure_registries: vec![host.clone()], ..Default::default() };
        let reg = wasmplug_oci::Registry::new(config).unwrap();
        let module = std::fs::read(plugin_module("request-block")).unwrap();
        let pkg = wasmplug_oci::PluginPackage::from_module("plugin.wasm", module).unwrap();
        let built = wasmplug_oci::build_image(&pkg, wasmplug_oci::PushFormat::Higress).unwrap();
        let image = wasmplug_oci::ImageRef::parse(&format!("{host}/plugins/request-block:1.0.0")).unwrap();
        wasmplug_oci::push(&reg, &image, &built, &|_, _| {}).await.unwrap().hex().to_string()
    });
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m).unwrap();
    let url = format!("oci://{host}/plugins/request-block:1.0.0");
    let cfg = "  defaultConfig: {block_urls: [/admin]}\n";
    let docs = [
        manifest("by-tag", &url, cfg),
        manifest("by-digest", &format!("oci://{host}/plugins/request-block@sha256:{digest}"), cfg),
        manifest("wrong-digest", &url, &format!("  sha256: '{}'\n{cfg}", "1".repeat(64))),
        manifest("missing", &format!("oci://{host}/plugins/nothing:1.0.0"), cfg),
    ];
    std::fs::write(m.join("plugins.yaml"), docs.join("---\n")).unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wasmplug-controller"))
            .arg("--manifests")
            .arg(&m)
            .arg("--output")
            .arg(dir.path().join("out"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["--insecure-registry", &host])
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("gw/by-tag\tReady\tsha256:{digest}")), "{stdout}");
    assert!(stdout.contains(&format!("gw/by-digest\tReady\tsha256:{digest}")), "{stdout}");
    assert!(stdout.contains("gw/wrong-digest\tNotReady") && stdout.contains("DigestMismatch"), "{stdout}");
    assert!(stdout.contains("gw/missing\tNotReady") && stdout.contains("plugins/nothing"), "{stdout}");
    let higress = std::fs::read_to_string(dir.path().join("out/gw.by-tag.status.yaml")).unwrap();
    assert!(higress.contains("schemaSource: spec.yaml"), "{higress}");

    // The second run is served from the cache: it works with the registry gone.
    drop(registry);
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("gw/by-digest\tReady\tsha256:{digest}")), "{stdout}");
    assert!(stdout.contains(&format!("gw/by-tag\tReady\tsha256:{digest}")), "{stdout}");
}
