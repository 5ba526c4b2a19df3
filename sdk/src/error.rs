use std::fmt;

/// Everything the SDK can report to a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The plugin configuration could not be used. `path` is where in the JSON document
    /// the problem is (`.` for the whole document, `_rules_[1].allow` for a field of a rule).
    Config { path: String, reason: String },
    /// A host call failed with the given proxy-wasm status.
    Host { call: &'static str, status: String },
    /// The host does not implement a function the plugin needs (for example Redis on upstream Envoy).
    Unsupported(&'static str),
    /// An HTTP or Redis callout could not be sent, or got no answer (timeout, reset).
    Callout { cluster: String, reason: String },
}

impl Error {
    pub(crate) fn config(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config { path: path.into(), reason: reason.into() }
    }

    pub(crate) fn host(call: &'static str, status: proxy_wasm::types::Status) -> Self {
        Error::Host { call, status: (status as u32).to_string() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { path, reason } => {
                write!(f, "invalid configuration at `{path}`: {reason}")
            }
            Error::Host { call, status } => write!(f, "host call {call} failed: {status}"),
            Error::Unsupported(what) => write!(f, "the host does not provide {what}"),
            Error::Callout { cluster, reason } => {
                write!(f, "callout to cluster `{cluster}` failed: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
