//! Test fixture: the module server and the xDS server in-process, a recording upstream, and
//! real Envoys bootstrapped with `envoy_bootstrap`, all on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tempfile::TempDir;
use wasmplug_envoy::bootstrap::MODULES_CLUSTER;
use wasmplug_envoy::bootstrap::{BootstrapOptions, GatewayTls, envoy_bootstrap};
use wasmplug_envoy::filter::module_url;
use wasmplug_envoy::{Code, RemoteCode, WasmFilter};
use wasmplug_testkit::upstream::Upstream;
use wasmplug_xds::ca::{CertificateAuthority, Issued};
use wasmplug_xds::tls::OnRefused;
use wasmplug_xds::{ModuleServer, PluginFilter, ServerTls, Transport, XdsOptions, XdsServer};

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Requests through Envoy that failed below HTTP (connection closed or reset), all tests.
pub static TRANSPORT_ERRORS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A plugin module of the workspace: (sha256 hex, path).
pub fn module(crate_name: &str) -> (String, PathBuf) {
    let path = wasmplug_testkit::wasm::plugin_module(crate_name);
    let bytes = std::fs::read(&path).unwrap();
    (hex::encode(Sha256::digest(&bytes)), path)
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A CA for the servers and the gateways of a test, their certificates as files.
pub struct Pki {
    pub ca: CertificateAuthority,
    /// The servers' certificate (for 127.0.0.1).
    pub server: Issued,
    /// The servers' TLS (replace its material to rotate).
    pub tls: Arc<ServerTls>,
    dir: TempDir,
}

impl Pki {
    /// A new CA and a server certificate for 127.0.0.1.
    pub fn new() -> Pki {
        let ca = CertificateAuthority::generate("wasmplug-test-ca").unwrap();
        let server = ca.issue_server(&["127.0.0.1".into()], Duration::from_secs(3600)).unwrap();
        let tls = ServerTls::new(&server.server_material()).unwrap();
        Pki { ca, server, tls, dir: tempfile::Builder::new().prefix("wasmplug-pki-").tempdir().unwrap() }
    }

    /// Issues a client certificate for `node` and writes it as a Secret's three files.
    pub fn gateway_files(&self, node: &str) -> GatewayTls {
        let issued = self.ca.issue_gateway(node, Duration::from_secs(3600)).unwrap();
        let dir = self.dir.path().join(node);
        issued.write_dir(&dir).unwrap();
        GatewayTls::from_dir(dir.to_str().unwrap())
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// The control plane side: servers running on their own runtime.
pub struct ControlPlane {
    pub rt: tokio::runtime::Runtime,
    pub xds: XdsServer,
    pub xds_addr: SocketAddr,
    pub modules: ModuleServer,
    pub upstream: Upstream,
    /// Over mutual TLS: the CA; `None`: plaintext.
    pub pki: Option<Pki>,
}

impl ControlPlane {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut XdsOptions)) -> Self {
        Self::start_over(None, None, tweak)
    }

    /// Both servers over mutual TLS with a fresh CA; gateways get certificates for their node.
    pub fn start_mtls() -> Self {
        Self::start_over(Some(Pki::new()), None, |_| {})
    }

    /// Both servers over mutual TLS with this server TLS (gateways bring their own files).
    pub fn start_mtls_with(tls: Arc<ServerTls>) -> Self {
        let mut pki = Pki::new();
        pki.tls = tls;
        Self::start_over(Some(pki), None, |_| {})
    }

    /// [`ControlPlane::start_mtls`], with every refusal reported to `on_refused`.
    pub fn start_mtls_reporting(on_refused: OnRefused) -> Self {
        Self::start_over(Some(Pki::new()), Some(on_refused), |_| {})
    }

    fn start_over(pki: Option<Pki>, on_refused: Option<OnRefused>, tweak: impl FnOnce(&mut XdsOptions)) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut opts = XdsOptions { listener_address: "127.0.0.1:10000".into(), ..XdsOptions::default() };
        tweak(&mut opts);
        let xds = XdsServer::new(opts);
        let any = "127.0.0.1:0".parse().unwrap();
        let (modules, xds_addr) = match &pki {
            None => (rt.block_on(ModuleServer::bind(any)).unwrap(), rt.block_on(xds.serve(any)).unwrap()),
            Some(pki) => {
                let transport = Transport::Mtls { tls: Arc::clone(&pki.tls), on_refused };
                let modules = rt.block_on(ModuleServer::bind_mtls(any, transport.clone(), xds.clone())).unwrap();
                (modules, rt.block_on(xds.serve_with(any, transport)).unwrap())
            }
        };
        ControlPlane { rt, xds, xds_addr, modules, upstream: Upstream::start(), pki }
    }

    /// Allows these workspace plugin modules on the module server; returns their sha256s.
    pub fn allow(&self, crates: &[&str]) -> Vec<String> {
        let mods: Vec<(String, PathBuf)> = crates.iter().map(|c| module(c)).collect();
        self.modules.set_modules(mods.clone());
        mods.into_iter().map(|(h, _)| h).collect()
    }

    /// A fail-closed plugin for every node, its module fetched from this control plane.
    pub fn plugin(&self, name: &str, sha: &str, configuration: &str) -> PluginFilter {
        let code = RemoteCode {
            uri: module_url(&self.modules.base_url(), sha),
            cluster: MODULES_CLUSTER.into(),
            timeout: Duration::from_secs(30),
            sha256: sha.into(),
        };
        let filter = WasmFilter::new(name, Code::Remote(code)).configuration(configuration);
        PluginFilter { name: name.into(), match_labels: BTreeMap::new(), filter }
    }

    pub fn update(&self, plugins: Vec<PluginFilter>) -> u64 {
        self.xds.update(plugins).unwrap()
    }

    /// The bootstrap of `node`; over mutual TLS with a certificate for it.
    pub fn bootstrap(&self, node: &str, labels: BTreeMap<String, String>, listen_port: u16) -> serde_json::Value {
        let tls = self.pki.as_ref().map(|p| p.gateway_files(node));
        self.bootstrap_with(node, labels, listen_port, tls)
    }

    pub fn bootstrap_with(
        &self,
        node: &str,
        labels: BTreeMap<String, String>,
        listen_port: u16,
        tls: Option<GatewayTls>,
    ) -> serde_json::Value {
        envoy_bootstrap(&BootstrapOptions {
            xds: self.xds_addr.to_string(),
            node: node.into(),
            labels,
            upstream: Some(format!("http://127.0.0.1:{}", self.upstream.port())),
            listen_address: None,
            listen_port,
            admin_port: 0,
            modules: self.modules.local_addr().to_string(),
            tls,
        })
        .unwrap()
    }

    /// Starts an Envoy for `node` and waits until its listener is up. The listener binds port
    /// 0 (no race with other tests for a port); its port is read from the admin API.
    pub fn gateway(&self, node: &str, labels: BTreeMap<String, String>) -> Gateway {
        Gateway::start(&self.bootstrap(node, labels, 0))
    }
}

pub fn envoy_bin() -> PathBuf {
    wasmplug_testkit::envoy::envoy_binary().unwrap()
}

/// A running Envoy; killed on drop (its log printed if the test failed).
pub struct Gateway {
    child: Child,
    dir: TempDir,
    pub admin_port: u16,
    pub port: u16,
}

impl Gateway {
    pub fn start(bootstrap: &serde_json::Value) -> Gateway {
        let mut gw = Gateway::spawn(bootstrap);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = gw.child.try_wait().unwrap() {
                panic!("envoy exited ({status}):\n{}", gw.logs());
            }
            if gw.admin("/ready").is_some_and(|b| b.contains("LIVE"))
                && let Some(port) = gw.listener_port()
            {
                gw.port = port;
                return gw;
            }
            assert!(Instant::now() < deadline, "envoy not ready in {TIMEOUT:?}:\n{}", gw.logs());
            sleep(Duration::from_millis(20));
        }
    }

    /// Starts an Envoy and returns once its admin API answers, whether or not it got a listener.
    pub fn spawn(bootstrap: &serde_json::Value) -> Gateway {
        let dir = tempfile::Builder::new().prefix("wasmplug-xds-envoy-").tempdir().unwrap();
        let cfg = dir.path().join("envoy.yaml");
        std::fs::write(&cfg, serde_json::to_string_pretty(bootstrap).unwrap()).unwrap();
        let log = std::fs::File::create(dir.path().join("stdio.log")).unwrap();
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&cfg)
            .args(["--concurrency", "1", "--use-dynamic-base-id", "-l", "info"])
            .args(["--file-flush-interval-msec", "50", "--drain-time-s", "2"])
            .arg("--log-path")
            .arg(dir.path().join("envoy.log"))
            .arg("--admin-address-path")
            .arg(dir.path().join("admin_address"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut gw = Gateway { child, dir, admin_port: 0, port: 0 };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = gw.child.try_wait().unwrap() {
                panic!("envoy exited ({status}):\n{}", gw.logs());
            }
            if let Ok(text) = std::fs::read_to_string(gw.dir.path().join("admin_address"))
                && let Some(p) = text.trim().rsplit_once(':').and_then(|(_, p)| p.parse().ok())
                && wasmplug_testkit::client::get(p, "/ready").is_ok()
            {
                gw.admin_port = p;
                return gw;
            }
            assert!(Instant::now() < deadline, "envoy admin not up in {TIMEOUT:?}:\n{}", gw.logs());
            sleep(Duration::from_millis(20));
        }
    }

    /// The bound port of the `wasmplug-gateway` listener, from admin `/listeners`.
    pub fn listener_port(&self) -> Option<u16> {
        let text = self.admin("/listeners?format=json")?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["listener_statuses"]
            .as_array()?
            .iter()
            .find(|l| l["name"] == "wasmplug-gateway")
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
    }

    pub fn admin(&self, path: &str) -> Option<String> {
        wasmplug_testkit::client::get(self.admin_port, path).ok().map(|r| r.text())
    }

    pub fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}\n--- stdio ---\n{}",
            read(&self.dir.path().join("envoy.log")),
            read(&self.dir.path().join("stdio.log"))
        )
    }

    /// GET on a new connection. A transport error is retried (twice) and reported on stderr:
    /// see [`TRANSPORT_ERRORS`].
    pub fn get(&self, path: &str) -> wasmplug_testkit::client::Response {
        let mut last = String::new();
        for _ in 0..3 {
            match wasmplug_testkit::client::get(self.port, path) {
                Ok(r) => return r,
                Err(e) => {
                    eprintln!("transport error (retried): {e}");
                    TRANSPORT_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    last = e;
                }
            }
        }
        panic!("GET {path}: {last}\n{}", self.logs())
    }

    /// The names of the listener's HTTP filters, from /config_dump.
    pub fn http_filters(&self) -> Vec<String> {
        let dump: serde_json::Value =
            serde_json::from_str(&self.admin("/config_dump?resource=dynamic_listeners").unwrap_or_default())
                .unwrap_or_default();
        let mut names = Vec::new();
        for l in dump["configs"].as_array().into_iter().flatten() {
            let filters =
                &l["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
            for f in filters.as_array().into_iter().flatten() {
                names.push(f["name"].as_str().unwrap_or_default().to_string());
            }
        }
        names
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- envoy log ---\n{}", self.logs());
        }
    }
}

/// Polls `f` until it returns true; the time it took, or None after `timeout`.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        sleep(Duration::from_millis(5));
    }
}

/// (status, headers lowercased, body).
pub type RawResponse = (u16, Vec<(String, String)>, String);

/// A raw HTTP/1.1 keep-alive connection.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub local: SocketAddr,
}

impl KeepAlive {
    pub fn open(port: u16) -> KeepAlive {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let local = s.local_addr().unwrap();
        KeepAlive { writer: s.try_clone().unwrap(), reader: BufReader::new(s), local }
    }

    /// (status, headers lowercased, body) of a GET on this connection.
    pub fn get(&mut self, path: &str) -> std::io::Result<RawResponse> {
        write!(self.writer, "GET {path} HTTP/1.1\r\nhost: test\r\n\r\n")?;
        self.writer.flush()?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize =
            headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
    }
}
