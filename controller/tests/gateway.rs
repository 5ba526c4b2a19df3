//! The whole system on one machine, all real: apiextensions-apiserver + etcd, Debian's
//! docker-registry, the controller (in-process, serving xDS and modules) and Envoy 1.40
//! gateways bootstrapped to it. WasmPlugins are created, edited and deleted through the API
//! server; what Envoy does is checked with HTTP requests, and what the gateways said with status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../oci/tests/support/mod.rs"]
mod support;
#[path = "../xds/tests/common/mod.rs"]
mod xds_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::free_port;
use wasmplug_controller::WasmPlugin;
use wasmplug_controller::operator::delivery::DeliveryOptions;
use wasmplug_controller::operator::{self, Context};
use wasmplug_controller::render::ModuleServer as ModuleServerUrl;
use wasmplug_e2e::upstream::Upstream;
use wasmplug_oci::{ImageRef, PluginPackage, PushFormat, Registry, RegistryConfig, build_image, push};
use wasmplug_testenv::TestCluster;
use wasmplug_xds::bootstrap::{BootstrapOptions, envoy_bootstrap};
use xds_support::{Gateway, KeepAlive, wait_for};

const TIMEOUT: Duration = Duration::from_secs(30);

struct System {
    rt: tokio::runtime::Runtime,
    _cluster: TestCluster,
    api: Api<WasmPlugin>,
    registry: support::TestRegistry,
    ctx: Arc<Context>,
    upstream: Upstream,
    _cache: tempfile::TempDir,
}

impl System {
    fn start() -> System {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let cluster = rt.block_on(TestCluster::start()).expect("API server (run `make apiserver-tools`)");
        rt.block_on(cluster.install_crds(include_str!("../../deploy/crd.yaml"))).unwrap();
        let registry = support::TestRegistry::start(support::Options::default());
        let cache = tempfile::tempdir().unwrap();
        // The module server's port must be known before the controller renders module URLs.
        let modules_port = free_port();
        let options = operator::Options {
            cache_dir: cache.path().to_path_buf(),
            insecure_registries: vec![registry.host.clone()],
            module_server: ModuleServerUrl {
                base_url: format!("http://127.0.0.1:{modules_port}/modules"),
                ..Default::default()
            },
            delivery: Some(DeliveryOptions {
                xds_listen: "127.0.0.1:0".parse().unwrap(),
                modules_listen: format!("127.0.0.1:{modules_port}").parse().unwrap(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let client = cluster.client();
        let ctx = rt.block_on(async { Context::new(client.clone(), options).unwrap().start_delivery().await.unwrap() });
        let ctx = Arc::new(ctx);
        rt.spawn(operator::run(ctx.clone(), Arc::new(AtomicBool::new(false))));
        let api = Api::namespaced(client, "gw");
        System { rt, _cluster: cluster, api, registry, ctx, upstream: Upstream::start(), _cache: cache }
    }

    fn push(&self, repo: &str, crate_name: &str) -> String {
        let host = self.registry.host.clone();
        let module = std::fs::read(wasmplug_e2e::wasm::plugin_module(crate_name)).unwrap();
        self.rt.block_on(async {
            let registry =
                Registry::new(RegistryConfig { insecure_registries: vec![host.clone()], ..Default::default() })
                    .unwrap();
            let image = ImageRef::parse(&format!("{host}/{repo}:v1")).unwrap();
            let built =
                build_image(&PluginPackage::from_module("plugin.wasm", module).unwrap(), PushFormat::Higress).unwrap();
            push(&registry, &image, &built, &|_, _| {}).await.unwrap();
        });
        format!("oci://{host}/{repo}:v1")
    }

    /// An Envoy gateway with these labels; `modules` overrides where it fetches modules from.
    fn gateway(&self, node: &str, labels: &[(&str, &str)], modules: Option<String>) -> Gateway {
        let delivery = self.ctx.delivery.as_ref().unwrap();
        let bootstrap = envoy_bootstrap(&BootstrapOptions {
            xds: delivery.xds_addr.to_string(),
            node: node.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            upstream: Some(format!("http://127.0.0.1:{}", self.upstream.port())),
            listen_address: None,
            listen_port: 0,
            admin_port: 0,
            modules: modules.unwrap_or_else(|| delivery.modules.local_addr().to_string()),
        })
        .unwrap();
        Gateway::start(&bootstrap)
    }

    fn create(&self, name: &str, spec: Value) {
        let wp: WasmPlugin = serde_json::from_value(json!({
            "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": { "name": name, "namespace": "gw" }, "spec": spec,
        }))
        .unwrap();
        self.rt.block_on(self.api.create(&PostParams::default(), &wp)).unwrap();
    }

    fn patch(&self, name: &str, spec: Value) {
        let patch = json!({ "spec": spec });
        self.rt.block_on(self.api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))).unwrap();
    }

    fn delete(&self, name: &str) {
        self.rt.block_on(self.api.delete(name, &DeleteParams::default())).unwrap();
    }

    /// Waits until the plugin's condition `kind` for its current generation satisfies `ok`.
    fn condition(&self, name: &str, kind: &str, ok: impl Fn(&Condition) -> bool) -> Condition {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let wp = self.rt.block_on(self.api.get(name)).unwrap();
            let found = wp.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == kind)).cloned();
            if let Some(c) = &found
                && c.observed_generation == wp.metadata.generation
                && ok(c)
            {
                return c.clone();
            }
            assert!(Instant::now() < deadline, "{name}: {kind} never matched; status: {:#?}", wp.status);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn until(what: &str, gw: &Gateway, f: impl FnMut() -> bool) -> Duration {
    wait_for(TIMEOUT, f).unwrap_or_else(|| panic!("{what} never happened\n{}", gw.logs()))
}

#[test]
fn kubectl_to_envoy_edit_nack_order_and_delete() {
    let sys = System::start();
    let block = sys.push("plugins/request-block", "request-block");
    let hello = sys.push("plugins/hello-world", "hello-world");
    let gw = sys.gateway("gw-1", &[("app", "edge")], None);
    assert_eq!(gw.get("/blocked").status, 200, "no plugin yet");

    // 1. A WasmPlugin: Envoy applies it, and status says the gateway took it.
    sys.create("block", json!({ "url": block, "phase": "AUTHZ", "defaultConfig": { "block_urls": ["/blocked"] } }));
    let took = until("the first plugin", &gw, || gw.get("/blocked").status == 403);
    eprintln!("create → effect through Envoy: {took:?}");
    let programmed = sys.condition("block", "Programmed", |c| c.status == "True");
    assert!(programmed.message.contains("gw-1"), "{programmed:?}");
    assert_eq!(gw.get("/fine").status, 200);

    // 2. An edit: new behaviour without a restart, on a connection opened before it.
    let mut conn = KeepAlive::open(gw.port);
    assert_eq!(conn.get("/other").unwrap().0, 200);
    sys.patch("block", json!({ "defaultConfig": { "block_urls": ["/other"] } }));
    let took = until("the edit", &gw, || gw.get("/other").status == 403 && gw.get("/blocked").status == 200);
    eprintln!("edit → effect through Envoy: {took:?}");
    assert_eq!(conn.get("/other").unwrap().0, 403, "the keep-alive connection sees the edit");
    sys.condition("block", "Programmed", |c| c.status == "True" && c.message.contains("generation 2"));

    // 3. A config the schema allows but the plugin refuses (a bad regex): Envoy NACKs, status
    // carries Envoy's detail, and the previous config keeps serving.
    sys.patch("block", json!({ "defaultConfig": { "block_urls": ["/other"], "block_regexp_urls": ["("] } }));
    let nack = sys.condition("block", "Programmed", |c| c.status == "False");
    assert_eq!(nack.reason, "Rejected");
    assert!(nack.message.contains("gw-1") && nack.message.contains("generation 3"), "{nack:?}");
    assert!(nack.message.contains("Unable to create Wasm"), "Envoy's detail: {nack:?}");
    for _ in 0..3 {
        assert_eq!(gw.get("/other").status, 403, "generation 2 keeps serving");
        assert_eq!(conn.get("/fine").unwrap().0, 200);
    }

    // 5. A second plugin in an earlier phase runs first (the order in Envoy's chain).
    // (A merge patch: null removes the key.)
    sys.patch("block", json!({ "defaultConfig": { "block_regexp_urls": null } }));
    sys.condition("block", "Programmed", |c| c.status == "True" && c.message.contains("generation 4"));
    sys.create("hello", json!({ "url": hello, "phase": "AUTHN", "defaultConfig": { "mockEnable": true } }));
    until("the second plugin", &gw, || gw.get("/other").text() == "hello world");
    sys.condition("hello", "Programmed", |c| c.status == "True");
    let filters = gw.http_filters();
    assert_eq!(filters, ["gw.hello", "gw.block", "envoy.filters.http.router"], "chain order");
    // Moving it after request-block changes the order without a restart.
    sys.patch("hello", json!({ "phase": "STATS" }));
    until("the reorder", &gw, || gw.get("/other").status == 403);
    assert_eq!(gw.http_filters(), ["gw.block", "gw.hello", "envoy.filters.http.router"]);

    // 6. Deleting the WasmPlugins removes the filters.
    sys.delete("hello");
    sys.delete("block");
    until("the removal", &gw, || gw.get("/other").status == 200 && gw.get("/other").text() != "hello world");
    assert_eq!(gw.http_filters(), ["envoy.filters.http.router"]);
    assert!(sys.ctx.delivery.as_ref().unwrap().modules.modules().is_empty(), "no module served for nobody");
}

#[test]
fn unfetchable_module_fails_open_or_closed_and_selectors_pick_gateways() {
    let sys = System::start();
    let hello = sys.push("plugins/hello-world", "hello-world");
    // This gateway cannot reach the module server: every module is unfetchable for it.
    let broken = sys.gateway("gw-broken", &[("zone", "broken")], Some(format!("127.0.0.1:{}", free_port())));
    let other = sys.gateway("gw-other", &[("zone", "fine")], None);

    sys.create(
        "open",
        json!({ "url": hello, "failStrategy": "FAIL_OPEN", "selector": { "matchLabels": { "zone": "broken" } },
                "defaultConfig": { "mockEnable": true } }),
    );
    sys.condition("open", "Programmed", |c| c.message.contains("gw-broken"));
    // FAIL_OPEN: the plugin is skipped, requests reach the upstream.
    std::thread::sleep(Duration::from_secs(2));
    let r = broken.get("/x");
    assert_eq!((r.status, r.text() == "hello world"), (200, false), "FAIL_OPEN passes: {}", r.text());
    // The other gateway is not selected: untouched.
    assert_eq!(other.get("/x").text(), "upstream ok");

    sys.patch("open", json!({ "failStrategy": "FAIL_CLOSE" }));
    until("FAIL_CLOSE", &broken, || broken.get("/x").status == 503);

    // Selecting the working gateway instead: it runs the plugin.
    sys.patch("open", json!({ "selector": { "matchLabels": { "zone": "fine" } } }));
    until("the working gateway", &other, || other.get("/x").text() == "hello world");
    until("the broken gateway released", &broken, || broken.get("/x").status == 200);
}
