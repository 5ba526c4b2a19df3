//! `make bench-controller`: the controller binary against a real API server (apiextensions-apiserver
//! + etcd) and a real registry. 1,000 WasmPlugins over 10 images (cached beforehand):
//! - time from the controller's start until all are Ready, at two concurrencies, side by side;
//! - the controller's peak RSS (VmHWM);
//! - latency from a spec edit to the updated Higress object, p50/p99 over 50 edits.
//!
//! Prints Markdown to stdout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use wasmplug_controller::WasmPlugin;
use wasmplug_oci::{Cache, ImageRef, PluginPackage, PushFormat, Registry, RegistryConfig, build_image, push};
use wasmplug_testenv::TestCluster;

const OBJECTS: usize = 1000;
const IMAGES: usize = 10;
const EDITS: usize = 50;

struct Controller(Child, u16);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Controller {
    fn start(
        cluster: &TestCluster,
        cache: &std::path::Path,
        registry: &str,
        namespace: &str,
        concurrency: u16,
        tls: &std::path::Path,
    ) -> Self {
        let metrics = wasmplug_testkit::registry::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_wasmplug-controller"))
            .env("KUBECONFIG", cluster.kubeconfig_path())
            .env("RUST_LOG", "warn")
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .args(["--insecure-registry", registry, "--watch-namespace", namespace])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--xds-listen", "127.0.0.1:0", "--modules-listen", "127.0.0.1:0"])
            .arg("--tls-dir")
            .arg(tls)
            .arg("--cache-dir")
            .arg(cache)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wasmplug-controller");
        Controller(child, metrics)
    }

    /// `wasmplug_serving_plugins` from the controller's /metrics (0 while it starts).
    fn serving(&self) -> u64 {
        let text = wasmplug_testkit::client::get(self.1, "/metrics").map(|r| r.text()).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("wasmplug_serving_plugins "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// CPU time used so far (user + system), from /proc (clock ticks of 10 ms).
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime and stime are 12th and 13th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<u64> = rest.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        let ticks = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }

    /// Peak resident memory (VmHWM) in kB.
    fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

fn ready(wp: &WasmPlugin) -> bool {
    wp.status.as_ref().is_some_and(|s| {
        s.observed_generation == wp.metadata.generation
            && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

async fn create_all(client: &Client, namespace: &str, registry: &str) -> Duration {
    let api: Api<WasmPlugin> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    for i in 0..OBJECTS {
        let wp: WasmPlugin = serde_json::from_value(json!({
            "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": { "name": format!("p{i:04}"), "namespace": namespace },
            "spec": {
                "url": format!("oci://{registry}/bench/image{}:v1", i % IMAGES),
                "targets": ["envoy", "higress"],
                "defaultConfig": { "block_urls": [format!("/blocked/{i}")] },
            },
        }))
        .unwrap();
        api.create(&PostParams::default(), &wp).await.unwrap();
    }
    started.elapsed()
}

/// Time from now until every object in `namespace` is Ready for its generation. The
/// controller's metrics are watched first (cheap), then the objects are listed: listing 1,000
/// objects often would load the API server the controller depends on.
async fn converge(client: &Client, namespace: &str, controller: &Controller) -> Duration {
    let api: Api<WasmPlugin> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    while controller.serving() < OBJECTS as u64 {
        assert!(started.elapsed() < Duration::from_secs(300), "did not converge in 5 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        let list = api.list(&ListParams::default()).await.unwrap();
        if list.items.iter().filter(|w| ready(w)).count() == OBJECTS {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(300), "did not converge in 5 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = TestCluster::start().await.expect("API server (run `make apiserver-tools`)");
    cluster.install_crds(include_str!("../../deploy/crd.yaml")).await.unwrap();
    cluster.install_crds(include_str!("../tests/fixtures/crds/higress-wasmplugin.yaml")).await.unwrap();
    let client = cluster.client();
    let reg = wasmplug_testkit::registry::TestRegistry::start(wasmplug_testkit::registry::Options::default());
    let host = reg.host.clone();

    // Ten distinct images (same module, different README), pushed and cached.
    let cache_dir = tempfile::tempdir().unwrap();
    // The servers' certificate, as a mounted TLS Secret (gateways are not part of this bench).
    let tls = cache_dir.path().join("tls");
    wasmplug_testenv::gateway::Pki::new().server.write_dir(&tls).unwrap();
    let registry =
        Registry::new(RegistryConfig { insecure_registries: vec![host.clone()], ..Default::default() }).unwrap();
    let cache = Cache::new(cache_dir.path(), registry.clone()).unwrap();
    let module = std::fs::read(wasmplug_testkit::wasm::plugin_module("request-block")).unwrap();
    for i in 0..IMAGES {
        let mut pkg = PluginPackage::from_module("plugin.wasm", module.clone()).unwrap();
        pkg.readme = Some(format!("bench image {i}\n"));
        let image = ImageRef::parse(&format!("{host}/bench/image{i}:v1")).unwrap();
        push(&registry, &image, &build_image(&pkg, PushFormat::Higress).unwrap(), &|_, _| {}).await.unwrap();
        cache.resolve(&image, None, None, None).await.unwrap();
    }

    println!("# Controller at scale\n");
    println!("`make bench-controller`: {OBJECTS} WasmPlugins over {IMAGES} images (cached), targets envoy + higress,");
    println!(
        "on apiextensions-apiserver + etcd (`--unsafe-no-fsync`) and the controller binary, all on one 2-core machine.\n"
    );
    println!("| concurrency | create {OBJECTS} objects | start → all Ready | controller CPU | peak RSS |");
    println!("|---|---|---|---|---|");
    let mut kept = None;
    for concurrency in [1u16, 4, 16] {
        let namespace = format!("bench-c{concurrency}");
        let created = create_all(&client, &namespace, &host).await;
        let controller = Controller::start(&cluster, cache_dir.path(), &host, &namespace, concurrency, &tls);
        let took = converge(&client, &namespace, &controller).await;
        let rss = controller.peak_rss_kb();
        let cpu = controller.cpu();
        println!("| {concurrency} | {} | {} | {} | {:.1} MB |", ms(created), ms(took), ms(cpu), rss as f64 / 1024.0);
        if concurrency == 4 {
            kept = Some((controller, namespace));
        }
    }

    // Edits on the default concurrency's objects, one at a time.
    let Some((controller, namespace)) = kept else { return };
    let api: Api<WasmPlugin> = Api::namespaced(client.clone(), &namespace);
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("extensions.higress.io", "v1alpha1", "WasmPlugin"),
        "wasmplugins",
    );
    let higress: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &ar);
    let mut latencies = Vec::new();
    for edit in 0..EDITS {
        let name = format!("p{:04}", edit * 17 % OBJECTS);
        let want = format!("/edited/{edit}");
        let patch = json!({ "spec": { "defaultConfig": { "block_urls": [want] } } });
        let started = Instant::now();
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        loop {
            let object = higress.get(&name).await.unwrap();
            if object.data["spec"]["defaultConfig"]["block_urls"][0] == json!(want) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "edit {edit} never reached the Higress object");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!("\nSpec edit → updated Higress object ({EDITS} edits, concurrency 4, {OBJECTS} objects watched):");
    println!(
        "p50 {}, p99 {}, max {}.",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[EDITS - 1])
    );
    println!("Peak RSS of that controller after the edits: {:.1} MB.", controller.peak_rss_kb() as f64 / 1024.0);
    println!("\nGoals: all Ready ≤ 10 s, RSS ≤ 50 MB, edit p99 ≤ 200 ms.");
}
