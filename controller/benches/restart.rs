//! `make bench-restart`: restart to serving. The controller binary is SIGKILLed while generation 2
//! of a plugin is refused and started again with an empty module cache, five times; each time:
//! how long until it serves generation 1 again (restored from `status.serving`, the module pulled
//! again by digest) and answers gateways (`/readyz`), and how long a gateway started right then
//! takes to block as generation 1 does. Real API server, registry and Envoy. Prints Markdown.

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

const ROUNDS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(30);

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let bin = Path::new(env!("CARGO_BIN_EXE_wasmplug-controller"));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cluster = rt.block_on(TestCluster::start()).expect("API server (run `make apiserver-tools`)");
    rt.block_on(cluster.install_crds(include_str!("../../deploy/crd.yaml"))).unwrap();
    let registry = TestRegistry::start(Options::default());
    let url = rt.block_on(push_plugin(&registry.host, "plugins/request-block", "request-block"));
    let (pki, ports, upstream) = (Pki::new(), Ports::free(), Upstream::start());
    let api: Api<WasmPlugin> = Api::namespaced(cluster.client(), "gw");

    let mut controller = ControllerProcess::start(bin, cluster.kubeconfig_path(), &pki, &registry.host, &ports);
    let wp: WasmPlugin = serde_json::from_value(json!({
        "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": { "name": "block", "namespace": "gw" },
        "spec": { "url": url, "defaultConfig": { "block_urls": ["/blocked"] } },
    }))
    .unwrap();
    rt.block_on(api.create(&PostParams::default(), &wp)).unwrap();
    let gw = gateway(&pki, &ports, upstream.port(), "gw-1");
    wait_for(TIMEOUT, || gw.get("/blocked").status == 403).expect("generation 1 serves");
    let bad = json!({ "spec": { "defaultConfig": { "block_urls": "not a list" } } });
    rt.block_on(api.patch("block", &PatchParams::default(), &Patch::Merge(&bad))).unwrap();
    wait_for(TIMEOUT, || {
        let st = rt.block_on(api.get("block")).unwrap().status.unwrap_or_default();
        st.conditions.iter().any(|c| c.type_ == "ConfigValid" && c.observed_generation == Some(2))
    })
    .expect("generation 2 refused");
    drop(gw);

    println!("# Restart to serving\n");
    println!("`make bench-restart`: the controller binary (release build) SIGKILLed while generation 2 of a");
    println!("plugin is refused, then started with an empty module cache; real apiextensions-apiserver + etcd,");
    println!("docker-registry and Envoy 1.40 over mutual TLS, all on this 2-core machine. Times from the");
    println!("new process's start, except the last column.\n");
    println!(
        "| round | generation 1 in place again | /readyz (gateways answered) | new gateway blocks as generation 1 |"
    );
    println!("|---|---|---|---|");
    for round in 1..=ROUNDS {
        controller.kill();
        controller = ControllerProcess::start(bin, cluster.kubeconfig_path(), &pki, &registry.host, &ports);
        let started = controller.started;
        wait_for(TIMEOUT, || controller.metric("wasmplug_serving_plugins") == Some(1.0)).expect("restored");
        let restored = started.elapsed();
        controller.wait("/readyz", |r| r.status == 200);
        let ready = started.elapsed();
        let gateway_started = Instant::now();
        let fresh = gateway(&pki, &ports, upstream.port(), "gw-1");
        wait_for(TIMEOUT, || fresh.get("/blocked").status == 403).expect("the new gateway blocks");
        let blocks = gateway_started.elapsed();
        println!("| {round} | {} | {} | {} |", ms(restored), ms(ready), ms(blocks));
    }
    println!("\nThe last column counts from the gateway's own start (Envoy's start included).");
}
