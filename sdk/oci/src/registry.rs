//! Registry access on `oci-client`: auth, TLS, the plain-HTTP allowlist, bounded retries, and
//! blob/manifest transfers that are size-checked and digest-verified.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;

use crate::auth::DockerConfig;
use crate::error::{Error, Result};
use crate::http::{Authz, Http, HttpError, Op};
use crate::media::{ACCEPTED_MANIFESTS, Descriptor, Limits};
use crate::reference::{Digest, ImageRef};

/// Bounded retries with exponential backoff, for 5xx, 429, resets and timeouts only.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 4, initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(3) }
    }
}

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `host[:port]` entries spoken to in plain HTTP. Every other registry is HTTPS only, with
    /// no fallback.
    pub insecure_registries: Vec<String>,
    /// Extra trusted CA certificates (PEM), added to the system roots.
    pub ca_certificates_pem: Vec<Vec<u8>>,
    /// Credentials; anonymous for registries it does not list.
    pub docker_config: Option<DockerConfig>,
    pub limits: Limits,
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response (a stalled registry).
    pub read_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure_registries: Vec::new(),
            ca_certificates_pem: Vec::new(),
            docker_config: None,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// Progress of one transfer: bytes done, bytes expected.
pub type Progress<'a> = Option<&'a (dyn Fn(u64, u64) + Send + Sync)>;

/// A registry client. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Registry {
    http: std::sync::Arc<Http>,
    config: std::sync::Arc<RegistryConfig>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("insecure_registries", &self.config.insecure_registries).finish()
    }
}

enum Failure {
    Transient(String),
    Fatal(Error),
}

impl Registry {
    pub fn new(config: RegistryConfig) -> Result<Self> {
        // reqwest is built without a provider of its own: make sure the process has one (ring).
        // Failing means another provider is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        for pem in &config.ca_certificates_pem {
            if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::Certificate("not a PEM certificate".into()));
            }
        }
        // Fail early on a bad CA or TLS setup; pushes build their oci-client from the same config.
        make_oci_client(&config)?;
        let http = Http::new(
            config.insecure_registries.clone(),
            &config.ca_certificates_pem,
            config.docker_config.clone(),
            config.connect_timeout,
            config.read_timeout,
        )
        .map_err(Error::Certificate)?;
        Ok(Registry { http: std::sync::Arc::new(http), config: std::sync::Arc::new(config) })
    }

    /// The same registry settings with other credentials (a tenant's pull secret). Tokens and
    /// connections are not shared with `self`.
    pub fn with_credentials(&self, docker_config: Option<DockerConfig>) -> Result<Registry> {
        let mut config = (*self.config).clone();
        config.docker_config = docker_config;
        Registry::new(config)
    }

    /// An oci-client for one push call, with credentials already settled here: a bearer token
    /// fetched from a checked realm, so oci-client never contacts a realm itself.
    async fn push_client(&self, image: &ImageRef) -> std::result::Result<oci_client::Client, Failure> {
        let authz = self.http.authz(image, Op::Push).await.map_err(|e| self.classify_http(image, "auth", e))?;
        let auth = match authz {
            Authz::None => RegistryAuth::Anonymous,
            Authz::Basic(u, p) => RegistryAuth::Basic(u, p),
            Authz::Bearer(t) => RegistryAuth::Bearer(t),
        };
        let client = make_oci_client(&self.config).map_err(Failure::Fatal)?;
        client.store_auth_if_needed(image.registry(), &auth).await;
        Ok(client)
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    fn is_insecure(&self, image: &ImageRef) -> bool {
        self.config.insecure_registries.iter().any(|r| r == image.registry())
    }

    async fn retry<T, F, Fut>(&self, image: &ImageRef, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, Failure>>,
    {
        let policy = self.config.retry;
        let mut backoff = policy.initial_backoff;
        let attempts = policy.attempts.max(1);
        for attempt in 1..=attempts {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(detail)) if attempt == attempts => {
                    return Err(Error::Registry { image: image.to_string(), attempts, detail });
                }
                Err(Failure::Transient(_)) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(policy.max_backoff);
                }
            }
        }
        Err(Error::Registry { image: image.to_string(), attempts, detail: "no attempt made".into() })
    }

    fn classify(&self, image: &ImageRef, what: &str, e: OciDistributionError) -> Failure {
        let img = image.to_string();
        let denied = |status: u16, detail: String| Failure::Fatal(Error::Denied { image: img.clone(), status, detail });
        match e {
            OciDistributionError::UnauthorizedError { url } => denied(401, url),
            OciDistributionError::AuthenticationFailure(detail) => denied(401, detail),
            OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
                Failure::Fatal(Error::DigestMismatch { image: img, what: what.into(), expected, actual })
            }
            OciDistributionError::ServerError { code, url, message } => match code {
                401 | 403 => denied(code, format!("{url}: {message}")),
                404 => Failure::Fatal(Error::NotFound { image: img, detail: format!("{what}: {url}") }),
                408 | 429 | 500..=599 => Failure::Transient(format!("{what}: HTTP {code} from {url}: {message}")),
                _ => Failure::Fatal(Error::Registry {
                    image: img,
                    attempts: 1,
                    detail: format!("{what}: HTTP {code} from {url}: {message}"),
                }),
            },
            OciDistributionError::RegistryError { envelope, url } => {
                let codes: Vec<_> = envelope.errors.iter().map(|e| &e.code).collect();
                let detail = format!("{what}: {url}: {envelope}");
                if codes.iter().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                    denied(if codes.contains(&&OciErrorCode::Denied) { 403 } else { 401 }, detail)
                } else if codes.iter().any(|c| {
                    matches!(c, OciErrorCode::ManifestUnknown | OciErrorCode::BlobUnknown | OciErrorCode::NameUnknown)
                }) {
                    Failure::Fatal(Error::NotFound { image: img, detail })
                } else if codes.contains(&&OciErrorCode::Toomanyrequests) {
                    Failure::Transient(detail)
                } else {
                    Failure::Fatal(Error::Registry { image: img, attempts: 1, detail })
                }
            }
            OciDistributionError::RequestError(e) => self.classify_transport(image, what, &e),
            OciDistributionError::IoError(e) => Failure::Transient(format!("{what}: {e}")),
            other => Failure::Fatal(Error::Registry { image: img, attempts: 1, detail: format!("{what}: {other}") }),
        }
    }

    fn classify_transport(&self, image: &ImageRef, what: &str, e: &(dyn std::error::Error + 'static)) -> Failure {
        let mut chain = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        let lower = chain.to_ascii_lowercase();
        let tls_markers = ["certificate", "tls", "handshake", "corrupt message", "invalidcontenttype"];
        if tls_markers.iter().any(|m| lower.contains(m)) {
            let hint = if self.is_insecure(image) {
                ""
            } else {
                " (HTTPS is required; plain HTTP is used only for registries listed as insecure, e.g. --plain-http)"
            };
            return Failure::Fatal(Error::Registry {
                image: image.to_string(),
                attempts: 1,
                detail: format!("{what}: TLS failure talking to {}{hint}: {chain}", image.registry()),
            });
        }
        Failure::Transient(format!("{what}: {chain}"))
    }

    /// Maps the pull path's HTTP errors like oci-client's: 401/403 and refusals are final,
    /// 5xx/429/408 and transport failures are retried.
    fn classify_http(&self, image: &ImageRef, what: &str, e: HttpError) -> Failure {
        let img = image.to_string();
        match e {
            HttpError::Status { code, url, body } => match code {
                401 | 403 => {
                    Failure::Fatal(Error::Denied { image: img, status: code, detail: format!("{url}: {body}") })
                }
                404 => Failure::Fatal(Error::NotFound { image: img, detail: format!("{what}: {url}") }),
                408 | 429 | 500..=599 => Failure::Transient(format!("{what}: HTTP {code} from {url}: {body}")),
                _ => Failure::Fatal(Error::Registry {
                    image: img,
                    attempts: 1,
                    detail: format!("{what}: HTTP {code} from {url}: {body}"),
                }),
            },
            HttpError::Token { status, detail } => {
                Failure::Fatal(Error::Denied { image: img, status: if status == 403 { 403 } else { 401 }, detail })
            }
            HttpError::Refused(detail) => {
                Failure::Fatal(Error::Refused { image: img, detail: format!("{what}: {detail}") })
            }
            HttpError::TooLarge { size } => Failure::Fatal(Error::TooLarge {
                image: img,
                what: what.into(),
                size,
                limit: self.config.limits.max_manifest_bytes,
            }),
            HttpError::Transport(e) => self.classify_transport(image, what, &e),
        }
    }

    /// Fetches a manifest (or index) document. With a digest in the reference, the document's
    /// own sha256 must equal it. Returns the bytes and their digest. The body is read through a
    /// bounded reader: a declared length over the limit is refused before any of it is read.
    pub async fn fetch_manifest(&self, image: &ImageRef) -> Result<(Bytes, Digest)> {
        let limit = self.config.limits.max_manifest_bytes;
        let reference = match image.digest() {
            Some(d) => d.to_string(),
            None => image.tag().unwrap_or("latest").to_string(),
        };
        let url = self.http.url(image, &format!("manifests/{reference}"));
        let accept = ACCEPTED_MANIFESTS.join(", ");
        let body = self
            .retry(image, || async {
                let resp = self
                    .http
                    .send(image, Op::Pull, reqwest::Method::GET, &url, Some(&accept))
                    .await
                    .map_err(|e| self.classify_http(image, "manifest", e))?;
                crate::http::read_bounded(resp, limit).await.map_err(|e| self.classify_http(image, "manifest", e))
            })
            .await?;
        let actual = Digest::of(&body);
        if let Some(expected) = image.digest()
            && *expected != actual
        {
            return Err(Error::DigestMismatch {
                image: image.to_string(),
                what: "manifest".into(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok((body, actual))
    }

    /// Downloads one blob into memory. The declared size is checked against `limit` before
    /// anything is fetched; more bytes than declared, fewer, or a different digest are errors.
    pub async fn fetch_blob(
        &self,
        image: &ImageRef,
        desc: &Descriptor,
        limit: u64,
        what: &str,
        progress: Progress<'_>,
    ) -> Result<Vec<u8>> {
        let size = u64::try_from(desc.size)
            .map_err(|_| Error::bad(image.to_string(), format!("{what}: negative size {}", desc.size)))?;
        if size > limit {
            return Err(Error::TooLarge { image: image.to_string(), what: what.into(), size, limit });
        }
        let expected = Digest::parse(&desc.digest)
            .map_err(|_| Error::bad(image.to_string(), format!("{what}: unsupported digest `{}`", desc.digest)))?;
        let url = self.http.url(image, &format!("blobs/{expected}"));
        let data = self
            .retry(image, || async {
                let mut resp = self
                    .http
                    .send(image, Op::Pull, reqwest::Method::GET, &url, None)
                    .await
                    .map_err(|e| self.classify_http(image, what, e))?;
                if let Some(len) = resp.content_length()
                    && len > size
                {
                    return Err(Failure::Fatal(Error::bad(
                        image.to_string(),
                        format!("{what}: the registry sends {len} bytes for a blob declared as {size} bytes"),
                    )));
                }
                let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                while let Some(chunk) =
                    resp.chunk().await.map_err(|e| self.classify_http(image, what, HttpError::from(e)))?
                {
                    if (buf.len() + chunk.len()) as u64 > size {
                        return Err(Failure::Fatal(Error::bad(
                            image.to_string(),
                            format!("{what}: the registry sends more than the declared {size} bytes"),
                        )));
                    }
                    buf.extend_from_slice(&chunk);
                    if let Some(p) = progress {
                        p(buf.len() as u64, size);
                    }
                }
                if (buf.len() as u64) < size {
                    return Err(Failure::Transient(format!(
                        "{what}: truncated blob: got {} of {size} bytes",
                        buf.len()
                    )));
                }
                Ok(buf)
            })
            .await?;
        let actual = Digest::of(&data);
        if actual != expected {
            return Err(Error::DigestMismatch {
                image: image.to_string(),
                what: what.into(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(data)
    }

    /// Uploads a blob unless the repository has it already. Returns its digest.
    pub async fn push_blob(&self, image: &ImageRef, data: Bytes, what: &str) -> Result<Digest> {
        let digest = Digest::of(&data);
        self.retry(image, || async {
            let client = self.push_client(image).await?;
            let exists = client.blob_exists(image.oci(), digest.as_str()).await.unwrap_or(false);
            if !exists {
                client
                    .push_blob(image.oci(), data.clone(), digest.as_str())
                    .await
                    .map_err(|e| self.classify(image, what, e))?;
            }
            Ok(())
        })
        .await?;
        Ok(digest)
    }

    /// Uploads a manifest document as is, under the reference's tag (or digest).
    pub async fn push_manifest(&self, image: &ImageRef, body: Bytes, media_type: &str) -> Result<Digest> {
        let digest = Digest::of(&body);
        let content_type = http::HeaderValue::from_str(media_type)
            .map_err(|_| Error::bad(image.to_string(), format!("invalid media type `{media_type}`")))?;
        self.retry(image, || async {
            let client = self.push_client(image).await?;
            client
                .push_manifest_raw(image.oci(), body.clone(), content_type.clone())
                .await
                .map_err(|e| self.classify(image, "manifest upload", e))
        })
        .await?;
        Ok(digest)
    }
}

/// The oci-client used for pushes (pulls go through [`Http`]).
fn make_oci_client(config: &RegistryConfig) -> Result<oci_client::Client> {
    let client_config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(config.insecure_registries.clone()),
        extra_root_certificates: config
            .ca_certificates_pem
            .iter()
            .map(|pem| Certificate { encoding: CertificateEncoding::Pem, data: pem.clone() })
            .collect(),
        connect_timeout: Some(config.connect_timeout),
        read_timeout: Some(config.read_timeout),
        use_monolithic_push: true,
        user_agent: concat!("wasmplug/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    oci_client::Client::try_from(client_config).map_err(|e| Error::Certificate(e.to_string()))
}
