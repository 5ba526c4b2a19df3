//! The crate's one error type. Every variant that concerns an image names it, and says what was wrong.

use std::path::PathBuf;

/// Errors of reference parsing, registry access, image formats and the cache.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("{image}: {what} digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { image: String, what: String, expected: String, actual: String },

    #[error("{image}: access denied by the registry (HTTP {status}); check the credentials: {detail}")]
    Denied { image: String, status: u16, detail: String },

    #[error("{image}: not found in the registry: {detail}")]
    NotFound { image: String, detail: String },

    #[error("{image}: registry request failed after {attempts} attempt(s): {detail}")]
    Registry { image: String, attempts: u32, detail: String },

    #[error("{image}: {detail} (a concurrent request for the same image failed)")]
    Shared { image: String, detail: String },

    #[error("{image}: refused by the redirect and token-realm policy: {detail}")]
    Refused { image: String, detail: String },

    #[error("{image}: {what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { image: String, what: String, size: u64, limit: u64 },

    #[error("{image}: {reason}")]
    BadImage { image: String, reason: String },

    #[error("{source_name}: not a usable plugin module: {reason}")]
    BadModule { source_name: String, reason: String },

    #[error("{source_name}: invalid plugin metadata: {reason}")]
    BadMetadata { source_name: String, reason: String },

    #[error("invalid docker config: {0}")]
    DockerConfig(String),

    #[error("invalid CA certificate: {0}")]
    Certificate(String),

    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl Error {
    pub(crate) fn bad(image: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::BadImage { image: image.into(), reason: reason.into() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// True for errors worth retrying: 5xx, resets, timeouts.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Registry { .. })
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
