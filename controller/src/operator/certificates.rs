//! The managed CA (`--tls-ca-secret`): the controller keeps a CA in a Secret of its namespace
//! (created on first start, shared by every replica), signs its own serving certificate with it
//! in memory, and keeps the gateways' client certificates in the TLS Secrets it is told about
//! (`--tls-gateway-secret NAME=NODE`), re-issuing any that is missing, signed by another CA,
//! issued for other names or near its end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use wasmplug_xds::ServerTls;
use wasmplug_xds::ca::{CertificateAuthority, Issued};
use wasmplug_xds::tls::{CA_FILE, CERT_FILE, KEY_FILE, pem_certificate_facts};

use crate::error::{Error, Result};

/// The CA Secret's keys.
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
/// How long issued certificates are valid.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates this close to their end are re-issued.
pub const RENEW_BEFORE: Duration = Duration::from_secs(60 * 24 * 3600);
/// How often certificates are checked for renewal.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// What the managed CA looks after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedCa {
    /// The controller's namespace: the CA and gateway Secrets are there.
    pub namespace: String,
    /// The Secret holding `ca.crt` and `ca.key`.
    pub ca_secret: String,
    /// The names gateways reach the controller by (its serving certificate's).
    pub server_names: Vec<String>,
    /// Gateway Secret name → the node id its certificate carries (`prefix-*`: node ids
    /// starting with `prefix-`, e.g. the pod names of a Deployment).
    pub gateway_secrets: BTreeMap<String, String>,
}

fn field<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret.data.as_ref()?.get(key).and_then(|b| std::str::from_utf8(&b.0).ok())
}

fn secret(namespace: &str, name: &str, type_: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some([("app.kubernetes.io/managed-by".to_string(), "wasmplug-controller".to_string())].into()),
            ..ObjectMeta::default()
        },
        type_: Some(type_.to_string()),
        data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
        ..Secret::default()
    }
}

fn api_error(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube { what, source }
}

fn ca_error(what: &str) -> impl FnOnce(wasmplug_xds::ca::CaError) -> Error {
    move |source| Error::Ca { what: what.to_string(), source }
}

fn tls_error(source: wasmplug_xds::tls::TlsError) -> Error {
    Error::Tls { what: "the managed CA's serving certificate".into(), source }
}

/// Whether an issued certificate (PEM) can stay: from the CA `ca`, not near its end, and
/// (when given) for exactly `names`.
fn current(cert_pem: Option<&str>, ca_now: Option<&str>, ca: &str, names: Option<&[String]>) -> bool {
    let (Some(cert), Some(ca_now)) = (cert_pem, ca_now) else { return false };
    if ca_now != ca {
        return false;
    }
    match pem_certificate_facts(cert.as_bytes()) {
        Some((mut have, not_after)) => {
            have.sort();
            have.dedup();
            let same = names.is_none_or(|n| {
                let mut want = n.to_vec();
                want.sort();
                want.dedup();
                have == want
            });
            same && not_after > SystemTime::now() + RENEW_BEFORE
        }
        None => false,
    }
}

impl ManagedCa {
    /// Reads the CA Secret, creating it when it does not exist (the first replica to create
    /// it wins; the others read it).
    pub async fn authority(&self, client: &Client) -> Result<CertificateAuthority> {
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        let what = format!("Secret {}/{}", self.namespace, self.ca_secret);
        for _ in 0..2 {
            if let Some(s) = api.get_opt(&self.ca_secret).await.map_err(api_error(what.clone()))? {
                let (Some(cert), Some(key)) = (field(&s, CA_CERT_KEY), field(&s, CA_KEY_KEY)) else {
                    return Err(Error::CaSecret { what, problem: "has no ca.crt and ca.key" });
                };
                return CertificateAuthority::from_pem(cert, key).map_err(ca_error(&what));
            }
            let ca = CertificateAuthority::generate("wasmplug-gateways-ca").map_err(ca_error(&what))?;
            let data = [(CA_CERT_KEY, ca.cert_pem()), (CA_KEY_KEY, ca.key_pem())];
            match api.create(&PostParams::default(), &secret(&self.namespace, &self.ca_secret, "Opaque", &data)).await {
                Ok(_) => {
                    tracing::info!(secret = %what, "created the gateways' CA");
                    return Ok(ca);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(api_error(what)(e)),
            }
        }
        Err(Error::CaSecret { what, problem: "was created and removed while being read" })
    }

    /// The controller's serving certificate, for [`ManagedCa::server_names`].
    pub fn serving(&self, ca: &CertificateAuthority) -> Result<Issued> {
        ca.issue_server(&self.server_names, LEAF_VALIDITY).map_err(ca_error("the serving certificate"))
    }

    /// Makes every gateway Secret hold a current certificate from `ca`.
    pub async fn gateway_secrets(&self, client: &Client, ca: &CertificateAuthority) -> Result<()> {
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.namespace);
        for (name, node) in &self.gateway_secrets {
            let what = format!("Secret {}/{name}", self.namespace);
            let existing = api.get_opt(name).await.map_err(api_error(what.clone()))?;
            let names = [node.clone()];
            if let Some(s) = &existing
                && current(field(s, CERT_FILE), field(s, CA_FILE), ca.cert_pem(), Some(&names))
            {
                continue;
            }
            let issued = ca.issue_gateway(node, LEAF_VALIDITY).map_err(ca_error(&what))?;
            let data = [(CERT_FILE, issued.cert_pem.as_str()), (KEY_FILE, &issued.key_pem), (CA_FILE, &issued.ca_pem)];
            let mut new = secret(&self.namespace, name, "kubernetes.io/tls", &data);
            let result = match existing {
                Some(old) => {
                    new.metadata.resource_version = old.metadata.resource_version;
                    api.replace(name, &PostParams::default(), &new).await
                }
                None => api.create(&PostParams::default(), &new).await,
            };
            match result {
                Ok(_) => tracing::info!(secret = %what, node = %node, "issued a gateway certificate"),
                // Another replica wrote it first; the next check looks again.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(api_error(what)(e)),
            }
        }
        Ok(())
    }

    /// Sets up the CA, the gateway Secrets and the servers' TLS; then keeps them current.
    pub async fn start(self, client: Client) -> Result<Arc<ServerTls>> {
        let ca = self.authority(&client).await?;
        self.gateway_secrets(&client, &ca).await?;
        let serving = self.serving(&ca)?;
        let tls = ServerTls::new(&serving.server_material()).map_err(tls_error)?;
        let kept = Arc::clone(&tls);
        tokio::spawn(async move {
            let mut serving = serving;
            let mut tick = tokio::time::interval(CHECK_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = self.renew(&client, &kept, &mut serving).await {
                    tracing::warn!(error = %e, "certificates not renewed; retried in an hour");
                }
            }
        });
        Ok(tls)
    }

    async fn renew(&self, client: &Client, tls: &ServerTls, serving: &mut Issued) -> Result<()> {
        let ca = self.authority(client).await?;
        self.gateway_secrets(client, &ca).await?;
        if !current(Some(&serving.cert_pem), Some(&serving.ca_pem), ca.cert_pem(), None) {
            let next = self.serving(&ca)?;
            tls.set(&next.server_material()).map_err(tls_error)?;
            tracing::info!("renewed the serving certificate");
            *serving = next;
        }
        Ok(())
    }
}
