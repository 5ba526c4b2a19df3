//! Image references: `oci://registry/repo:tag`, `registry/repo@sha256:...`, both at once.

use std::fmt;

use oci_client::Reference;

use crate::error::{Error, Result};

/// A sha256 content digest (`sha256:` + 64 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>`; a bare 64-hex string (Higress/Istio `sha256` field) is accepted too.
    pub fn parse(text: &str) -> Result<Self> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Digest(format!("sha256:{hex}")))
        } else {
            Err(Error::InvalidReference {
                reference: text.to_string(),
                reason: "a digest is `sha256:` followed by 64 lowercase hex digits".into(),
            })
        }
    }

    /// The digest of some bytes.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Digest(format!("sha256:{}", hex::encode(sha2::Sha256::digest(data))))
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("sha256:").unwrap_or(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    inner: Reference,
    digest: Option<Digest>,
}

impl ImageRef {
    /// Parses a reference, with or without the `oci://` scheme. A reference needs an explicit
    /// registry host (`host[:port]/repo`): plugin images are never resolved against Docker Hub
    /// by accident.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidReference { reference: text.to_string(), reason: reason.into() };
        let body = text.strip_prefix("oci://").unwrap_or(text);
        if body.contains("://") {
            return Err(invalid("only the oci:// scheme is an image reference"));
        }
        let host = body.split('/').next().unwrap_or_default();
        if !body.contains('/') || !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(invalid("expected registry-host[:port]/repository[:tag][@sha256:digest]"));
        }
        let digest = match body.split_once('@') {
            Some((_, d)) => Some(Digest::parse(d)?),
            None => None,
        };
        let inner = Reference::try_from(body).map_err(|e| invalid(&e.to_string()))?;
        Ok(ImageRef { inner, digest })
    }

    /// The same repository at a digest (the tag is kept for display).
    pub fn with_digest(&self, digest: &Digest) -> Self {
        let inner = match self.inner.tag() {
            Some(tag) => Reference::with_tag_and_digest(
                self.registry().to_string(),
                self.repository().to_string(),
                tag.to_string(),
                digest.to_string(),
            ),
            None => {
                Reference::with_digest(self.registry().to_string(), self.repository().to_string(), digest.to_string())
            }
        };
        ImageRef { inner, digest: Some(digest.clone()) }
    }

    pub fn registry(&self) -> &str {
        self.inner.resolve_registry()
    }

    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag, if one was written (`latest` is assumed only when neither tag nor digest is given).
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Istio's default pull policy: `:latest` (or no tag and no digest) means Always; otherwise IfNotPresent.
    pub fn is_latest(&self) -> bool {
        self.digest.is_none() && self.tag().is_none_or(|t| t == "latest")
    }

    pub(crate) fn oci(&self) -> &Reference {
        &self.inner
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry(), self.repository())?;
        if let Some(tag) = self.tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_tags_digests_and_scheme() {
        let r = ImageRef::parse("oci://127.0.0.1:5000/plugins/hello:1.0.0").unwrap();
        assert_eq!((r.registry(), r.repository(), r.tag()), ("127.0.0.1:5000", "plugins/hello", Some("1.0.0")));
        assert!(!r.is_latest());
        let r = ImageRef::parse(&format!("registry.example.com/hello@{D}")).unwrap();
        assert_eq!(r.digest().unwrap().as_str(), D);
        assert!(!r.is_latest());
        let r = ImageRef::parse(&format!("localhost:5000/hello:v1@{D}")).unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.to_string(), format!("localhost:5000/hello:v1@{D}"));
        assert!(ImageRef::parse("example.com/a").unwrap().is_latest());
        assert!(ImageRef::parse("example.com/a:latest").unwrap().is_latest());
    }

    #[test]
    fn rejects_bad_references() {
        for bad in ["hello", "hello:1.0", "https://x.io/a", "x.io/a@sha256:1234", "x.io/A B", "x.io/a@md5:00"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digest_parsing() {
        assert_eq!(Digest::parse(&D[7..]).unwrap().as_str(), D);
        assert!(Digest::parse("sha256:ABC").is_err());
        assert_eq!(Digest::of(b"").hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
