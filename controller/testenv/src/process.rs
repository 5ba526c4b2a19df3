//! The controller binary as its own process against a [`TestCluster`](crate::TestCluster): the
//! way it runs in a pod, so that a test can kill it with SIGKILL and start another one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use wasmplug_testkit::registry::free_port;

use crate::gateway::{Gateway, Pki};
use wasmplug_envoy::bootstrap::{BootstrapOptions, envoy_bootstrap};

/// Where one controller process listens; kept across restarts so that gateways reconnect.
#[derive(Debug, Clone)]
pub struct Ports {
    pub xds: SocketAddr,
    pub modules: SocketAddr,
    pub metrics: SocketAddr,
}

impl Ports {
    pub fn free() -> Ports {
        let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        Ports { xds: at(free_port()), modules: at(free_port()), metrics: at(free_port()) }
    }
}

/// An Envoy gateway `node` (no labels) bootstrapped to the controller at `ports` with its
/// certificate from `pki`, routing to `upstream_port`.
pub fn gateway(pki: &Pki, ports: &Ports, upstream_port: u16, node: &str) -> Gateway {
    let bootstrap = envoy_bootstrap(&BootstrapOptions {
        xds: ports.xds.to_string(),
        node: node.into(),
        labels: Default::default(),
        upstream: Some(format!("http://127.0.0.1:{upstream_port}")),
        listen_address: None,
        listen_port: 0,
        admin_port: 0,
        modules: ports.modules.to_string(),
        tls: Some(pki.gateway_files(node)),
    })
    .unwrap();
    Gateway::start(&bootstrap)
}

/// A running `wasmplug-controller` with its own, new cache directory. Killed (SIGKILL) on drop.
pub struct ControllerProcess {
    child: Child,
    /// Its module cache, empty at start.
    pub cache: TempDir,
    log: PathBuf,
    pub ports: Ports,
    pub started: Instant,
}

impl ControllerProcess {
    /// Starts `bin` in cluster mode: the servers' certificate from `pki` (a mounted TLS Secret's
    /// files), `registry` trusted over plain HTTP. Returns once `/healthz` answers.
    pub fn start(bin: &Path, kubeconfig: &Path, pki: &Pki, registry: &str, ports: &Ports) -> ControllerProcess {
        let cache = tempfile::Builder::new().prefix("wasmplug-cache-").tempdir().unwrap();
        let tls = cache.path().join("tls");
        pki.server.write_dir(&tls).unwrap();
        let log = cache.path().join("controller.log");
        let out = std::fs::File::create(&log).unwrap();
        let started = Instant::now();
        let child = Command::new(bin)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .args(["--xds-listen", &ports.xds.to_string(), "--modules-listen", &ports.modules.to_string()])
            .args(["--modules-url", &format!("https://{}", ports.modules)])
            .args(["--metrics-listen", &ports.metrics.to_string(), "--insecure-registry", registry])
            .arg("--tls-dir")
            .arg(&tls)
            .arg("--cache-dir")
            .arg(cache.path().join("modules"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut p = ControllerProcess { child, cache, log, ports: ports.clone(), started };
        p.wait("/healthz", |r| r.status == 200);
        p
    }

    /// Waits until `path` on the metrics port answers what `ok` accepts.
    pub fn wait(&mut self, path: &str, ok: impl Fn(&wasmplug_testkit::client::Response) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the controller exited ({status}):\n{}", self.logs());
            }
            if wasmplug_testkit::client::get(self.ports.metrics.port(), path).is_ok_and(|r| ok(&r)) {
                return;
            }
            assert!(Instant::now() < deadline, "{path} never answered as expected:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of a metric without labels, from `/metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = wasmplug_testkit::client::get(self.ports.metrics.port(), "/metrics").ok()?.text();
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// SIGKILL: no shutdown code runs, as when a node or the OOM killer ends the pod.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- controller log ---\n{}", self.logs());
        }
    }
}

/// Everything around a controller process that is killed and restarted: the API server with
/// the CRD, a registry holding request-block, the servers' CA, ports kept across restarts, an
/// upstream, and the WasmPlugins of namespace `gw`.
pub struct Scene {
    pub api: kube::Api<wasmplug_controller::WasmPlugin>,
    pub cluster: crate::TestCluster,
    pub registry: wasmplug_testkit::registry::TestRegistry,
    /// request-block's image.
    pub url: String,
    pub pki: Pki,
    pub ports: Ports,
    pub upstream: wasmplug_testkit::upstream::Upstream,
    pub rt: tokio::runtime::Runtime,
}

impl Scene {
    pub fn start() -> Scene {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let cluster = rt.block_on(crate::TestCluster::start()).expect("API server (run `make apiserver-tools`)");
        rt.block_on(cluster.install_crds(include_str!("../../../deploy/crd.yaml"))).unwrap();
        let registry = wasmplug_testkit::registry::TestRegistry::start(Default::default());
        let url = rt.block_on(crate::system::push_plugin(&registry.host, "plugins/request-block", "request-block"));
        let api = kube::Api::namespaced(cluster.client(), "gw");
        let (pki, ports, upstream) = (Pki::new(), Ports::free(), wasmplug_testkit::upstream::Upstream::start());
        Scene { api, cluster, registry, url, pki, ports, upstream, rt }
    }

    /// A new controller process (`bin`) with a new, empty cache.
    pub fn controller(&self, bin: &Path) -> ControllerProcess {
        ControllerProcess::start(bin, self.cluster.kubeconfig_path(), &self.pki, &self.registry.host, &self.ports)
    }

    /// A new gateway `gw-1`.
    pub fn gateway(&self) -> Gateway {
        gateway(&self.pki, &self.ports, self.upstream.port(), "gw-1")
    }

    /// Creates WasmPlugin `block`: request-block answering 403 on `/blocked`.
    pub fn create_block(&self) {
        let wp: wasmplug_controller::WasmPlugin = serde_json::from_value(serde_json::json!({
            "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": { "name": "block", "namespace": "gw" },
            "spec": { "url": self.url, "defaultConfig": { "block_urls": ["/blocked"] } },
        }))
        .unwrap();
        self.rt.block_on(self.api.create(&Default::default(), &wp)).unwrap();
    }

    /// Makes `block`'s next generation one its schema refuses.
    pub fn refuse_next_generation(&self) {
        let bad = serde_json::json!({ "spec": { "defaultConfig": { "block_urls": "not a list" } } });
        let params = kube::api::PatchParams::default();
        self.rt.block_on(self.api.patch("block", &params, &kube::api::Patch::Merge(&bad))).unwrap();
    }

    /// `block`'s status as JSON.
    pub fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.rt.block_on(self.api.get("block")).unwrap().status).unwrap()
    }
}

/// The condition `kind` of a status (JSON), or null.
pub fn condition(status: &serde_json::Value, kind: &str) -> serde_json::Value {
    status["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == kind)).cloned().unwrap_or_default()
}
