//! The in-cluster controller against a real API server (apiextensions-apiserver + etcd) and a
//! real registry (Debian's docker-registry): create, edit, refuse, fix and delete WasmPlugins
//! and check what `kubectl get -o yaml` would show.
//!
//! The API server has no core/v1: pull secrets come from a mocked `/api/v1` in front of it
//! (every other request goes to the real server).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use wasmplug_controller::WasmPlugin;
use wasmplug_controller::operator::{self, Context};
use wasmplug_oci::{ImageRef, PluginPackage, PushFormat, Registry, RegistryConfig, build_image, push};
use wasmplug_testenv::TestCluster;
use wasmplug_testkit::registry::{Options as RegistryOptions, TestRegistry};
use wasmplug_testkit::wasm::plugin_module;

const CRD: &str = include_str!("../../deploy/crd.yaml");
const HIGRESS_CRD: &str = include_str!("fixtures/crds/higress-wasmplugin.yaml");

/// Pushes a module as `host/repo:tag` and returns the manifest digest (hex).
async fn push_module(host: &str, repo: &str, module: Vec<u8>, auth: Option<(&str, &str)>) -> String {
    let mut config = RegistryConfig { insecure_registries: vec![host.to_string()], ..Default::default() };
    if let Some((user, password)) = auth {
        let docker = json!({ "auths": { host: { "username": user, "password": password } } });
        config.docker_config = Some(wasmplug_oci::DockerConfig::from_json(docker.to_string().as_bytes()).unwrap());
    }
    let registry = Registry::new(config).unwrap();
    let image = ImageRef::parse(&format!("{host}/{repo}:v1")).unwrap();
    let built = build_image(&PluginPackage::from_module("plugin.wasm", module).unwrap(), PushFormat::Higress).unwrap();
    let digest = push(&registry, &image, &built, &|_, _| {}).await.unwrap();
    digest.hex().to_string()
}

fn module(name: &str) -> Vec<u8> {
    std::fs::read(plugin_module(name)).unwrap()
}

/// The server, a registry with the sample images, and the controller running in-process.
struct Setup {
    _cluster: TestCluster,
    client: Client,
    registry: TestRegistry,
    ctx: Arc<Context>,
    _cache: tempfile::TempDir,
}

/// `client_for` may wrap the server's client; it gets the registry's `host:port`.
async fn setup(client_for: impl FnOnce(Client, &str) -> Client, registry: RegistryOptions) -> Setup {
    let cluster = TestCluster::start().await.expect("API server (run `make apiserver-tools`)");
    cluster.install_crds(CRD).await.unwrap();
    // Higress's CRD only: Istio's is left out, so a plugin targeting Istio finds it missing.
    cluster.install_crds(HIGRESS_CRD).await.unwrap();
    let registry = TestRegistry::start(registry);
    let client = client_for(cluster.client(), &registry.host);
    let cache = tempfile::tempdir().unwrap();
    let options = operator::Options {
        cache_dir: cache.path().to_path_buf(),
        insecure_registries: vec![registry.host.clone()],
        concurrency: 4,
        ..Default::default()
    };
    let ctx = Arc::new(Context::new(client.clone(), options).unwrap());
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(operator::run(ctx.clone(), ready.clone()));
    // Ready (for /readyz) once the first list of WasmPlugins is in.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.load(std::sync::atomic::Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "the controller never reported its watch as synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Setup { _cluster: cluster, client, registry, ctx, _cache: cache }
}

fn plugin(name: &str, spec: Value) -> WasmPlugin {
    serde_json::from_value(json!({
        "apiVersion": "wasmplug.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": { "name": name, "namespace": "gw" },
        "spec": spec,
    }))
    .unwrap()
}

fn condition<'a>(wp: &'a WasmPlugin, kind: &str) -> Option<&'a Condition> {
    wp.status.as_ref()?.conditions.iter().find(|c| c.type_ == kind)
}

/// Polls the object until `done` holds (30 s), and returns it.
async fn wait_for(api: &Api<WasmPlugin>, name: &str, what: &str, done: impl Fn(&WasmPlugin) -> bool) -> WasmPlugin {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let current = api.get_opt(name).await.unwrap();
        if let Some(wp) = &current
            && done(wp)
        {
            return wp.clone();
        }
        assert!(Instant::now() < deadline, "{name}: timed out waiting for {what}; last seen: {current:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ready (True or False) for the object's current generation.
fn settled(wp: &WasmPlugin) -> bool {
    let generation = wp.metadata.generation;
    wp.status.as_ref().is_some_and(|s| s.observed_generation == generation)
        && condition(wp, "Ready").is_some_and(|c| c.observed_generation == generation)
}

fn higress_api(client: &Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("extensions.higress.io", "v1alpha1", "WasmPlugin"),
        "wasmplugins",
    );
    Api::namespaced_with(client.clone(), "gw", &ar)
}

async fn merge(api: &Api<WasmPlugin>, name: &str, patch: Value) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_ready_refused_fixed_deleted() {
    let s = setup(|c, _| c, RegistryOptions::default()).await;
    let digest = push_module(&s.registry.host, "plugins/request-block", module("request-block"), None).await;
    let api: Api<WasmPlugin> = Api::namespaced(s.client.clone(), "gw");
    let url = format!("oci://{}/plugins/request-block:v1", s.registry.host);
    let spec = json!({
        "url": url, "phase": "AUTHZ", "priority": 5, "targets": ["envoy", "higress"],
        "defaultConfig": { "block_urls": ["/admin"] },
        "matchRules": [{ "domain": ["*.example.com"], "config": { "blocked_code": 451 } }],
    });
    api.create(&PostParams::default(), &plugin("block", spec)).await.unwrap();

    // Ready, for generation 1, with the image digest and the finalizer.
    let wp = wait_for(&api, "block", "Ready", |w| settled(w) && condition(w, "Ready").unwrap().status == "True").await;
    let st = wp.status.as_ref().unwrap();
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(st.serving_generation, Some(1));
    assert_eq!(st.image_digest.as_deref(), Some(format!("sha256:{digest}").as_str()));
    // The Higress layout carries spec.yaml (written from the module section by `build_image`).
    assert_eq!(st.schema_source.as_deref(), Some("spec.yaml"));
    for kind in ["Accepted", "ResolvedRefs", "ConfigValid", "Ready"] {
        assert_eq!(condition(&wp, kind).unwrap().status, "True", "{kind}");
    }
    assert!(wp.metadata.finalizers.as_ref().unwrap().contains(&operator::FINALIZER.to_string()));
    // The Higress object: applied, owned, pinned to the digest, carrying the config.
    let higress = higress_api(&s.client).get("block").await.unwrap();
    assert_eq!(higress.metadata.owner_references.as_ref().unwrap()[0].uid, wp.metadata.uid.clone().unwrap());
    assert_eq!(higress.data["spec"]["sha256"], json!(digest));
    assert_eq!(higress.data["spec"]["defaultConfig"]["block_urls"], json!(["/admin"]));
    assert!(s.ctx.serving.borrow().contains_key("gw/block"));

    // Generation 2 breaks the schema in rule 0: refused, generation 1 keeps serving.
    merge(
        &api,
        "block",
        json!({ "spec": { "matchRules": [{ "domain": ["*.example.com"], "config": { "blocked_code": "x" } }] } }),
    )
    .await;
    let wp = wait_for(&api, "block", "generation 2 refused", settled).await;
    let st = wp.status.as_ref().unwrap();
    assert_eq!(st.observed_generation, Some(2));
    assert_eq!(st.serving_generation, Some(1));
    let valid = condition(&wp, "ConfigValid").unwrap();
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "SchemaViolation"));
    assert_eq!(st.config_violations[0].rule_index, Some(0));
    assert_eq!(st.config_violations[0].pointer, "/matchRules/0/config/blocked_code");
    let ready = condition(&wp, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("generation 1 keeps serving"), "{}", ready.message);
    let higress = higress_api(&s.client).get("block").await.unwrap();
    assert_eq!(higress.data["spec"]["matchRules"][0]["config"]["blocked_code"], json!(451), "last good kept");
    assert_eq!(s.ctx.serving.borrow()["gw/block"].generation, Some(1));

    // Generation 3 fixes it: Ready again, the Higress object follows.
    merge(
        &api,
        "block",
        json!({ "spec": { "matchRules": [{ "domain": ["*.example.com"], "config": { "blocked_code": 403 } }] } }),
    )
    .await;
    let wp = wait_for(&api, "block", "generation 3 Ready", |w| {
        settled(w) && w.metadata.generation == Some(3) && condition(w, "Ready").unwrap().status == "True"
    })
    .await;
    let st = wp.status.as_ref().unwrap();
    assert_eq!(st.serving_generation, Some(3));
    assert!(st.config_violations.is_empty(), "violations are cleared: {st:?}");
    let higress = higress_api(&s.client).get("block").await.unwrap();
    assert_eq!(higress.data["spec"]["matchRules"][0]["config"]["blocked_code"], json!(403));

    // Dropping the Higress target deletes the rendered object.
    merge(&api, "block", json!({ "spec": { "targets": ["envoy"] } })).await;
    wait_for(&api, "block", "generation 4", |w| settled(w) && w.metadata.generation == Some(4)).await;
    assert!(higress_api(&s.client).get_opt("block").await.unwrap().is_none());

    // Delete: the finalizer cleans up, then the object goes.
    merge(&api, "block", json!({ "spec": { "targets": ["envoy", "higress"] } })).await;
    wait_for(&api, "block", "generation 5 Ready", |w| settled(w) && w.metadata.generation == Some(5)).await;
    assert!(higress_api(&s.client).get_opt("block").await.unwrap().is_some());
    api.delete("block", &DeleteParams::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.get_opt("block").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the WasmPlugin was not released by its finalizer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(higress_api(&s.client).get_opt("block").await.unwrap().is_none(), "rendered object removed");
    assert!(!s.ctx.serving.borrow().contains_key("gw/block"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_is_reported_on_its_own_object() {
    let s = setup(|c, _| c, RegistryOptions::default()).await;
    let host = s.registry.host.clone();
    let digest = push_module(&host, "plugins/hello", module("hello-world"), None).await;
    push_module(&host, "plugins/raw", module("raw-hello"), None).await;
    let api: Api<WasmPlugin> = Api::namespaced(s.client.clone(), "gw");
    let hello = format!("oci://{host}/plugins/hello:v1");
    let cases = [
        ("good", json!({ "url": hello })),
        ("unreachable", json!({ "url": "oci://127.0.0.1:1/plugins/hello:v1" })),
        ("wrong-digest", json!({ "url": hello, "sha256": "0".repeat(64) })),
        ("no-schema", json!({ "url": format!("oci://{host}/plugins/raw:v1") })),
        ("missing-image", json!({ "url": format!("oci://{host}/plugins/nothing:v1") })),
        ("bad-default", json!({ "url": hello, "defaultConfig": { "nope": 1 } })),
        ("istio-missing", json!({ "url": hello, "targets": ["istio"] })),
        ("file-url", json!({ "url": "file:///etc/hostname" })),
    ];
    for (name, spec) in &cases {
        api.create(&PostParams::default(), &plugin(name, spec.clone())).await.unwrap();
    }
    let mut seen = BTreeMap::new();
    for (name, _) in &cases {
        let wp = wait_for(&api, name, "a settled status", settled).await;
        let ready = condition(&wp, "Ready").unwrap().clone();
        seen.insert(*name, (wp, ready));
    }
    let reason = |n: &str| (seen[n].1.status.clone(), seen[n].1.reason.clone(), seen[n].1.message.clone());
    assert_eq!(reason("good").0, "True");
    assert_eq!(seen["good"].0.status.as_ref().unwrap().image_digest, Some(format!("sha256:{digest}")));
    let (status, why, message) = reason("unreachable");
    assert_eq!((status.as_str(), why.as_str()), ("False", "ImageUnavailable"));
    assert!(message.contains("127.0.0.1:1"), "{message}");
    let (_, why, message) = reason("wrong-digest");
    assert_eq!(why, "DigestMismatch");
    assert!(message.contains(&"0".repeat(64)) && message.contains(&digest), "{message}");
    let (_, why, message) = reason("no-schema");
    assert_eq!(why, "NoSchema");
    assert!(message.contains("no config schema"), "{message}");
    let (_, why, message) = reason("missing-image");
    assert_eq!(why, "ImageUnavailable");
    assert!(message.contains("plugins/nothing"), "{message}");
    let (_, why, _) = reason("bad-default");
    assert_eq!(why, "SchemaViolation");
    assert_eq!(seen["bad-default"].0.status.as_ref().unwrap().config_violations[0].pointer, "/defaultConfig");
    let (_, why, message) = reason("istio-missing");
    assert_eq!(why, "TargetUnavailable");
    assert!(message.contains("extensions.istio.io/v1alpha1 WasmPlugin"), "{message}");
    let accepted = condition(&seen["file-url"].0, "Accepted").unwrap();
    assert_eq!((accepted.status.as_str(), accepted.reason.as_str()), ("False", "InvalidSpec"));
    assert!(accepted.message.contains("file://"), "{}", accepted.message);

    // A refused object is retried with backoff and stays refused; the good one stays Ready.
    let good = api.get("good").await.unwrap();
    assert_eq!(condition(&good, "Ready").unwrap().status, "True");
    let metrics = s.ctx.metrics.encode();
    assert!(metrics.contains("wasmplug_reconcile_errors_total{reason=\"DigestMismatch\"}"), "{metrics}");
    assert!(metrics.contains("wasmplug_reconciles_total{result=\"ready\"}"), "{metrics}");
}

/// A mocked `/api/v1` (Secrets) in front of the real server; records the paths asked for.
fn with_secrets(real: Client, secrets: BTreeMap<String, Value>, seen: Arc<Mutex<Vec<String>>>) -> Client {
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let (real, secrets, seen) = (real.clone(), secrets.clone(), seen.clone());
        async move {
            let path = req.uri().path().to_string();
            if !path.starts_with("/api/v1/") {
                return real.send(req).await;
            }
            seen.lock().unwrap().push(format!("{} {path}", req.method()));
            let (code, body) = match secrets.get(&path) {
                Some(secret) => (200, secret.clone()),
                None => (
                    404,
                    json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "secrets not found" }),
                ),
            };
            let response = http::Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(body.to_string().into_bytes()))
                .unwrap();
            Ok::<_, kube::Error>(response)
        }
    });
    Client::new(service, "default")
}

fn docker_secret(namespace: &str, name: &str, host: &str, user: &str, password: &str) -> (String, Value) {
    use base64::Engine as _;
    let config = json!({ "auths": { host: { "username": user, "password": password } } });
    let encoded = base64::engine::general_purpose::STANDARD.encode(config.to_string());
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": { "name": name, "namespace": namespace, "resourceVersion": "7" },
        "data": { ".dockerconfigjson": encoded },
    });
    (format!("/api/v1/namespaces/{namespace}/secrets/{name}"), secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_secrets_are_per_namespace_and_cached_images_do_not_leak() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let s = setup(
        move |real, host| {
            let mut secrets = BTreeMap::new();
            for (name, password) in [("regcred", wasmplug_testkit::registry::PASSWORD), ("wrong", "not-the-password")] {
                let (path, secret) = docker_secret("gw", name, host, wasmplug_testkit::registry::USER, password);
                secrets.insert(path, secret);
            }
            let mut opaque = docker_secret("gw", "opaque", host, "u", "p").1;
            opaque["type"] = json!("Opaque");
            secrets.insert("/api/v1/namespaces/gw/secrets/opaque".into(), opaque);
            with_secrets(real, secrets, seen2)
        },
        RegistryOptions { auth: true, tls: false },
    )
    .await;
    let host = s.registry.host.clone();
    let digest = push_module(
        &host,
        "private/hello",
        module("hello-world"),
        Some((wasmplug_testkit::registry::USER, wasmplug_testkit::registry::PASSWORD)),
    )
    .await;
    let api: Api<WasmPlugin> = Api::namespaced(s.client.clone(), "gw");
    let url = format!("oci://{host}/private/hello:v1");
    let with_secret = |secret: &str| json!({ "url": url, "imagePullSecret": secret });
    api.create(&PostParams::default(), &plugin("with-secret", with_secret("regcred"))).await.unwrap();
    let wp = wait_for(&api, "with-secret", "Ready", |w| {
        settled(w) && condition(w, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
    assert_eq!(wp.status.unwrap().image_digest, Some(format!("sha256:{digest}")));

    // The same image, now cached, without credentials or with wrong ones: refused.
    for (name, spec) in [
        ("anonymous", json!({ "url": url })),
        ("wrong-password", with_secret("wrong")),
        ("missing-secret", with_secret("absent")),
        ("opaque-secret", with_secret("opaque")),
    ] {
        api.create(&PostParams::default(), &plugin(name, spec)).await.unwrap();
        let wp = wait_for(&api, name, "refused", |w| {
            settled(w) && condition(w, "Ready").is_some_and(|c| c.status == "False")
        })
        .await;
        let refs = condition(&wp, "ResolvedRefs").unwrap();
        assert_eq!(refs.status, "False", "{name}: {refs:?}");
        match name {
            "missing-secret" => {
                assert!(refs.message.contains("gw/absent") && refs.message.contains("not found"), "{refs:?}")
            }
            "opaque-secret" => assert!(refs.message.contains("Opaque"), "{refs:?}"),
            _ => assert!(
                refs.message.contains("credentials cannot read it")
                    || refs.message.contains("401")
                    || refs.message.to_lowercase().contains("unauthorized"),
                "{name}: {refs:?}"
            ),
        }
    }
    // Secrets are read by name in the plugin's namespace only; never listed.
    let paths = seen.lock().unwrap().clone();
    assert!(!paths.is_empty());
    for p in &paths {
        assert!(p.starts_with("GET /api/v1/namespaces/gw/secrets/"), "unexpected core/v1 call: {p}");
    }
}
