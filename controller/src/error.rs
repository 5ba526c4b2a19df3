//! The controller's one error type.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the plugin's config schema is invalid: {reason}")]
    Schema { reason: String },
    #[error("cannot write {what}: {reason}")]
    Serialize { what: String, reason: String },
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
}
