//! The whole system on one machine for tests and benchmarks: apiextensions-apiserver + etcd,
//! Debian's docker-registry, the controller (in-process, serving xDS and modules) and Envoy 1.40
//! gateways bootstrapped to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::TestCluster;
use crate::gateway::{Gateway, Pki};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use wasmplug_controller::WasmPlugin;
use wasmplug_controller::operator::delivery::{DeliveryOptions, GatewayAuth};
use wasmplug_controller::operator::{self, Context};
use wasmplug_controller::render::ModuleSource;
use wasmplug_envoy::bootstrap::{BootstrapOptions, envoy_bootstrap};
use wasmplug_oci::{ImageRef, PluginPackage, PushFormat, Registry, RegistryConfig, build_image, push};
use wasmplug_testkit::registry::proxy::Proxy;
use wasmplug_testkit::registry::{Options, TestRegistry, free_port};
use wasmplug_testkit::upstream::Upstream;

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub struct System {
    pub rt: tokio::runtime::Runtime,
    _cluster: TestCluster,
    pub api: Api<WasmPlugin>,
    pub registry: TestRegistry,
    /// A counting proxy in front of the registry (see [`System::counted`]).
    pub registry_proxy: Proxy,
    pub ctx: Arc<Context>,
    pub upstream: Upstream,
    /// The CA of the xDS and module servers and of the gateways' certificates.
    pub pki: Pki,
    _cache: tempfile::TempDir,
}

impl System {
    pub fn start() -> System {
        System::start_with(|_| {})
    }

    /// [`System::start`] with the controller's options changed by `tweak`.
    pub fn start_with(tweak: impl FnOnce(&mut operator::Options)) -> System {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let cluster = rt.block_on(TestCluster::start()).expect("API server (run `make apiserver-tools`)");
        rt.block_on(cluster.install_crds(include_str!("../../../deploy/crd.yaml"))).unwrap();
        let registry = TestRegistry::start(Options::default());
        let registry_proxy = Proxy::start(&registry.host);
        let cache = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        // The module server's port must be known before the controller renders module URLs.
        let modules_port = free_port();
        let options = operator::Options {
            cache_dir: cache.path().to_path_buf(),
            insecure_registries: vec![registry.host.clone(), registry_proxy.host.clone()],
            module_server: ModuleSource {
                base_url: format!("https://127.0.0.1:{modules_port}/modules"),
                ..Default::default()
            },
            delivery: Some(DeliveryOptions {
                auth: GatewayAuth::Material(pki.server.server_material()),
                xds_listen: "127.0.0.1:0".parse().unwrap(),
                modules_listen: format!("127.0.0.1:{modules_port}").parse().unwrap(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut options = options;
        tweak(&mut options);
        let client = cluster.client();
        let ctx = rt.block_on(async { Context::new(client.clone(), options).unwrap().start_delivery().await.unwrap() });
        let ctx = Arc::new(ctx);
        rt.spawn(operator::run(ctx.clone(), Arc::new(AtomicBool::new(false))));
        let api = Api::namespaced(client, "gw");
        System {
            rt,
            _cluster: cluster,
            api,
            registry,
            registry_proxy,
            ctx,
            upstream: Upstream::start(),
            pki,
            _cache: cache,
        }
    }

    pub fn push(&self, repo: &str, crate_name: &str) -> String {
        self.rt.block_on(push_plugin(&self.registry.host, repo, crate_name))
    }

    /// `url` (from [`System::push`]) through the counting proxy, whose `requests` then show what
    /// the controller asked the registry.
    pub fn counted(&self, url: &str) -> String {
        url.replacen(&self.registry.host, &self.registry_proxy.host, 1)
    }

    /// An Envoy gateway with these labels; `modules` overrides where it fetches modules from.
    pub fn gateway(&self, node: &str, labels: &[(&str, &str)], modules: Option<String>) -> Gateway {
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
            tls: Some(self.pki.gateway_files(node)),
        })
        .unwrap();
        Gateway::start(&bootstrap)
    }

    pub fn create(&self, name: &str, spec: Value) {
        let wp: WasmPlugin = serde_json::from_value(json!({
            "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": { "name": name, "namespace": "gw" }, "spec": spec,
        }))
        .unwrap();
        self.rt.block_on(self.api.create(&PostParams::default(), &wp)).unwrap();
    }

    pub fn patch(&self, name: &str, spec: Value) {
        let patch = json!({ "spec": spec });
        self.rt.block_on(self.api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))).unwrap();
    }

    pub fn delete(&self, name: &str) {
        self.rt.block_on(self.api.delete(name, &DeleteParams::default())).unwrap();
    }

    /// Waits until the plugin's condition `kind` for its current generation satisfies `ok`.
    pub fn condition(&self, name: &str, kind: &str, ok: impl Fn(&Condition) -> bool) -> Condition {
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

/// Pushes the workspace plugin `crate_name` as `{host}/{repo}:v1` (Higress's format) and returns
/// its `oci://` url.
pub async fn push_plugin(host: &str, repo: &str, crate_name: &str) -> String {
    let module = std::fs::read(wasmplug_testkit::wasm::plugin_module(crate_name)).unwrap();
    let registry =
        Registry::new(RegistryConfig { insecure_registries: vec![host.to_string()], ..Default::default() }).unwrap();
    let image = ImageRef::parse(&format!("{host}/{repo}:v1")).unwrap();
    let built = build_image(&PluginPackage::from_module("plugin.wasm", module).unwrap(), PushFormat::Higress).unwrap();
    push(&registry, &image, &built, &|_, _| {}).await.unwrap();
    format!("oci://{host}/{repo}:v1")
}
