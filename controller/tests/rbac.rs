//! The chart's RBAC grants exactly the API calls the controller makes. The controller runs
//! against the real API server through a client that records every request as (API group,
//! resource, verb) while it goes through everything it does: leader election, create, refuse,
//! apply and delete rendered objects, read a pull secret, write Events and status, clean up.
//!
//! Leases and Events are served by stand-in CRDs of the same group/version/kind (this server has
//! no coordination.k8s.io or events.k8s.io); Secrets (core/v1) come from a mock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use wasmplug_controller::WasmPlugin;
use wasmplug_controller::operator::leader::Election;
use wasmplug_controller::operator::{self, Context};
use wasmplug_testenv::TestCluster;

type Call = (String, String, String);

/// (group, resource[/subresource], verb) of a request, as RBAC sees it.
fn rbac_call(method: &http::Method, path: &str, query: &str) -> Call {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest),
        _ => panic!("unexpected path {path}"),
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] => rest,
        rest => rest,
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => panic!("unexpected path {path}"),
    };
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (m, _) => panic!("unexpected method {m}"),
    };
    (group, resource, verb.to_string())
}

/// Records every request; answers core/v1 Secrets from `secret`, the rest from the real server.
fn recording(real: Client, secret: Value, calls: Arc<Mutex<BTreeSet<Call>>>) -> Client {
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let (real, secret, calls) = (real.clone(), secret.clone(), calls.clone());
        async move {
            let (path, query) = (req.uri().path().to_string(), req.uri().query().unwrap_or_default().to_string());
            calls.lock().unwrap().insert(rbac_call(req.method(), &path, &query));
            if !path.starts_with("/api/v1/") {
                return real.send(req).await;
            }
            let response = http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(secret.to_string().into_bytes()))
                .unwrap();
            Ok::<_, kube::Error>(response)
        }
    });
    Client::new(service, "default")
}

/// The rules of every ClusterRole/Role in a multi-document YAML, as (group, resource, verb).
fn granted(yaml: &str) -> BTreeSet<Call> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
    let mut out = BTreeSet::new();
    for doc in docs.iter().filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role") {
        for rule in doc["rules"].as_array().unwrap() {
            for g in rule["apiGroups"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    for v in rule["verbs"].as_array().unwrap() {
                        let call = (g.as_str().unwrap().into(), r.as_str().unwrap().into(), v.as_str().unwrap().into());
                        out.insert(call);
                    }
                }
            }
        }
    }
    out
}

fn call(g: &str, r: &str, v: &str) -> Call {
    (g.into(), r.into(), v.into())
}

async fn wait_ready(api: &Api<WasmPlugin>, name: &str, generation: i64, ready: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let wp = api.get(name).await.unwrap();
        let st = wp.status.as_ref();
        let done = st.is_some_and(|s| {
            s.observed_generation == Some(generation)
                && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == ready)
        });
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "{name}: not Ready={ready} at generation {generation}: {st:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_grants_exactly_the_calls_the_controller_makes() {
    let cluster = TestCluster::start().await.expect("API server (run `make apiserver-tools`)");
    cluster.install_crds(include_str!("../../deploy/crd.yaml")).await.unwrap();
    cluster.install_crds(include_str!("fixtures/crds/higress-wasmplugin.yaml")).await.unwrap();
    cluster.install_crds(include_str!("fixtures/crds/istio-wasmplugin.yaml")).await.unwrap();
    cluster.install_crds(&wasmplug_testenv::stand_in_crd("coordination.k8s.io", "Lease", "leases")).await.unwrap();
    cluster.install_crds(&wasmplug_testenv::stand_in_crd("events.k8s.io", "Event", "events")).await.unwrap();
    let registry =
        wasmplug_testkit::registry::TestRegistry::start(wasmplug_testkit::registry::Options { auth: true, tls: false });
    let host = registry.host.clone();

    use base64::Engine as _;
    let docker = json!({ "auths": { &host: { "username": wasmplug_testkit::registry::USER, "password": wasmplug_testkit::registry::PASSWORD } } });
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": { "name": "regcred", "namespace": "gw", "resourceVersion": "1" },
        "data": { ".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(docker.to_string()) },
    });
    let calls = Arc::new(Mutex::new(BTreeSet::new()));
    let client = recording(cluster.client(), secret, calls.clone());

    // Push an image the pull secret opens.
    let config = wasmplug_oci::RegistryConfig {
        insecure_registries: vec![host.clone()],
        docker_config: Some(wasmplug_oci::DockerConfig::from_json(docker.to_string().as_bytes()).unwrap()),
        ..Default::default()
    };
    let reg = wasmplug_oci::Registry::new(config).unwrap();
    let module = std::fs::read(wasmplug_testkit::wasm::plugin_module("hello-world")).unwrap();
    let pkg = wasmplug_oci::PluginPackage::from_module("plugin.wasm", module).unwrap();
    let image = wasmplug_oci::ImageRef::parse(&format!("{host}/private/hello:v1")).unwrap();
    let built = wasmplug_oci::build_image(&pkg, wasmplug_oci::PushFormat::Higress).unwrap();
    wasmplug_oci::push(&reg, &image, &built, &|_, _| {}).await.unwrap();

    let cache = tempfile::tempdir().unwrap();
    let options = operator::Options {
        cache_dir: cache.path().to_path_buf(),
        insecure_registries: vec![host.clone()],
        leader_election: Some(Election {
            namespace: "wasmplug-system".into(),
            name: "wasmplug-controller".into(),
            identity: "rbac-test".into(),
            lease_duration: Duration::from_secs(3),
        }),
        ..Default::default()
    };
    let ctx = Context::new(client.clone(), options).unwrap();
    let serve = tokio::spawn(async move {
        let ctx = Arc::new(ctx);
        let election = ctx.options.leader_election.clone().unwrap();
        election.acquire(&ctx.client).await;
        let client = ctx.client.clone();
        tokio::select! {
            () = operator::run(ctx, Arc::new(AtomicBool::new(false))) => {},
            () = election.hold(&client) => {},
        }
    });

    // The test's own calls go around the recording client.
    let api: Api<WasmPlugin> = Api::namespaced(cluster.client(), "gw");
    let url = format!("oci://{host}/private/hello:v1");
    let wp: WasmPlugin = serde_json::from_value(json!({
        "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": { "name": "hello", "namespace": "gw" },
        "spec": { "url": url, "imagePullSecret": "regcred", "targets": ["envoy", "higress", "istio"] },
    }))
    .unwrap();
    api.create(&PostParams::default(), &wp).await.unwrap();
    wait_ready(&api, "hello", 1, "True").await;
    // Refused (an Event, status), then dropping targets (deletes rendered objects), then delete.
    let patch = json!({ "spec": { "defaultConfig": { "unknown": 1 } } });
    api.patch("hello", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_ready(&api, "hello", 2, "False").await;
    let patch = json!({ "spec": { "defaultConfig": null, "targets": ["envoy"] } });
    api.patch("hello", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_ready(&api, "hello", 3, "True").await;
    api.delete("hello", &DeleteParams::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.get_opt("hello").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "not released by the finalizer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The renewal loop has run at least once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    serve.abort();

    let made: BTreeSet<Call> = calls.lock().unwrap().clone();

    // Granted but not observable here, each for a documented reason.
    let unobservable: BTreeSet<Call> = [
        // Setting blockOwnerDeletion on the rendered objects' owner reference needs it where the
        // OwnerReferencesPermissionEnforcement admission plugin runs (not on this server).
        call("wasmplug.io", "wasmplugins/finalizers", "update"),
        // The Event recorder patches an Event when the same one repeats (a series).
        call("events.k8s.io", "events", "patch"),
        // The managed CA creates its CA Secret and keeps the gateway's certificate Secret: run
        // without gateway delivery here, and in tests/certificates.rs against a Secrets stand-in.
        call("", "secrets", "create"),
        call("", "secrets", "update"),
    ]
    .into();
    let chart = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/install.yaml")).unwrap();
    let leader = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/wasmplug/tests/golden/leader-election.yaml"
    ))
    .unwrap();
    let mut grants = granted(&chart);
    grants.extend(granted(&leader).into_iter().filter(|(g, _, _)| g == "coordination.k8s.io"));
    let missing: Vec<&Call> = made.difference(&grants).collect();
    assert!(
        missing.is_empty(),
        "the controller made calls the chart does not grant: {missing:?}\nall calls: {made:#?}"
    );
    let expected: BTreeSet<Call> = made.union(&unobservable).cloned().collect();
    let extra: Vec<&Call> = grants.difference(&expected).collect();
    assert!(extra.is_empty(), "the chart grants more than the controller uses: {extra:?}\nall calls: {made:#?}");
}
