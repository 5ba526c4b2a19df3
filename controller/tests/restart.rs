//! The last good state survives the controller: the real binary, SIGKILLed while the current
//! generation of a plugin is refused, and a new process with an empty module cache. Real API
//! server, registry and Envoy gateway, all over mutual TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use wasmplug_controller::WasmPlugin;
use wasmplug_testenv::TestCluster;
use wasmplug_testenv::gateway::{Pki, wait_for};
use wasmplug_testenv::process::{ControllerProcess, Ports, gateway};
use wasmplug_testenv::system::push_plugin;
use wasmplug_testkit::registry::{Options, TestRegistry};
use wasmplug_testkit::upstream::Upstream;

const TIMEOUT: Duration = Duration::from_secs(30);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wasmplug-controller"))
}

fn status(rt: &tokio::runtime::Runtime, api: &Api<WasmPlugin>) -> serde_json::Value {
    serde_json::to_value(rt.block_on(api.get("block")).unwrap().status).unwrap()
}

fn condition(st: &serde_json::Value, kind: &str) -> serde_json::Value {
    st["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == kind)).cloned().unwrap_or_default()
}

#[test]
fn sigkill_while_refused_then_empty_cache_serves_the_last_good_generation() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cluster = rt.block_on(TestCluster::start()).expect("API server (run `make apiserver-tools`)");
    rt.block_on(cluster.install_crds(include_str!("../../deploy/crd.yaml"))).unwrap();
    let registry = TestRegistry::start(Options::default());
    let url = rt.block_on(push_plugin(&registry.host, "plugins/request-block", "request-block"));
    let (pki, ports, upstream) = (Pki::new(), Ports::free(), Upstream::start());
    let api: Api<WasmPlugin> = Api::namespaced(cluster.client(), "gw");

    // Generation 1 serves.
    let first = ControllerProcess::start(bin(), cluster.kubeconfig_path(), &pki, &registry.host, &ports);
    let gw = gateway(&pki, &ports, upstream.port(), "gw-1");
    let wp: WasmPlugin = serde_json::from_value(json!({
        "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": { "name": "block", "namespace": "gw" },
        "spec": { "url": url, "defaultConfig": { "block_urls": ["/blocked"] } },
    }))
    .unwrap();
    rt.block_on(api.create(&PostParams::default(), &wp)).unwrap();
    wait_for(TIMEOUT, || gw.get("/blocked").status == 403)
        .unwrap_or_else(|| panic!("gen 1 never served\n{}", first.logs()));

    // Generation 2 is refused by the schema: status says so and generation 1 keeps serving.
    let bad = json!({ "spec": { "defaultConfig": { "block_urls": "not a list" } } });
    rt.block_on(api.patch("block", &PatchParams::default(), &Patch::Merge(&bad))).unwrap();
    wait_for(TIMEOUT, || condition(&status(&rt, &api), "ConfigValid")["observedGeneration"] == 2)
        .unwrap_or_else(|| panic!("gen 2 never checked\n{}", first.logs()));
    let before = status(&rt, &api);
    assert_eq!(condition(&before, "ConfigValid")["status"], "False", "{before:#}");
    assert_eq!(before["servingGeneration"], 1, "{before:#}");
    assert_eq!(before["serving"]["generation"], 1, "{before:#}");

    // SIGKILL, and a new process with an empty cache: the gateway answers as generation 1 did
    // while no controller runs and after the new one has taken over.
    first.kill();
    let killed = Instant::now();
    // (Its cache directory is new: ControllerProcess makes one per process.)
    let mut second = ControllerProcess::start(bin(), cluster.kubeconfig_path(), &pki, &registry.host, &ports);
    let mut answers = Vec::new();
    let restored = wait_for(TIMEOUT, || {
        answers.push(gw.get("/blocked").status);
        second.metric("wasmplug_serving_plugins") == Some(1.0)
    });
    assert!(restored.is_some(), "the new process never served the plugin\n{}", second.logs());
    second.wait("/readyz", |r| r.status == 200);
    for _ in 0..20 {
        answers.push(gw.get("/blocked").status);
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("kill → restored in the new process: {:?} ({} requests)", killed.elapsed(), answers.len());
    assert!(answers.iter().all(|s| *s == 403), "generation 1 served throughout: {answers:?}");
    assert!(second.logs().contains("restored the last good generation from status.serving"), "{}", second.logs());
    let after = status(&rt, &api);
    let sha = after["serving"]["moduleSha256"].as_str().unwrap();
    let pulled = second.cache.path().join(format!("modules/modules/sha256/{sha}.wasm"));
    assert!(pulled.is_file(), "the module was pulled again into the new cache: {}", pulled.display());
    assert_eq!(after["servingGeneration"], 1, "{after:#}");
    assert_eq!(after["serving"], before["serving"], "the record stays as it was");
    assert_eq!(condition(&after, "ConfigValid")["status"], "False", "generation 2 stays refused");

    // A gateway that starts now, from nothing, gets generation 1 from the new process.
    drop(gw);
    let fresh = gateway(&pki, &ports, upstream.port(), "gw-1");
    wait_for(TIMEOUT, || fresh.get("/blocked").status == 403)
        .unwrap_or_else(|| panic!("a new gateway never got gen 1\n{}\n{}", second.logs(), fresh.logs()));
    assert_eq!(fresh.get("/fine").status, 200);
}
