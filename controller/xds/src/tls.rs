//! Mutual TLS for the xDS and module servers.
//!
//! [`ServerTls`] holds the server's certificate and key and the CA that gateway certificates
//! must chain to. It can be replaced at any time ([`ServerTls::set`]): new connections use the
//! new material, established ones carry on (rotation drops no gateway). The names a gateway's
//! certificate carries (its subject's common name, DNS and URI subject alternative names) are
//! the node ids it may use and the identity the module server checks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

/// PEM material of a TLS server that requires client certificates.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    /// The server's certificate chain (leaf first).
    pub cert_chain: Vec<u8>,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Vec<u8>,
    /// The CA certificates client certificates must chain to (several during a CA rotation).
    pub client_ca: Vec<u8>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").field("key", &"<redacted>").finish_non_exhaustive()
    }
}

pub use wasmplug_envoy::bootstrap::{CA_FILE, CERT_FILE, KEY_FILE};

impl TlsMaterial {
    /// Reads the files of a mounted TLS Secret from `dir` (the CA is that of the clients).
    pub fn read_dir(dir: &Path) -> Result<TlsMaterial, TlsError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|source| TlsError::Read { path, source })
        };
        Ok(TlsMaterial { cert_chain: read(CERT_FILE)?, key: read(KEY_FILE)?, client_ca: read(CA_FILE)? })
    }
}

/// Why TLS material was not taken.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{what}: no PEM certificate")]
    NoCertificate { what: &'static str },
    #[error("{what}: {source}")]
    Pem { what: &'static str, source: rustls::pki_types::pem::Error },
    #[error("client CA: {0}")]
    ClientCa(#[source] rustls::server::VerifierBuilderError),
    #[error("server certificate and key: {0}")]
    Config(#[source] rustls::Error),
}

/// What a server speaks over TLS (its ALPN protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// gRPC: `h2`.
    Grpc,
    /// The module server: `http/1.1`.
    Http1,
}

struct Configs {
    grpc: Arc<ServerConfig>,
    http1: Arc<ServerConfig>,
}

/// The current TLS configuration of the servers; cheap to share, replaceable at any time.
pub struct ServerTls {
    configs: RwLock<Arc<Configs>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Checks and takes `material`.
    pub fn new(material: &TlsMaterial) -> Result<Arc<ServerTls>, TlsError> {
        Ok(Arc::new(ServerTls { configs: RwLock::new(Arc::new(build(material)?)) }))
    }

    /// Replaces the material for new connections; on an error the current one stays.
    pub fn set(&self, material: &TlsMaterial) -> Result<(), TlsError> {
        let configs = Arc::new(build(material)?);
        *self.configs.write().unwrap_or_else(PoisonError::into_inner) = configs;
        Ok(())
    }

    /// Re-reads `dir` ([`TlsMaterial::read_dir`]) every `every` and takes what changed, so a
    /// renewed Secret (cert-manager, or a rotated CA bundle) is used without a restart and
    /// without dropping connected gateways. Unreadable or invalid files are logged and the
    /// current material stays.
    pub fn watch_dir(self: &Arc<Self>, dir: PathBuf, every: Duration) -> tokio::task::JoinHandle<()> {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let mut last = TlsMaterial::read_dir(&dir).ok();
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let material = match TlsMaterial::read_dir(&dir) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "TLS files not reloaded; the current ones stay");
                        continue;
                    }
                };
                if last.as_ref() == Some(&material) {
                    continue;
                }
                match tls.set(&material) {
                    Ok(()) => tracing::info!(dir = %dir.display(), "TLS certificates reloaded"),
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "TLS files refused; the current ones stay")
                    }
                }
                last = Some(material);
            }
        })
    }

    pub(crate) fn config(&self, protocol: Protocol) -> Arc<ServerConfig> {
        let configs = Arc::clone(&self.configs.read().unwrap_or_else(PoisonError::into_inner));
        match protocol {
            Protocol::Grpc => Arc::clone(&configs.grpc),
            Protocol::Http1 => Arc::clone(&configs.http1),
        }
    }
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

fn build(material: &TlsMaterial) -> Result<Configs, TlsError> {
    let chain = certificates(&material.cert_chain, "server certificate")?;
    let key =
        PrivateKeyDer::from_pem_slice(&material.key).map_err(|source| TlsError::Pem { what: "server key", source })?;
    let mut roots = RootCertStore::empty();
    for ca in certificates(&material.client_ca, "client CA")? {
        roots.add(ca).map_err(TlsError::Config)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .build()
        .map_err(TlsError::ClientCa)?;
    let make = |alpn: &[u8]| -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_client_cert_verifier(Arc::clone(&verifier))
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    };
    Ok(Configs { grpc: make(b"h2")?, http1: make(b"http/1.1")? })
}

/// The names and the end of validity of the first certificate in `pem`.
pub fn pem_certificate_facts(pem: &[u8]) -> Option<(Vec<String>, std::time::SystemTime)> {
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let not_after = u64::try_from(cert.validity().not_after.timestamp()).ok()?;
    Some((certificate_names(&der), std::time::UNIX_EPOCH + Duration::from_secs(not_after)))
}

/// The names a certificate carries: its subject's common names, then its DNS and URI subject
/// alternative names. Empty when it cannot be parsed (the handshake has verified it already).
pub fn certificate_names(cert: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert) else {
        return Vec::new();
    };
    let mut names: Vec<String> =
        cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok().map(str::to_string)).collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) => names.push((*n).to_string()),
                _ => {}
            }
        }
    }
    names
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The names of its verified client certificate; `None` on a plaintext connection.
    pub names: Option<Vec<String>>,
}

impl Peer {
    /// Whether it may act as `id`: any peer on a plaintext server, else one whose certificate
    /// carries that name, or a name ending in `*` that `id` starts with (`edge-gateway-*` for
    /// the pods of one Deployment, whose node ids are their pod names).
    pub fn may_be(&self, id: &str) -> bool {
        self.names.as_ref().is_none_or(|names| names.iter().any(|n| name_permits(n, id)))
    }
}

/// Whether a certificate name permits the node id `id` (see [`Peer::may_be`]).
pub fn name_permits(name: &str, id: &str) -> bool {
    match name.strip_suffix('*') {
        Some(prefix) => !prefix.is_empty() && id.len() > prefix.len() && id.starts_with(prefix),
        None => name == id,
    }
}

/// A refused connection or request, as reported to [`OnRefused`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `xds` or `modules`.
    pub server: &'static str,
    pub peer: SocketAddr,
    pub reason: RefusalReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// No client certificate, one from another CA, or a failed handshake.
    Handshake,
    /// A node id its certificate does not carry.
    NodeId,
    /// A module none of its selected plugins references.
    Module,
}

impl RefusalReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Handshake => "handshake",
            RefusalReason::NodeId => "node_id",
            RefusalReason::Module => "module",
        }
    }
}

/// Called for every refusal (after it is logged), e.g. to count it in a metric.
pub type OnRefused = Arc<dyn Fn(&Refusal) + Send + Sync>;

/// How a server takes connections.
#[derive(Clone)]
pub enum Transport {
    /// No TLS, no identities: any process that reaches the port is served. For local demos.
    Plaintext,
    /// Mutual TLS: only gateways with a certificate from the client CA.
    Mtls { tls: Arc<ServerTls>, on_refused: Option<OnRefused> },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Plaintext => "Plaintext",
            Transport::Mtls { .. } => "Mtls",
        })
    }
}

impl Transport {
    pub fn mtls(tls: Arc<ServerTls>) -> Transport {
        Transport::Mtls { tls, on_refused: None }
    }

    /// Logs a refusal and reports it.
    pub(crate) fn refused(&self, server: &'static str, peer: SocketAddr, reason: RefusalReason, detail: &str) {
        tracing::warn!(server, %peer, reason = reason.as_str(), detail, "refused a gateway connection");
        if let Transport::Mtls { on_refused: Some(f), .. } = self {
            f(&Refusal { server, peer, reason });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::name_permits;

    #[test]
    fn names_permit_node_ids() {
        assert!(name_permits("gw-1", "gw-1"));
        assert!(!name_permits("gw-1", "gw-12"));
        assert!(name_permits("edge-*", "edge-7d9f-x2"));
        assert!(!name_permits("edge-*", "edge-"));
        assert!(!name_permits("edge-*", "other"));
        assert!(!name_permits("*", "anything"), "a bare * names nobody");
    }
}
