//! A certificate authority for the delivery path: it signs the servers' certificate and the
//! gateways' client certificates (whose common name is the gateway's node id).

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::tls::TlsMaterial;

/// How long the CA certificate is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate authority: {0}")]
    Certificate(#[from] rcgen::Error),
}

/// A CA certificate and its key (PEM).
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").field("key", &"<redacted>").finish_non_exhaustive()
    }
}

/// A certificate and key issued by a [`CertificateAuthority`], with that CA's certificate: the
/// three files of a Kubernetes TLS Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// `tls.crt`
    pub cert_pem: String,
    /// `tls.key`
    pub key_pem: String,
    /// `ca.crt`
    pub ca_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("key_pem", &"<redacted>").finish_non_exhaustive()
    }
}

impl Issued {
    /// Writes the three files into `dir` (created if missing), named as in a TLS Secret.
    pub fn write_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        use crate::tls::{CA_FILE, CERT_FILE, KEY_FILE};
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(CERT_FILE), &self.cert_pem)?;
        std::fs::write(dir.join(KEY_FILE), &self.key_pem)?;
        std::fs::write(dir.join(CA_FILE), &self.ca_pem)
    }

    /// The material of a server presenting this certificate and accepting clients of the CA.
    pub fn server_material(&self) -> TlsMaterial {
        TlsMaterial {
            cert_chain: self.cert_pem.clone().into_bytes(),
            key: self.key_pem.clone().into_bytes(),
            client_ca: self.ca_pem.clone().into_bytes(),
        }
    }
}

fn validity(params: &mut CertificateParams, valid: Duration) {
    let now = time::OffsetDateTime::now_utc();
    // A little back-dated: clocks of gateways and controller are not exactly in step.
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + valid;
}

impl CertificateAuthority {
    /// A new self-signed CA named `name`.
    pub fn generate(name: &str) -> Result<CertificateAuthority, CaError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, CA_VALIDITY);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(CertificateAuthority { cert_pem: cert.pem(), key_pem, issuer: Issuer::new(params, key) })
    }

    /// A CA kept elsewhere (a Secret's `ca.crt` and `ca.key`).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CertificateAuthority, CaError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(CertificateAuthority { cert_pem: cert_pem.to_string(), key_pem: key_pem.to_string(), issuer })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The servers' certificate, for the names gateways reach them by (DNS names or IPs).
    pub fn issue_server(&self, names: &[String], valid: Duration) -> Result<Issued, CaError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().map_or("wasmplug-controller", String::as_str));
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, valid)
    }

    /// A gateway's client certificate: its common name is the node id it may use.
    pub fn issue_gateway(&self, node_id: &str, valid: Duration) -> Result<Issued, CaError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_id);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, valid)
    }

    fn issue(&self, mut params: CertificateParams, valid: Duration) -> Result<Issued, CaError> {
        validity(&mut params, valid);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), ca_pem: self.cert_pem.clone() })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tls::{ServerTls, certificate_names};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn issues_what_the_servers_accept_and_names_the_node() {
        let ca = CertificateAuthority::generate("test-ca").unwrap();
        let server = ca
            .issue_server(&["wasmplug-controller.wasmplug-system.svc".into(), "127.0.0.1".into()], CA_VALIDITY)
            .unwrap();
        ServerTls::new(&server.server_material()).unwrap();
        let gateway = ca.issue_gateway("gw-1", Duration::from_secs(3600)).unwrap();
        let der = CertificateDer::from_pem_slice(gateway.cert_pem.as_bytes()).unwrap();
        assert_eq!(certificate_names(&der), ["gw-1"]);
        let again = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        let other = again.issue_gateway("gw-2", Duration::from_secs(3600)).unwrap();
        assert_eq!(other.ca_pem, ca.cert_pem());
    }
}
