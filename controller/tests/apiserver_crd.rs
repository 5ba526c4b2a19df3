//! The CRDs against a real Kubernetes API server (apiextensions-apiserver + etcd, see
//! `controller/testenv`): what a user sees when creating objects. Our `WasmPlugin` is stored
//! with its spec intact, every CEL/OpenAPI rule of `src/crd.rs` is enforced with its message, the
//! examples in `deploy/examples/` are accepted, status and printer columns work, and the objects
//! rendered for Higress and Istio are accepted by those projects' WasmPlugin CRDs.
//!
//! Needs `make apiserver-tools` (or `APISERVER_BIN`/`ETCD_BIN`); without the binaries it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use wasmplug_controller::WasmPlugin;
use wasmplug_controller::render::{Plugin, higress_wasmplugin, istio_wasmplugin};
use wasmplug_controller::resolve::ResolvedModule;
use wasmplug_testenv::TestCluster;

const SHA: &str = "abababababababababababababababababababababababababababababababab";

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn read(rel: &str) -> String {
    let path = repo_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).unwrap().into_iter().filter(|d| !d.is_null()).collect()
}

/// The API resource of a WasmPlugin in `group` (ours, Higress's or Istio's).
fn wasmplugin_resource(group: &str) -> ApiResource {
    ApiResource {
        group: group.to_string(),
        version: "v1alpha1".to_string(),
        api_version: format!("{group}/v1alpha1"),
        kind: "WasmPlugin".to_string(),
        plural: "wasmplugins".to_string(),
    }
}

/// Server-side apply with strict field validation, as `kubectl apply --server-side` does: a
/// field the schema does not know is an error instead of being dropped silently.
fn strict_apply() -> PatchParams {
    PatchParams::apply("wasmplug-test").force().validation_strict()
}

/// A valid spec to break one field at a time.
fn base_spec() -> Value {
    json!({
        "url": "oci://registry.example.com/plugins/request-block:1.0.0",
        "sha256": SHA,
        "phase": "AUTHZ",
        "priority": 10,
        "defaultConfig": {"block_urls": ["swagger.html"]},
        "matchRules": [{"ingress": ["default/foo"], "config": {"block_bodies": ["hello"]}}],
    })
}

/// Creates a WasmPlugin with `spec` as raw JSON and returns the API server's refusal.
async fn refused(api: &Api<DynamicObject>, name: &str, spec: Value) -> kube::core::Status {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "wasmplug.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => panic!("{name}: the API server accepted {}", serde_json::to_string(&obj.data).unwrap()),
        Err(kube::Error::Api(status)) => *status,
        Err(e) => panic!("{name}: {e}"),
    }
}

async fn assert_refused(api: &Api<DynamicObject>, name: &str, spec: Value, expected: &[&str]) {
    let status = refused(api, name, spec).await;
    assert_eq!(status.code, 422, "{name}: {status:?}");
    for part in expected {
        assert!(status.message.contains(part), "{name}: {part:?} not in the API server's message: {}", status.message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_enforces_the_wasmplugin_crd() {
    let started = Instant::now();
    let cluster = TestCluster::start().await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("TestCluster::start: {:?}", started.elapsed());

    let crds = Instant::now();
    for file in [
        "deploy/crd.yaml",
        "controller/tests/fixtures/crds/higress-wasmplugin.yaml",
        "controller/tests/fixtures/crds/istio-wasmplugin.yaml",
    ] {
        cluster.install_crds(&read(file)).await.unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    eprintln!("three CRDs installed and Established: {:?}", crds.elapsed());

    valid_plugin_round_trips(&cluster).await;
    rules_are_enforced_with_their_messages(&cluster).await;
    rendered_objects_fit_the_peer_crds(&cluster).await;
    examples_are_accepted(&cluster).await;
    status_subresource_and_printer_columns(&cluster).await;
    any_namespace_name_is_accepted(&cluster).await;
    eprintln!("whole test: {:?}", started.elapsed());
}

/// Higress's documented request-block manifest (with our apiVersion) is stored as written.
async fn valid_plugin_round_trips(cluster: &TestCluster) {
    let text = read("controller/tests/fixtures/higress-request-block.yaml");
    let plugin: WasmPlugin = serde_saphyr::from_str(&text).unwrap();
    let ns = plugin.metadata.namespace.clone().unwrap();
    let api: Api<WasmPlugin> = Api::namespaced(cluster.client(), &ns);
    let created = api.create(&PostParams::default(), &plugin).await.unwrap();
    assert!(created.metadata.uid.is_some());

    let back = api.get("request-block").await.unwrap();
    assert_eq!(back.spec, plugin.spec, "the spec changed on the way through the API server");
    // Free-form configs keep every field (x-kubernetes-preserve-unknown-fields).
    let default_config = back.spec.default_config.as_ref().unwrap();
    assert_eq!(default_config["block_urls"], json!(["swagger.html"]));
    assert_eq!(back.spec.match_rules.len(), 3);
    assert_eq!(back.spec.match_rules[0].ingress, vec!["default/foo".to_string()]);
    assert_eq!(back.spec.match_rules[0].config.as_ref().unwrap()["block_bodies"], json!(["hello world"]));
    assert_eq!(back.spec.match_rules[1].domain, vec!["*.example.com".to_string(), "test.com".to_string()]);
    assert!(back.spec.match_rules[2].config_disable);

    // Nested free-form values of any JSON type survive too.
    let raw: Api<DynamicObject> = Api::namespaced_with(cluster.client(), &ns, &wasmplugin_resource("wasmplug.io"));
    let mut spec = base_spec();
    spec["defaultConfig"] = json!({"n": 1.5, "deep": {"list": [1, "two", {"three": null}], "flag": true}});
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "free-form"}, "spec": spec,
    }))
    .unwrap();
    raw.patch("free-form", &strict_apply(), &Patch::Apply(&obj)).await.unwrap();
    let back = raw.get("free-form").await.unwrap();
    assert_eq!(back.data["spec"]["defaultConfig"], spec["defaultConfig"]);
}

/// Each rule of `src/crd.rs`, broken once: the API server answers 422 with our message or the
/// field's path.
async fn rules_are_enforced_with_their_messages(cluster: &TestCluster) {
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client(), "rules", &wasmplugin_resource("wasmplug.io"));
    let with = |path: &[&str], value: Value| {
        let mut spec = base_spec();
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut spec;
        for p in parents {
            at = &mut at[*p];
        }
        at[*last] = value;
        spec
    };
    const URL_MSG: &str = "url must be oci://, https://, http:// or file:// (no scheme means oci://), without spaces";
    const SHA_MSG: &str = "sha256 must be 64 lowercase hex digits (no sha256: prefix), or empty";
    const RULE_MSG: &str = "a match rule needs at least one of ingress, domain or service";

    assert_refused(&api, "url-ftp", with(&["url"], json!("ftp://x")), &["spec.url", URL_MSG]).await;
    assert_refused(&api, "url-space", with(&["url"], json!("oci://registry.example.com/a b")), &["spec.url", URL_MSG])
        .await;
    assert_refused(&api, "url-bare-space", with(&["url"], json!("registry/a b")), &["spec.url", URL_MSG]).await;
    assert_refused(&api, "url-empty", with(&["url"], json!("")), &["spec.url", "at least 1 chars long"]).await;
    assert_refused(
        &api,
        "url-long",
        with(&["url"], json!(format!("oci://r/{}", "a".repeat(2048)))),
        &["spec.url", "may not be more than 2048 bytes"],
    )
    .await;
    assert_refused(&api, "sha-upper", with(&["sha256"], json!(SHA.to_uppercase())), &["spec.sha256", SHA_MSG]).await;
    assert_refused(&api, "sha-short", with(&["sha256"], json!("abc123")), &["spec.sha256", SHA_MSG]).await;
    assert_refused(
        &api,
        "sha-prefix",
        with(&["sha256"], json!(format!("sha256:{}", &SHA[..57]))),
        &["spec.sha256", SHA_MSG],
    )
    .await;
    assert_refused(
        &api,
        "rule-no-match",
        with(&["matchRules"], json!([{"config": {"a": 1}}])),
        &["spec.matchRules[0]", RULE_MSG],
    )
    .await;
    assert_refused(
        &api,
        "rule-empty-lists",
        with(&["matchRules"], json!([{"ingress": ["default/foo"]}, {"ingress": [], "domain": [], "config": {}}])),
        &["spec.matchRules[1]", RULE_MSG],
    )
    .await;
    assert_refused(
        &api,
        "phase-late",
        with(&["phase"], json!("LATE")),
        &["spec.phase", "Unsupported value: \"LATE\"", "\"AUTHN\""],
    )
    .await;
    assert_refused(
        &api,
        "fail-strategy",
        with(&["failStrategy"], json!("FAIL_SOMETIMES")),
        &["spec.failStrategy", "Unsupported value"],
    )
    .await;
    assert_refused(
        &api,
        "target-unknown",
        with(&["targets"], json!(["nginx"])),
        &["spec.targets[0]", "Unsupported value"],
    )
    .await;
    assert_refused(
        &api,
        "target-twice",
        with(&["targets"], json!(["envoy", "envoy"])),
        &["spec.targets[1]", "Duplicate value"],
    )
    .await;
    let rules: Vec<Value> = (0..257).map(|i| json!({"domain": [format!("d{i}.example.com")]})).collect();
    assert_refused(
        &api,
        "rules-too-many",
        with(&["matchRules"], json!(rules)),
        &["spec.matchRules", "must have at most 256 items"],
    )
    .await;
    let env: Vec<Value> = (0..257).map(|i| json!({"name": format!("V{i}"), "value": "x"})).collect();
    assert_refused(
        &api,
        "env-too-many",
        with(&["vmConfig"], json!({"env": env})),
        &["spec.vmConfig.env", "must have at most 256 items"],
    )
    .await;
    assert_refused(
        &api,
        "env-value-long",
        with(&["vmConfig"], json!({"env": [{"name": "A", "value": "v".repeat(2049)}]})),
        &["spec.vmConfig.env[0].value", "may not be more than 2048 bytes"],
    )
    .await;
    let domains: Vec<String> = (0..257).map(|i| format!("d{i}.example.com")).collect();
    assert_refused(
        &api,
        "domains-too-many",
        with(&["matchRules"], json!([{"domain": domains}])),
        &["spec.matchRules[0].domain", "must have at most 256 items"],
    )
    .await;
    assert_refused(&api, "priority-type", with(&["priority"], json!("high")), &["spec.priority", "integer"]).await;

    // Everything above was refused: nothing was stored.
    assert!(api.list(&ListParams::default()).await.unwrap().items.is_empty());
    // And the rules let the valid forms through: no scheme, file://, empty sha256.
    for (name, url, sha) in [("no-scheme", "registry.example.com/p:1", ""), ("file", "file:///m.wasm", SHA)] {
        let mut spec = base_spec();
        spec["url"] = json!(url);
        spec["sha256"] = json!(sha);
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin", "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The golden Higress and Istio objects are accepted by those projects' CRDs, with no field
/// dropped (strict field validation) and the spec stored as rendered.
async fn rendered_objects_fit_the_peer_crds(cluster: &TestCluster) {
    for (file, group) in [
        ("controller/tests/golden/request-block.higress.yaml", "extensions.higress.io"),
        ("controller/tests/golden/request-block.istio.yaml", "extensions.istio.io"),
    ] {
        let doc = yaml_docs(&read(file)).remove(0);
        assert_eq!(doc["apiVersion"], format!("{group}/v1alpha1"), "{file}");
        let name = doc["metadata"]["name"].as_str().unwrap();
        let ns = doc["metadata"]["namespace"].as_str().unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.client(), ns, &wasmplugin_resource(group));
        api.patch(name, &strict_apply(), &Patch::Apply(&doc)).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        let back = api.get(name).await.unwrap();
        assert_eq!(back.data["spec"], doc["spec"], "{file}: the peer CRD changed the spec");
    }

    // FAIL_RELOAD exists for Envoy and Istio only: the Higress rendering must still be accepted.
    let mut plugin: WasmPlugin =
        serde_saphyr::from_str(&read("controller/tests/fixtures/higress-request-block.yaml")).unwrap();
    plugin.metadata.name = Some("fail-reload".to_string());
    plugin.spec.fail_strategy = Some(wasmplug_controller::crd::FailStrategy::FailReload);
    apply_rendered(cluster, &plugin, "request-block with FAIL_RELOAD").await;

    // The peer CRDs do check: what they refuse, and why the Higress rendering has no FAIL_RELOAD.
    let higress: Api<DynamicObject> =
        Api::namespaced_with(cluster.client(), "peers", &wasmplugin_resource("extensions.higress.io"));
    let istio: Api<DynamicObject> =
        Api::namespaced_with(cluster.client(), "peers", &wasmplugin_resource("extensions.istio.io"));
    for (api, group, spec, expected) in [
        (
            &higress,
            "extensions.higress.io",
            json!({"url": "oci://r/p", "failStrategy": "FAIL_RELOAD"}),
            "spec.failStrategy",
        ),
        (
            &higress,
            "extensions.higress.io",
            json!({"url": "oci://r/p", "targets": ["higress"]}),
            ".spec.targets: field not declared in schema",
        ),
        (&istio, "extensions.istio.io", json!({"url": "oci://r/p", "sha256": format!("sha256:{SHA}")}), "spec.sha256"),
        (
            &istio,
            "extensions.istio.io",
            json!({"url": "ftp://r/p"}),
            "url must have schema one of [http, https, file, oci]",
        ),
        (
            &istio,
            "extensions.istio.io",
            json!({"url": "oci://r/p", "vmConfig": {"env": [{"name": "A", "value": "x", "valueFrom": "HOST"}]}}),
            "value may only be set when valueFrom is INLINE",
        ),
    ] {
        let doc = json!({"apiVersion": format!("{group}/v1alpha1"), "kind": "WasmPlugin", "metadata": {"name": "bad"}, "spec": spec});
        let err = api.patch("bad", &strict_apply(), &Patch::Apply(&doc)).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{group} {spec}: {expected:?} not in {err}");
    }
}

/// Renders `plugin` for Higress and Istio and applies both to the vendored CRDs.
async fn apply_rendered(cluster: &TestCluster, plugin: &WasmPlugin, what: &str) {
    let module = ResolvedModule { image_digest: Some(format!("sha256:{SHA}")), module_sha256: "cd".repeat(32) };
    let plugin = Plugin { object: plugin, module: &module };
    for (group, rendered) in
        [("extensions.higress.io", higress_wasmplugin(&plugin)), ("extensions.istio.io", istio_wasmplugin(&plugin))]
    {
        let name = rendered["metadata"]["name"].as_str().unwrap();
        let ns = rendered["metadata"]["namespace"].as_str().unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.client(), ns, &wasmplugin_resource(group));
        api.patch(name, &strict_apply(), &Patch::Apply(&rendered))
            .await
            .unwrap_or_else(|e| panic!("{what} rendered for {group}: {e}\n{rendered}"));
        let back = api.get(name).await.unwrap();
        assert_eq!(back.data["spec"], rendered["spec"], "{what} rendered for {group}: the peer CRD changed the spec");
    }
}

/// Every WasmPlugin in `deploy/examples/*.yaml` is accepted (strict field validation). Objects
/// of Higress's or Istio's group go to the vendored CRDs.
async fn examples_are_accepted(cluster: &TestCluster) {
    let dir = repo_path("deploy/examples");
    if !dir.is_dir() {
        eprintln!("no deploy/examples/: skipped");
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut accepted = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let docs = serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in docs.into_iter().filter(|d| d["kind"] == "WasmPlugin") {
            let api_version = doc["apiVersion"].as_str().unwrap_or_default();
            let group = api_version.split('/').next().unwrap_or_default();
            assert!(
                ["wasmplug.io", "extensions.higress.io", "extensions.istio.io"].contains(&group),
                "{}: a WasmPlugin of unknown apiVersion {api_version:?}",
                file.display()
            );
            let name = doc["metadata"]["name"].as_str().unwrap_or_else(|| panic!("{}: no name", file.display()));
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or("examples");
            let api: Api<DynamicObject> = Api::namespaced_with(cluster.client(), ns, &wasmplugin_resource(group));
            api.patch(name, &strict_apply(), &Patch::Apply(&doc))
                .await
                .unwrap_or_else(|e| panic!("{} ({name}): {e}", file.display()));
            let what = format!("{}:{name}", file.file_name().unwrap().to_string_lossy());
            if group == "wasmplug.io" {
                // What the controller would write for it is accepted by Higress's and Istio's CRDs.
                let mut plugin: WasmPlugin = api.get(name).await.unwrap().try_parse().unwrap();
                plugin.metadata.managed_fields = None;
                apply_rendered(cluster, &plugin, &what).await;
            }
            accepted.push(what);
        }
    }
    assert!(!accepted.is_empty(), "deploy/examples/ has no WasmPlugin");
    eprintln!("deploy/examples: {} WasmPlugins accepted: {}", accepted.len(), accepted.join(", "));
}

/// The controller's status write goes through the status subresource; `kubectl get` shows the
/// printer columns, filled from spec and status.
async fn status_subresource_and_printer_columns(cluster: &TestCluster) {
    let ns = "status";
    let api: Api<WasmPlugin> = Api::namespaced(cluster.client(), ns);
    let raw: Api<DynamicObject> = Api::namespaced_with(cluster.client(), ns, &wasmplugin_resource("wasmplug.io"));
    let obj = json!({
        "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "with-status"}, "spec": base_spec(),
        // Status sent with the object itself is ignored: it belongs to the subresource.
        "status": {"imageDigest": "sha256:ignored"},
    });
    raw.patch("with-status", &strict_apply(), &Patch::Apply(&obj)).await.unwrap();
    let created = api.get("with-status").await.unwrap();
    assert!(created.status.as_ref().and_then(|s| s.image_digest.as_ref()).is_none(), "{:?}", created.status);
    let generation = created.metadata.generation.unwrap();

    let condition = |type_: &str, status: &str, reason: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": format!("{type_} is {status}"),
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": generation,
        })
    };
    // The whole status, as the controller applies it each time (server-side apply: fields the
    // manager leaves out are removed).
    let status = |ready: &str, reason: &str| {
        json!({
            "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
            "status": {
                "observedGeneration": generation,
                "imageDigest": format!("sha256:{SHA}"),
                "moduleSha256": format!("sha256:{SHA}"),
                "moduleSize": 12345,
                "schemaSource": "wasmplug.plugin",
                "conditions": [
                    condition("Accepted", "True", "Accepted"),
                    condition("ResolvedRefs", "True", "Resolved"),
                    condition("ConfigValid", "True", "Valid"),
                    condition("Ready", ready, reason),
                ],
                "configViolations": [{"ruleIndex": 0, "pointer": "/matchRules/0/config/x", "message": "not allowed"}],
            },
        })
    };
    let pp = PatchParams::apply("wasmplug-controller").force().validation_strict();
    let patched = api.patch_status("with-status", &pp, &Patch::Apply(status("True", "Ready"))).await.unwrap();
    let st = patched.status.unwrap();
    assert_eq!(st.conditions.len(), 4);
    assert_eq!(st.image_digest.as_deref(), Some(format!("sha256:{SHA}").as_str()));
    assert_eq!(st.config_violations[0].rule_index, Some(0));
    assert_eq!(patched.metadata.generation, Some(generation), "a status write must not bump the generation");

    // A condition of the same type replaces the old one (a map keyed by type).
    let patched =
        api.patch_status("with-status", &pp, &Patch::Apply(status("False", "ImagePullFailed"))).await.unwrap();
    let conditions = patched.status.unwrap().conditions;
    let ready: Vec<_> = conditions.iter().filter(|c| c.type_ == "Ready").collect();
    assert_eq!(conditions.len(), 4, "{conditions:?}");
    assert_eq!(ready.len(), 1, "{conditions:?}");
    assert_eq!(ready[0].status, "False");

    // A condition missing its required fields is refused (a merge patch replaces the list).
    let bad = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let err = api.patch_status("with-status", &PatchParams::default(), &Patch::Merge(&bad)).await.unwrap_err();
    assert!(err.to_string().contains("status.conditions[0].reason"), "{err}");

    // The printer columns, as served.
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client());
    let crd = crds.get("wasmplugins.wasmplug.io").await.unwrap();
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    let columns: Vec<(String, String)> =
        version.additional_printer_columns.iter().flatten().map(|c| (c.name.clone(), c.json_path.clone())).collect();
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Phase", "Priority", "Ready", "Digest", "Age"], "{columns:?}");
    assert_eq!(crd.spec.names.short_names, Some(vec!["wplug".to_string()]));

    // What `kubectl get wasmplugins` prints: the server renders the columns as a Table.
    let path = format!("/apis/wasmplug.io/v1alpha1/namespaces/{ns}/wasmplugins/with-status");
    let table = cluster.get_table(&path).await.unwrap();
    let headers: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(headers, ["Name", "Phase", "Priority", "Ready", "Digest", "Age"], "{table}");
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "with-status");
    assert_eq!(cells[1], "AUTHZ");
    assert_eq!(cells[2], 10);
    assert_eq!(cells[3], "False");
    assert_eq!(cells[4], format!("sha256:{SHA}"));
}

/// This server has no Namespace objects: any namespace name is accepted, and lists across
/// namespaces see everything.
async fn any_namespace_name_is_accepted(cluster: &TestCluster) {
    let mut spec = base_spec();
    spec["targets"] = json!(["envoy"]);
    for ns in ["default", "never-created", "kube-system"] {
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.client(), ns, &wasmplugin_resource("wasmplug.io"));
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin", "metadata": {"name": "anywhere"}, "spec": spec,
        }))
        .unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("{ns}: {e}"));
    }
    let all: Api<WasmPlugin> = Api::all(cluster.client());
    let everywhere = all.list(&ListParams::default().fields("metadata.name=anywhere")).await.unwrap();
    assert_eq!(everywhere.items.len(), 3);
}
