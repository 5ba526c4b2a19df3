//! Test support: a real Kubernetes API server for the controller's tests.
//!
//! [`TestCluster::start`] runs etcd and `apiextensions-apiserver` (the Kubernetes API server for
//! CRDs and custom objects) on free ports of 127.0.0.1, in a temporary directory of their own,
//! and hands out a [`kube::Client`] authenticated as a member of `system:masters`. Both processes
//! are killed when the `TestCluster` is dropped (also when a test panics).
//!
//! This server validates custom objects (OpenAPI schemas, CEL rules), serves the status
//! subresource, watches and server-side apply. It does not serve core/v1 (no Namespaces, Secrets,
//! Events), no Leases and no `/api` discovery: objects may be created in any namespace name.
//!
//! The binaries are found through `APISERVER_BIN` and `ETCD_BIN`; without them, the newest
//! `apiextensions-apiserver-*` in `${XDG_CACHE_HOME:-$HOME/.cache}/wasmplug/` and `etcd` on PATH.
//! `make apiserver-tools` installs both.

use std::collections::HashSet;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};

/// The readiness check: everything but `informer-sync` (see [`TestCluster::wait_ready`]).
const READYZ: &str = "/readyz?exclude=informer-sync";
/// How long the API server may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long etcd may take to accept connections.
const ETCD_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a CRD may take to become Established.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to start, each with fresh ports (a port may be taken between probing and binding).
const START_ATTEMPTS: usize = 3;
/// Lines of a process log quoted in errors.
const LOG_TAIL_LINES: usize = 30;
/// Field manager for the CRDs applied by [`TestCluster::install_crds`].
const FIELD_MANAGER: &str = "wasmplug-testenv";

/// Everything that can go wrong while starting or using a test cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("apiextensions-apiserver not found: {0}; run `make apiserver-tools` (or set APISERVER_BIN)")]
    ApiserverNotFound(String),
    #[error("etcd not found: {0}; run `make apiserver-tools` (or set ETCD_BIN)")]
    EtcdNotFound(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("test certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{process} exited ({status}) before it was ready; last lines of {log}:\n{tail}")]
    Exited { process: &'static str, status: ExitStatus, log: PathBuf, tail: String },
    #[error("{process} was not ready after {secs}s ({last}); last lines of {log}:\n{tail}")]
    NotReady { process: &'static str, secs: u64, last: String, log: PathBuf, tail: String },
    #[error("CRD YAML: {0}")]
    Yaml(String),
    #[error("CRD {name} was not Established after {secs}s: {conditions}")]
    NotEstablished { name: String, secs: u64, conditions: String },
}

impl Error {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }

    /// Errors worth another attempt with fresh ports (a process that exited early may have lost
    /// its port to another program between probing and binding).
    fn retryable(&self) -> bool {
        matches!(self, Error::Exited { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running etcd + apiextensions-apiserver pair, stopped on drop.
pub struct TestCluster {
    // Fields drop in order: the API server, then etcd, then the directory with their data and logs.
    apiserver: Process,
    etcd: Process,
    client: kube::Client,
    base_url: String,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("base_url", &self.base_url)
            .field("dir", &self.dir.path())
            .field("apiserver_pid", &self.apiserver.0.id())
            .field("etcd_pid", &self.etcd.0.id())
            .finish()
    }
}

/// Where the binaries are.
#[derive(Debug, Clone)]
struct Binaries {
    apiserver: PathBuf,
    etcd: PathBuf,
}

impl TestCluster {
    /// Starts etcd and the API server and waits until the server is ready.
    pub async fn start() -> Result<TestCluster> {
        let bins = Binaries { apiserver: find_apiserver()?, etcd: find_etcd()? };
        let mut attempt = 1;
        loop {
            match Self::start_once(&bins).await {
                Err(e) if e.retryable() && attempt < START_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    async fn start_once(bins: &Binaries) -> Result<TestCluster> {
        let dir = tempfile::Builder::new()
            .prefix("wasmplug-testenv-")
            .tempdir()
            .map_err(|e| Error::io("create the temporary directory", e))?;
        let root = dir.path().to_path_buf();
        let pki = write_certificates(&root)?;

        let ports = free_ports(3)?;
        let (etcd_port, peer_port, api_port) = (ports[0], ports[1], ports[2]);
        let base_url = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = root.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &base_url, &pki)?;

        let etcd_log = root.join("etcd.log");
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = spawn(
            "etcd",
            &bins.etcd,
            &[
                "--name=testenv".to_string(),
                format!("--data-dir={}", root.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=testenv={peer_url}"),
                "--unsafe-no-fsync".to_string(),
            ],
            &etcd_log,
        )?;
        wait_for_port(&mut etcd, etcd_port, &etcd_log).await?;

        let api_log = root.join("apiserver.log");
        let kc = kubeconfig.display().to_string();
        let apiserver = spawn(
            "apiextensions-apiserver",
            &bins.apiserver,
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".to_string(),
                format!("--secure-port={api_port}"),
                format!("--cert-dir={}", root.join("serving").display()),
                format!("--tls-cert-file={}", pki.server_cert.display()),
                format!("--tls-private-key-file={}", pki.server_key.display()),
                format!("--client-ca-file={}", pki.ca_cert.display()),
                "--authentication-skip-lookup".to_string(),
                format!("--kubeconfig={kc}"),
                format!("--authentication-kubeconfig={kc}"),
                format!("--authorization-kubeconfig={kc}"),
                "--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionPolicy,MutatingAdmissionWebhook,\
                 ValidatingAdmissionPolicy,ValidatingAdmissionWebhook"
                    .to_string(),
                "--enable-priority-and-fairness=false".to_string(),
            ],
            &api_log,
        )?;
        let client = client_from(&kubeconfig).await?;
        let mut cluster = TestCluster { apiserver, etcd, client, base_url, kubeconfig, dir };
        cluster.wait_ready(&api_log).await?;
        Ok(cluster)
    }

    /// Polls `/readyz` until it answers `ok`, the server exits or the time is up. The
    /// `informer-sync` check is left out: it waits for a Service informer that never syncs on a
    /// server without core/v1.
    async fn wait_ready(&mut self, log: &Path) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.apiserver.0.try_wait().map_err(|e| Error::io("wait for the API server", e))? {
                return Err(Error::Exited {
                    process: "apiextensions-apiserver",
                    status,
                    log: log.to_path_buf(),
                    tail: tail(log),
                });
            }
            if let Some(status) = self.etcd.0.try_wait().map_err(|e| Error::io("wait for etcd", e))? {
                let log = self.dir.path().join("etcd.log");
                return Err(Error::Exited { process: "etcd", status, tail: tail(&log), log });
            }
            let last = match self.get_text(READYZ).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => body,
                Err(e) => e.to_string(),
            };
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::NotReady {
                    process: "apiextensions-apiserver",
                    secs: READY_TIMEOUT.as_secs(),
                    last,
                    log: log.to_path_buf(),
                    tail: tail(log),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A client for this server, authenticated as a member of `system:masters`.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The kubeconfig for this server (certificate files next to it, in the cluster's directory).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The cluster's temporary directory (etcd data, certificates, `etcd.log`, `apiserver.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// GET `path` on the server and return the body (an error for non-2xx answers).
    pub async fn get_text(&self, path: &str) -> Result<String> {
        self.get_accepting(path, "application/json").await
    }

    /// GET `path` (an object or a list) as the server's Table rendering: the printer columns
    /// and cells that `kubectl get` prints.
    pub async fn get_table(&self, path: &str) -> Result<Value> {
        let text = self.get_accepting(path, "application/json;as=Table;v=v1;g=meta.k8s.io").await?;
        serde_json::from_str(&text).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))
    }

    async fn get_accepting(&self, path: &str, accept: &str) -> Result<String> {
        let request = http::Request::get(path)
            .header(http::header::ACCEPT, accept)
            .body(Vec::new())
            .map_err(|e| Error::Kube(kube::Error::HttpError(e)))?;
        Ok(self.client.request_text(request).await?)
    }

    /// Applies (server-side) every `CustomResourceDefinition` in `yaml` (several documents per
    /// string; other kinds are skipped) and waits until each is Established. Returns the names.
    pub async fn install_crds(&self, yaml: &str) -> Result<Vec<String>> {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).map_err(|e| Error::Yaml(e.to_string()))?;
        let api: Api<CustomResourceDefinition> = Api::all(self.client());
        let mut names = Vec::new();
        for doc in docs.into_iter().filter(|d| d["kind"] == "CustomResourceDefinition") {
            let name = doc["metadata"]["name"]
                .as_str()
                .ok_or_else(|| Error::Yaml("a CustomResourceDefinition without metadata.name".to_string()))?
                .to_string();
            api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&doc)).await?;
            names.push(name);
        }
        if names.is_empty() {
            return Err(Error::Yaml("no CustomResourceDefinition in the YAML".to_string()));
        }
        for name in &names {
            wait_established(&api, name).await?;
        }
        Ok(names)
    }
}

/// A child process that is killed (and reaped) when dropped: on panics, on errors and when a
/// `start()` future is cancelled half-way, nothing keeps running.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        // Errors are ignored: the process may have exited already.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls a CRD until its `Established` condition is `True`.
async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        let crd = api.get(name).await?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
            return Ok(());
        }
        if started.elapsed() > ESTABLISHED_TIMEOUT {
            let conditions = conditions
                .iter()
                .map(|c| format!("{}={} ({})", c.type_, c.status, c.message.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::NotEstablished {
                name: name.to_string(),
                secs: ESTABLISHED_TIMEOUT.as_secs(),
                conditions,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn(name: &str, bin: &Path, args: &[String], log: &Path) -> Result<Process> {
    let out = File::create(log).map_err(|e| Error::io(format!("create {}", log.display()), e))?;
    let err = out.try_clone().map_err(|e| Error::io(format!("open {}", log.display()), e))?;
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map(Process)
        .map_err(|e| Error::io(format!("start {name} ({})", bin.display()), e))
}

/// Waits until something accepts connections on 127.0.0.1:`port`, or the process exits.
async fn wait_for_port(process: &mut Process, port: u16, log: &Path) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = process.0.try_wait().map_err(|e| Error::io("wait for etcd", e))? {
            return Err(Error::Exited { process: "etcd", status, log: log.to_path_buf(), tail: tail(log) });
        }
        match tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() > ETCD_TIMEOUT => {
                return Err(Error::NotReady {
                    process: "etcd",
                    secs: ETCD_TIMEOUT.as_secs(),
                    last: e.to_string(),
                    log: log.to_path_buf(),
                    tail: tail(log),
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The last lines of a log file (for error messages).
fn tail(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

/// `n` distinct free ports on 127.0.0.1, never handed out before by this process (so clusters
/// started in parallel by one test binary do not get the same ports).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    let mut given = given.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Hold every probe listener until all ports are chosen, so the kernel cannot repeat one.
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| Error::io("find a free port on 127.0.0.1", e))?;
        let port = listener.local_addr().map_err(|e| Error::io("find a free port on 127.0.0.1", e))?.port();
        if given.insert(port) {
            ports.push(port);
        }
        listeners.push(listener);
        if listeners.len() > 1000 {
            return Err(Error::io(
                "find a free port on 127.0.0.1",
                std::io::Error::other("every port offered was handed out before"),
            ));
        }
    }
    Ok(ports)
}

/// Where the generated certificates and keys are.
struct Pki {
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A CA, a serving certificate for 127.0.0.1/localhost and a client certificate in
/// `system:masters`, all X.509 v3, written as PEM files under `dir/pki`.
fn write_certificates(dir: &Path) -> Result<Pki> {
    let pki_dir = dir.join("pki");
    std::fs::create_dir_all(&pki_dir).map_err(|e| Error::io(format!("create {}", pki_dir.display()), e))?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = name(&[(DnType::CommonName, "wasmplug-testenv-ca")]);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    let mut server_params = CertificateParams::new(vec!["localhost".to_string()])?;
    server_params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    server_params.distinguished_name = name(&[(DnType::CommonName, "wasmplug-testenv-apiserver")]);
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &ca)?;

    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params.distinguished_name =
        name(&[(DnType::CommonName, "wasmplug-testenv-admin"), (DnType::OrganizationName, "system:masters")]);
    client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client_cert = client_params.signed_by(&client_key, &ca)?;

    let pki = Pki {
        ca_cert: pki_dir.join("ca.crt"),
        server_cert: pki_dir.join("server.crt"),
        server_key: pki_dir.join("server.key"),
        client_cert: pki_dir.join("client.crt"),
        client_key: pki_dir.join("client.key"),
    };
    for (path, pem) in [
        (&pki.ca_cert, ca_cert.pem()),
        (&pki.server_cert, server_cert.pem()),
        (&pki.server_key, server_key.serialize_pem()),
        (&pki.client_cert, client_cert.pem()),
        (&pki.client_key, client_key.serialize_pem()),
    ] {
        std::fs::write(path, pem).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    }
    Ok(pki)
}

fn name(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in parts {
        dn.push(ty.clone(), *value);
    }
    dn
}

/// A kubeconfig (JSON, which is YAML) pointing at the server with the client certificate; the
/// API server reads it too, to reach itself for delegated authentication and authorization.
fn write_kubeconfig(path: &Path, server: &str, pki: &Pki) -> Result<()> {
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "testenv", "cluster": {
            "server": server,
            "certificate-authority": pki.ca_cert,
        }}],
        "users": [{ "name": "admin", "user": {
            "client-certificate": pki.client_cert,
            "client-key": pki.client_key,
        }}],
        "contexts": [{ "name": "testenv", "context": { "cluster": "testenv", "user": "admin" } }],
        "current-context": "testenv",
    });
    let text = serde_json::to_string_pretty(&kubeconfig)
        .map_err(|e| Error::io("serialize the kubeconfig", std::io::Error::other(e)))?;
    std::fs::write(path, text).map_err(|e| Error::io(format!("write {}", path.display()), e))
}

async fn client_from(kubeconfig: &Path) -> Result<kube::Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// The cache directory `install-apiserver.sh` writes to.
fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("wasmplug")),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("wasmplug")),
    }
}

fn find_apiserver() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("APISERVER_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(Error::ApiserverNotFound(format!("APISERVER_BIN={} is not a file", bin.display())))
        };
    }
    let Some(dir) = cache_dir() else {
        return Err(Error::ApiserverNotFound("APISERVER_BIN is unset and neither XDG_CACHE_HOME nor HOME is".into()));
    };
    let newest = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.starts_with("apiextensions-apiserver-") && !name.ends_with(".tmp")
            })
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                meta.is_file().then_some((meta.modified().ok()?, entry.path()))
            })
            .max()
            .map(|(_, path)| path)
    });
    newest.ok_or_else(|| {
        Error::ApiserverNotFound(format!(
            "APISERVER_BIN is unset and {} has no apiextensions-apiserver-*",
            dir.display()
        ))
    })
}

fn find_etcd() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ETCD_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(Error::EtcdNotFound(format!("ETCD_BIN={} is not a file", bin.display())))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("etcd"))
        .find(|path| path.is_file())
        .ok_or_else(|| Error::EtcdNotFound("ETCD_BIN is unset and there is no etcd on PATH".to_string()))
}

/// A CRD standing in for a built-in namespaced API this server lacks (Leases, Events): same
/// group, version `v1`, kind and plural, so clients use the same paths and get the same
/// resourceVersion compare-and-swap; the schema keeps whatever is sent.
pub fn stand_in_crd(group: &str, kind: &str, plural: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
  annotations:
    api-approved.kubernetes.io: "unapproved, test stand-in for a built-in API"
spec:
  group: {group}
  scope: Namespaced
  names: {{ plural: {plural}, singular: {singular}, kind: {kind}, listKind: {kind}List }}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {{ type: object, x-kubernetes-preserve-unknown-fields: true }}
"#,
        singular = kind.to_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_across_calls() {
        let a = free_ports(3).unwrap();
        let b = free_ports(3).unwrap();
        let all: HashSet<u16> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 6, "{a:?} {b:?}");
    }

    #[test]
    fn certificates_are_written_as_pem() {
        let dir = tempfile::tempdir().unwrap();
        let pki = write_certificates(dir.path()).unwrap();
        for path in [&pki.ca_cert, &pki.server_cert, &pki.client_cert] {
            let pem = std::fs::read_to_string(path).unwrap();
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        }
        assert!(std::fs::read_to_string(&pki.client_key).unwrap().contains("PRIVATE KEY"));
    }
}
