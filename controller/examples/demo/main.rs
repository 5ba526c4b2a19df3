//! `make demo`: the whole pipeline on one machine, every part real.
//!
//! Plugin images are pushed to a local registry (Debian's `docker-registry`), WasmPlugin objects
//! from `deploy/examples/` are created in a local Kubernetes API server (etcd +
//! `apiextensions-apiserver`), the `wasmplug-controller` binary resolves, validates and renders
//! them and serves them over xDS to an Envoy 1.40 gateway on 127.0.0.1, and requests through that
//! gateway show what each plugin does. Then one config is edited through the API, and one is
//! applied that the plugin refuses at runtime, to show how status reports it.
//!
//! When the API server cannot start (or with `--standalone`), the controller's standalone mode
//! renders the same manifests into files, and Envoy runs them from a static config.
//!
//! Usage: `demo [--once] [--standalone] [--port 10000]`. With `--once` it exits after the
//! checks (0 when all passed); otherwise it keeps serving until Ctrl-C.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod procs;
mod status;

use procs::*;
use status::*;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use wasmplug_controller::WasmPlugin;
use wasmplug_envoy::bootstrap::{BootstrapOptions, GatewayTls, envoy_bootstrap};
use wasmplug_oci::{ImageRef, PluginPackage, PushFormat, Registry, RegistryConfig, build_image, push};
use wasmplug_testenv::TestCluster;
use wasmplug_testkit::client::{self, Response};
use wasmplug_testkit::upstream::{RecordedRequest, Upstream};
use wasmplug_xds::ModuleServer;

/// The sample plugins the demo runs: (crate, its example manifest).
const PLUGINS: [(&str, &str); 4] = [
    ("request-block", include_str!("../../../deploy/examples/request-block.yaml")),
    ("key-auth", include_str!("../../../deploy/examples/key-auth.yaml")),
    ("hello-world", include_str!("../../../deploy/examples/hello-world.yaml")),
    ("transformer", include_str!("../../../deploy/examples/transformer.yaml")),
];
const CRD: &str = include_str!("../../../deploy/crd.yaml");
const NAMESPACE: &str = "demo";
const NODE: &str = "demo-gateway";
const XDS: &str = "127.0.0.1:18000";
const MODULES: &str = "127.0.0.1:8081";
const METRICS: &str = "127.0.0.1:9090";
/// How long each step may take. Bringing the four plugins to Ready (the pre-flight compiles each
/// module, one at a time) took 28–35 s in this unoptimized build on two cores.
const TIMEOUT: Duration = Duration::from_secs(90);

type Result<T, E = String> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(10000u16);
    let mut demo = match Demo::new(port, flag("--once")) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if flag("--standalone") {
        println!("--standalone: skipping the API server.\n");
        demo.standalone()
    } else {
        demo.cluster()
    };
    demo.finish(result)
}

struct Demo {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    port: u16,
    once: bool,
    started: Instant,
    controller_bin: PathBuf,
    step: usize,
    failures: Vec<String>,
    upstream: Upstream,
    /// Values the checks use, read from the example manifests.
    key: String,
    blocked_path: String,
    blocked_code: u16,
    /// Kept alive for the demo's lifetime (dropped in reverse: processes before their files).
    envoy: Option<Envoy>,
    controller: Option<Proc>,
    registry: Option<wasmplug_testkit::registry::TestRegistry>,
    cluster: Option<TestCluster>,
    module_server: Option<ModuleServer>,
}

impl Demo {
    fn new(port: u16, once: bool) -> Result<Demo> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let dir = tempfile::Builder::new().prefix("wasmplug-demo-").tempdir().map_err(|e| e.to_string())?;
        let key_auth = manifest("key-auth")?;
        let key = key_auth["spec"]["defaultConfig"]["consumers"][0]["credential"]
            .as_str()
            .ok_or("deploy/examples/key-auth.yaml: no consumers[0].credential")?
            .to_string();
        let block = manifest("request-block")?;
        let first = block["spec"]["defaultConfig"]["block_urls"][0]
            .as_str()
            .ok_or("deploy/examples/request-block.yaml: no block_urls[0]")?;
        let blocked_path = if first.starts_with('/') { first.to_string() } else { format!("/{first}") };
        let blocked_code = block["spec"]["defaultConfig"]["blocked_code"].as_u64().unwrap_or(403) as u16;
        let controller_bin = controller_bin()?;
        Ok(Demo {
            rt,
            dir,
            port,
            once,
            started: Instant::now(),
            controller_bin,
            step: 0,
            failures: Vec::new(),
            upstream: Upstream::start(),
            key,
            blocked_path,
            blocked_code,
            envoy: None,
            controller: None,
            registry: None,
            cluster: None,
            module_server: None,
        })
    }

    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n== {}. {title}  [{:.1}s]", self.step, self.started.elapsed().as_secs_f64());
    }

    fn fail(&mut self, what: String) {
        println!("   FAILED: {what}");
        self.failures.push(what);
    }

    fn finish(mut self, result: Result<()>) -> ExitCode {
        if let Err(e) = result {
            self.failures.push(e);
        }
        let took = self.started.elapsed().as_secs_f64();
        if !self.failures.is_empty() {
            println!("\nThe demo's checks FAILED ({took:.1}s):");
            for f in &self.failures {
                println!("  - {f}");
            }
            // Stop the processes first, then keep their logs for reading.
            drop((self.envoy.take(), self.controller.take(), self.cluster.take()));
            let has_logs = std::fs::read_dir(self.dir.path()).is_ok_and(|mut d| d.next().is_some());
            if has_logs {
                let dir = self.dir.keep();
                println!("Logs are kept in {}", dir.display());
            }
            return ExitCode::FAILURE;
        }
        println!("\nAll checks passed ({took:.1}s).");
        if self.once {
            return ExitCode::SUCCESS;
        }
        self.print_try_it();
        println!("\nServing until Ctrl-C.");
        let _ = self.rt.block_on(tokio::signal::ctrl_c());
        println!("\nStopping.");
        ExitCode::SUCCESS
    }

    fn print_try_it(&self) {
        let (port, key) = (self.port, &self.key);
        println!("\nTry it yourself:");
        println!("  curl -i http://127.0.0.1:{port}/                                   # 401: no API key");
        println!("  curl -i -H 'x-api-key: {key}' http://127.0.0.1:{port}/get");
        println!("  curl -i 'http://127.0.0.1:{port}{}?apikey={key}'", self.blocked_path);
        if let Some(cluster) = &self.cluster {
            let kc = cluster.kubeconfig_path().display();
            println!("  curl -s http://{METRICS}/metrics | grep wasmplug_");
            println!("  kubectl --kubeconfig {kc} get --raw /apis/wasmplug.io/v1alpha1/wasmplugins");
            let pki = cluster.dir().join("pki");
            println!("  # an edit (kubectl patch needs discovery, which this API server lacks):");
            println!(
                "  curl -s --cacert {p}/ca.crt --cert {p}/client.crt --key {p}/client.key -X PATCH \\\n    \
                 -H 'content-type: application/merge-patch+json' \\\n    \
                 -d '{{\"spec\":{{\"defaultConfig\":{{\"mockEnable\":true}}}}}}' \\\n    \
                 {}/apis/wasmplug.io/v1alpha1/namespaces/{NAMESPACE}/wasmplugins/hello-world",
                cluster.base_url(),
                p = pki.display()
            );
        }
        println!("Logs: {}", self.dir.path().display());
    }

    // ------------------------------------------------------------------------------------------
    // With the API server.

    fn cluster(&mut self) -> Result<()> {
        self.step("API server, CRD, registry, plugin images");
        let missing_registry = !Path::new(wasmplug_testkit::registry::REGISTRY_BIN).exists();
        let cluster = if missing_registry {
            Err(format!("{} is missing (run `make registry-tools`)", wasmplug_testkit::registry::REGISTRY_BIN))
        } else {
            self.rt.block_on(TestCluster::start()).map_err(|e| e.to_string())
        };
        let cluster = match cluster {
            Ok(c) => c,
            Err(e) => {
                let first = e.lines().next().unwrap_or_default().to_string();
                println!("   No Kubernetes API server here: {first}");
                println!("   Running the standalone mode instead (files in, files out, static Envoy).");
                return self.standalone();
            }
        };
        check_ports(&[self.port, 18000, 8081, 9090])?;
        let crds = self.rt.block_on(cluster.install_crds(CRD)).map_err(|e| format!("installing the CRD: {e}"))?;
        println!(
            "   API server {} (etcd + apiextensions-apiserver), CRD {} established",
            cluster.base_url(),
            crds.join(", ")
        );
        let registry = wasmplug_testkit::registry::TestRegistry::start(wasmplug_testkit::registry::Options::default());
        println!("   registry {} (docker-registry, plain HTTP)", registry.host);
        let mut objects = Vec::new();
        for (name, _) in PLUGINS {
            let mut doc = manifest(name)?;
            let url = doc["spec"]["url"].as_str().ok_or(format!("{name}: no spec.url"))?.to_string();
            let repo = url
                .strip_prefix("oci://")
                .and_then(|r| r.split_once('/'))
                .map(|(_, r)| r.to_string())
                .ok_or(format!("{name}: url {url} is not oci://host/repo"))?;
            let local = format!("{}/{repo}", registry.host);
            let digest = self.push(&registry.host, &local, name)?;
            println!("   pushed {local:<52} {}", short(&digest));
            doc["spec"]["url"] = json!(format!("oci://{local}"));
            keep_envoy_target(&mut doc);
            doc["metadata"]["namespace"] = json!(NAMESPACE);
            objects.push(doc);
        }
        let kubeconfig = cluster.kubeconfig_path().to_path_buf();
        let api: Api<WasmPlugin> = Api::namespaced(cluster.client(), NAMESPACE);
        self.cluster = Some(cluster);
        let registry_host = registry.host.clone();
        self.registry = Some(registry);

        self.step("the controller and the Envoy gateway");
        let bin = self.controller_bin.clone();
        let cache = self.dir.path().join("cache");
        let log = self.dir.path().join("controller.log");
        // Gateways authenticate with client certificates: a CA for the demo, the servers'
        // certificate in the directory layout of a mounted TLS Secret, and the gateway's.
        let (controller_tls, gateway_tls) = self.certificates()?;
        let mut cmd = Command::new(&bin);
        cmd.env("KUBECONFIG", &kubeconfig)
            .args(["--xds-listen", XDS, "--modules-listen", MODULES])
            .args(["--modules-url", &format!("https://{MODULES}"), "--metrics-listen", METRICS])
            .arg("--tls-dir")
            .arg(&controller_tls)
            .args(["--insecure-registry", &registry_host, "--gateway-listener", &format!("127.0.0.1:{}", self.port)])
            .arg("--cache-dir")
            .arg(&cache);
        let controller = Proc::spawn("wasmplug-controller", cmd, &log)?;
        println!("   wasmplug-controller (pid {}), log: {}", controller.0.id(), log.display());
        println!("     xDS {XDS} and modules https://{MODULES} (mutual TLS), metrics http://{METRICS}/metrics");
        self.controller = Some(controller);
        self.wait("the controller's /healthz", || client::get(9090, "/healthz").is_ok_and(|r| r.status == 200))?;
        let labels: BTreeMap<String, String> = [("wasmplug.io/gateway".to_string(), "true".to_string())].into();
        let bootstrap = envoy_bootstrap(&BootstrapOptions {
            xds: XDS.into(),
            node: NODE.into(),
            labels,
            upstream: Some(format!("http://127.0.0.1:{}", self.upstream.port())),
            listen_address: None,
            listen_port: self.port,
            admin_port: 0,
            modules: MODULES.into(),
            tls: Some(GatewayTls::from_dir(&gateway_tls)),
        })
        .map_err(|e| format!("Envoy bootstrap: {e}"))?;
        let envoy = Envoy::start(self.dir.path(), &bootstrap)?;
        println!(
            "   Envoy 1.40 (pid {}), node {NODE}, label wasmplug.io/gateway=true, on http://127.0.0.1:{}",
            envoy.child.0.id(),
            envoy.port
        );
        println!("     log: {}", envoy.log.display());
        let r = self.get("/", &[])?;
        println!("   no plugin yet: GET / -> {} {}", r.status, r.text().trim());
        self.envoy = Some(envoy);

        self.step("WasmPlugins from deploy/examples/ (url -> local registry, target envoy)");
        let created = Instant::now();
        for doc in &objects {
            let wp: WasmPlugin = serde_json::from_value(doc.clone()).map_err(|e| format!("{e}"))?;
            self.rt.block_on(api.create(&PostParams::default(), &wp)).map_err(|e| format!("create: {e}"))?;
            println!("   wasmplugin.wasmplug.io/{} created", doc["metadata"]["name"].as_str().unwrap_or_default());
        }
        let all = self.wait_all(&api, |o| {
            condition(o, "Ready").is_some_and(|c| c.0 == "True")
                && condition(o, "Programmed").is_some_and(|c| c.0 == "True")
        });
        let took = created.elapsed();
        match all {
            Ok(list) => {
                println!("   all Ready and Programmed {:.2}s after creation:\n", took.as_secs_f64());
                print_table(&list, created);
                // A first delivery is ACKed before the module is fetched; the new listener
                // becomes active once the modules are loaded.
                let want = list.len() + 1;
                self.wait("Envoy's active listener to hold the plugins", || self.envoy_filters().len() == want)?;
                println!("\n   Envoy's HTTP filters: {}", self.envoy_filters().join(" -> "));
            }
            Err(e) => return Err(e),
        }

        self.step("requests through Envoy");
        self.requests();

        self.step("edit request-block through the API (merge patch), Envoy keeps running");
        let pid = self.envoy.as_ref().map(|e| e.child.0.id());
        let key = self.key.clone();
        let hdr = [("x-api-key", key.as_str())];
        self.expect("/admin", &hdr, 200, "not blocked yet");
        let mut urls = objects[0]["spec"]["defaultConfig"]["block_urls"].as_array().cloned().unwrap_or_default();
        urls.push(json!("/admin"));
        let patch = json!({ "spec": { "defaultConfig": { "block_urls": urls } } });
        println!("   PATCH request-block {patch}");
        let edited = Instant::now();
        self.patch(&api, "request-block", &patch)?;
        let seen = self.wait("the edit to take effect", || {
            client::request(self.port, "GET", "/admin")
                .header("x-api-key", key.as_str())
                .send()
                .is_ok_and(|r| r.status == self.blocked_code)
        });
        match seen {
            Ok(()) => println!(
                "   /admin answers {} {:.0} ms after the PATCH",
                self.blocked_code,
                edited.elapsed().as_secs_f64() * 1000.0
            ),
            Err(e) => self.fail(e),
        }
        match self.wait_one(&api, "request-block", programmed_current) {
            Ok(o) => print_condition(&o, "Programmed"),
            Err(e) => self.fail(e),
        }
        self.expect("/admin", &hdr, self.blocked_code, "blocked after the edit");
        let same = self.envoy.as_ref().map(|e| e.child.0.id()) == pid;
        println!("   Envoy pid {} (not restarted: {same})", pid.unwrap_or_default());

        self.step("a config the plugin refuses at runtime (block_regexp_urls: [\"(\"])");
        let original = objects[0]["spec"]["defaultConfig"]["block_regexp_urls"].clone();
        let bad = json!({ "spec": { "defaultConfig": { "block_regexp_urls": ["("] } } });
        println!("   PATCH request-block {bad}");
        println!("   (the schema allows any string; the controller's pre-flight starts the plugin with it,");
        println!("   the plugin refuses it, and no gateway gets it)");
        self.patch(&api, "request-block", &bad)?;
        let refused = |o: &Value| condition(o, "ConfigValid").is_some_and(|c| c.0 == "False" && c.1 == "PluginRefused");
        match self.wait_one(&api, "request-block", refused) {
            Ok(o) => {
                print_condition(&o, "ConfigValid");
                print_condition(&o, "Ready");
            }
            Err(e) => self.fail(e),
        }
        self.expect("/admin", &hdr, self.blocked_code, "the previous config keeps serving");
        self.expect("/fine", &hdr, 200, "the previous config keeps serving");
        let restore = json!({ "spec": { "defaultConfig": { "block_regexp_urls": original } } });
        println!("   PATCH request-block {restore}  (restore)");
        self.patch(&api, "request-block", &restore)?;
        match self.wait_one(&api, "request-block", programmed_current) {
            Ok(o) => print_condition(&o, "Programmed"),
            Err(e) => self.fail(e),
        }
        match self.wait_all(&api, |_| true) {
            Ok(list) => {
                println!();
                print_table(&list, created);
            }
            Err(e) => self.fail(e),
        }
        Ok(())
    }

    /// A CA for this demo; the servers' files (for `--tls-dir`) and the gateway's (node
    /// [`NODE`]), each as `tls.crt`, `tls.key`, `ca.crt`. Returns both directories.
    fn certificates(&self) -> Result<(String, String)> {
        use wasmplug_xds::ca::CertificateAuthority;
        let valid = Duration::from_secs(24 * 3600);
        let ca = CertificateAuthority::generate("wasmplug-demo-ca").map_err(|e| e.to_string())?;
        let server = ca.issue_server(&["127.0.0.1".into()], valid).map_err(|e| e.to_string())?;
        let gateway = ca.issue_gateway(NODE, valid).map_err(|e| e.to_string())?;
        let mut dirs = Vec::new();
        for (name, issued) in [("tls-controller", server), ("tls-gateway", gateway)] {
            let dir = self.dir.path().join(name);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for (file, pem) in [("tls.crt", &issued.cert_pem), ("tls.key", &issued.key_pem), ("ca.crt", &issued.ca_pem)]
            {
                std::fs::write(dir.join(file), pem).map_err(|e| format!("{}: {e}", dir.join(file).display()))?;
            }
            dirs.push(dir.to_string_lossy().into_owned());
        }
        Ok((dirs.remove(0), dirs.remove(0)))
    }

    fn push(&self, host: &str, image: &str, crate_name: &str) -> Result<String> {
        let path = wasmplug_testkit::wasm::try_plugin_module(crate_name)?;
        let module = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.rt.block_on(async {
            let config = RegistryConfig { insecure_registries: vec![host.to_string()], ..Default::default() };
            let registry = Registry::new(config).map_err(|e| e.to_string())?;
            let image = ImageRef::parse(image).map_err(|e| e.to_string())?;
            let package = PluginPackage::from_module("plugin.wasm", module).map_err(|e| e.to_string())?;
            let built = build_image(&package, PushFormat::Higress).map_err(|e| e.to_string())?;
            let digest = push(&registry, &image, &built, &|_, _| {}).await.map_err(|e| format!("push {image}: {e}"))?;
            Ok(digest.to_string())
        })
    }

    fn patch(&self, api: &Api<WasmPlugin>, name: &str, patch: &Value) -> Result<()> {
        self.rt
            .block_on(api.patch(name, &PatchParams::default(), &Patch::Merge(patch)))
            .map(drop)
            .map_err(|e| format!("patch {name}: {e}"))
    }

    /// Polls the WasmPlugins until every one has a status for its current generation and `ok`.
    fn wait_all(&self, api: &Api<WasmPlugin>, ok: impl Fn(&Value) -> bool) -> Result<Vec<Value>> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let list = self.rt.block_on(api.list(&ListParams::default())).map_err(|e| format!("list: {e}"))?;
            let objects: Vec<Value> = list.items.iter().filter_map(|o| serde_json::to_value(o).ok()).collect();
            if objects.iter().all(|o| current(o) && ok(o)) {
                return Ok(objects);
            }
            if Instant::now() > deadline {
                let states: Vec<String> = objects.iter().map(describe).collect();
                return Err(format!("WasmPlugins not Ready/Programmed after {TIMEOUT:?}:\n{}", states.join("\n")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_one(&self, api: &Api<WasmPlugin>, name: &str, ok: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let o = self.rt.block_on(api.get(name)).map_err(|e| format!("get {name}: {e}"))?;
            let o = serde_json::to_value(&o).map_err(|e| e.to_string())?;
            if current(&o) && ok(&o) {
                return Ok(o);
            }
            if Instant::now() > deadline {
                return Err(format!("{name}: status never matched:\n{}", describe(&o)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn envoy_filters(&self) -> Vec<String> {
        let Some(envoy) = &self.envoy else { return Vec::new() };
        let dump: Value = client::get(envoy.admin_port, "/config_dump")
            .ok()
            .and_then(|r| serde_json::from_slice(&r.body).ok())
            .unwrap_or_default();
        let mut names = Vec::new();
        for config in dump["configs"].as_array().into_iter().flatten() {
            let listeners = config["dynamic_listeners"].as_array().cloned().unwrap_or_default();
            let statics = config["static_listeners"].as_array().cloned().unwrap_or_default();
            for l in listeners.iter().map(|l| &l["active_state"]).chain(statics.iter()) {
                let hcm = &l["listener"]["filter_chains"][0]["filters"][0]["typed_config"];
                for f in hcm["http_filters"].as_array().into_iter().flatten() {
                    names.push(f["name"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        names
    }

    // ------------------------------------------------------------------------------------------
    // Requests.

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
        let mut last = String::new();
        // A request on a new connection during a listener change may see it closed: retry.
        for _ in 0..3 {
            let mut req = client::request(self.port, "GET", path);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            match req.send() {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("GET {path}: {last}"))
    }

    /// Sends a request, prints it as curl and what came back, and checks the status.
    fn expect(&mut self, path: &str, headers: &[(&str, &str)], status: u16, why: &str) -> Option<RecordedRequest> {
        self.upstream.clear_requests();
        let shown: String = headers.iter().map(|(k, v)| format!("-H '{k}: {v}' ")).collect();
        println!("   $ curl {shown}http://127.0.0.1:{}{path}", self.port);
        let r = match self.get(path, headers) {
            Ok(r) => r,
            Err(e) => {
                self.fail(e);
                return None;
            }
        };
        let mut body = r.text().trim().replace('\n', " ");
        if body.len() > 60 {
            body.truncate(60);
            body.push_str("...");
        }
        let mark = if r.status == status { "ok" } else { "UNEXPECTED" };
        println!("     -> {} {body}   ({why}: {mark})", r.status);
        if r.status != status {
            self.fail(format!("GET {path}: {} instead of {status} ({why})", r.status));
        }
        let seen = self.upstream.last_request();
        if seen.is_none() && r.status == 200 {
            self.fail(format!("GET {path}: 200 but the upstream saw nothing"));
        }
        seen
    }

    fn requests(&mut self) {
        let key = self.key.clone();
        let (blocked, code) = (self.blocked_path.clone(), self.blocked_code);
        self.expect("/get", &[], 401, "key-auth: no API key");
        self.expect("/get", &[("x-api-key", "wrong")], 401, "key-auth: unknown key");
        let seen = self.expect(
            "/get?debug=1",
            &[("x-api-key", key.as_str()), ("x-old", "renamed"), ("x-remove", "secret")],
            200,
            "key-auth: valid key",
        );
        if let Some(seen) = seen {
            let show = ["x-mse-consumer", "hello", "x-added", "x-new", "x-old", "x-remove"];
            let got: Vec<String> = show.iter().filter_map(|h| seen.header(h).map(|v| format!("{h}: {v}"))).collect();
            println!("     upstream received {} {} with {}", seen.method, seen.path, got.join(", "));
            let want = [
                ("x-mse-consumer", Some("consumer1"), "key-auth names the consumer"),
                ("hello", Some("world"), "hello-world adds its header"),
                ("x-added", Some("1"), "transformer adds x-added"),
                ("x-new", Some("renamed"), "transformer renames x-old to x-new"),
                ("x-remove", None, "transformer removes x-remove"),
            ];
            for (h, v, what) in want {
                if seen.header(h) != v {
                    self.fail(format!("{what}: upstream had {h}: {:?}", seen.header(h)));
                }
            }
            if seen.path.contains("debug=") {
                self.fail(format!("transformer removes the debug query parameter: upstream path {}", seen.path));
            }
        }
        self.expect(&format!("/?apikey={key}"), &[], 200, "key-auth: key in the query");
        self.expect(&blocked, &[("x-api-key", key.as_str())], code, "request-block: blocked path");
        self.expect("/v1/internal/x", &[("x-api-key", key.as_str())], code, "request-block: blocked by regexp");
    }

    /// Polls `f` until true; records nothing (the caller decides).
    fn wait(&self, what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + TIMEOUT;
        while !f() {
            if Instant::now() > deadline {
                return Err(format!("{what}: not after {TIMEOUT:?} (logs in {})", self.dir.path().display()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // Without the API server.

    fn standalone(&mut self) -> Result<()> {
        self.step("standalone: the example manifests with file:// modules");
        check_ports(&[self.port, 8081])?;
        let manifests = self.dir.path().join("manifests");
        let out = self.dir.path().join("out");
        std::fs::create_dir_all(&manifests).map_err(|e| e.to_string())?;
        for (name, _) in PLUGINS {
            let module = wasmplug_testkit::wasm::try_plugin_module(name)?;
            let module = module.canonicalize().map_err(|e| format!("{}: {e}", module.display()))?;
            let mut doc = manifest(name)?;
            doc["spec"]["url"] = json!(format!("file://{}", module.display()));
            keep_envoy_target(&mut doc);
            doc["metadata"]["namespace"] = json!(NAMESPACE);
            let file = manifests.join(format!("{name}.yaml"));
            // JSON is YAML.
            std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap_or_default()).map_err(|e| e.to_string())?;
            println!("   {}  url: file://{}", file.display(), module.display());
        }

        self.step("wasmplug-controller --manifests <dir> --output <dir>");
        let bin = self.controller_bin.clone();
        let output = Command::new(&bin)
            .arg("--manifests")
            .arg(&manifests)
            .arg("--output")
            .arg(&out)
            .args(["--modules-url", &format!("http://{MODULES}")])
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            println!("   {line}");
        }
        if !output.status.success() {
            return Err(format!(
                "the controller's standalone run exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let mut files: Vec<String> = std::fs::read_dir(&out)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        files.sort();
        println!("   wrote {}: {}", out.display(), files.join(", "));

        self.step("module server and Envoy with the rendered filters (static config)");
        let mut modules = Vec::new();
        let sha_dir = out.join("modules/sha256");
        for entry in std::fs::read_dir(&sha_dir).map_err(|e| format!("{}: {e}", sha_dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if let Some(hex) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".wasm")) {
                modules.push((hex.to_string(), path.clone()));
            }
        }
        let server = self
            .rt
            .block_on(ModuleServer::bind(MODULES.parse().map_err(|e| format!("{e}"))?))
            .map_err(|e| format!("module server on {MODULES}: {e}"))?;
        server.set_modules(modules.clone());
        println!("   module server {} serving {} module(s)", server.base_url(), modules.len());
        self.module_server = Some(server);
        let text = std::fs::read_to_string(out.join("envoy-filters.json")).map_err(|e| e.to_string())?;
        let filters: Vec<Value> = serde_json::from_str(&text).map_err(|e| format!("envoy-filters.json: {e}"))?;
        let config = static_envoy(filters, self.port, self.upstream.port());
        let envoy = Envoy::start(self.dir.path(), &config)?;
        println!(
            "   Envoy 1.40 (pid {}) on http://127.0.0.1:{}, log: {}",
            envoy.child.0.id(),
            envoy.port,
            envoy.log.display()
        );
        self.envoy = Some(envoy);
        println!("   Envoy's HTTP filters: {}", self.envoy_filters().join(" -> "));
        // The filters fetch their modules after the listener is up: wait for the first effect.
        let port = self.port;
        self.wait("the plugins to load", || client::get(port, "/").is_ok_and(|r| r.status == 401))?;

        self.step("requests through Envoy");
        self.requests();
        println!(
            "\n   (Edits through the API and status from the gateway need the API server: `make apiserver-tools`.)"
        );
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------------
// Helpers.

/// The example manifest of a plugin, as JSON.
fn manifest(name: &str) -> Result<Value> {
    let (_, yaml) = PLUGINS.iter().find(|(n, _)| *n == name).ok_or(format!("no example for {name}"))?;
    serde_saphyr::from_str(yaml).map_err(|e| format!("deploy/examples/{name}.yaml: {e}"))
}

/// This demo runs Envoy only: other targets (Higress, Istio) need their CRDs.
fn keep_envoy_target(doc: &mut Value) {
    doc["spec"]["targets"] = json!(["envoy"]);
}
