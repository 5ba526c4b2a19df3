//! The controller's one error type.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot resolve the module: {reason}")]
    Resolve { reason: String },
    #[error("digest mismatch: sha256 says {expected}, the module/image is {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("not supported: {what}")]
    Unsupported { what: String },
    #[error("{path}: {reason}")]
    Manifest { path: String, reason: String },
    #[error("the plugin's config schema is invalid: {reason}")]
    Schema { reason: String },
    #[error("cannot write {what}: {reason}")]
    Serialize { what: String, reason: String },
    #[error("image pull secret `{name}`: {reason}")]
    PullSecret { name: String, reason: String },
    #[error("the API server has no {resource}: {reason}")]
    TargetUnavailable { resource: String, reason: String },
    #[error("Kubernetes API: {what}: {reason}")]
    Kube { what: String, reason: String },
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
}
