//! The controller's one error type. Variants keep what caused them as their source; the
//! condition reason a plugin's status gives for each is [`Error::reason`].

use std::path::PathBuf;

use wasmplug_validate::InvalidSchema;
use wasmplug_xds::XdsError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image, its registry or the module cache.
    #[error("cannot resolve the module: {0}")]
    Image(#[source] wasmplug_oci::Error),
    /// A cached image the registry would not confirm for this plugin's credentials.
    #[error("cannot resolve the module: the image is cached, but this plugin's credentials cannot read it: {0}")]
    NotConfirmed(#[source] wasmplug_oci::Error),
    #[error("digest mismatch: sha256 says {expected}, the module/image is {actual}")]
    DigestMismatch { expected: String, actual: String },
    /// A target of `spec.targets` cannot load the module's ABI.
    #[error(
        "the module declares proxy-wasm ABI {} (`{}`), which {} does not load (spec.targets lists `{}`): target higress only, or build the module for ABI 0.2.1",
        abi.version(), abi.export(), target_gateway(*target), target.name()
    )]
    AbiUnsupported { abi: wasmplug_contract::AbiVersion, target: crate::crd::Target },
    #[error("not supported: {what}")]
    Unsupported { what: &'static str },
    #[error("the plugin's config schema is invalid: {}", .0.0)]
    Schema(#[from] InvalidSchema),
    #[error("cannot write {what}: {source}")]
    Yaml { what: String, source: serde_saphyr::ser::Error },
    #[error("cannot write {what}: {source}")]
    Json { what: String, source: serde_json::Error },
    #[error("image pull secret `{name}`: {problem}")]
    PullSecret {
        name: String,
        #[source]
        problem: Box<SecretProblem>,
    },
    /// A Higress or Istio API the plugin targets is not served (`verb` answered 404).
    #[error("the API server has no {resource}: {verb} answered 404 (is its CRD installed?)")]
    TargetUnavailable { resource: String, verb: &'static str, source: kube::Error },
    #[error("Kubernetes API: {what}: {source}")]
    Kube { what: String, source: kube::Error },
    #[error(
        "Kubernetes API: leader election on Lease {lease}: leadership lost: stopping so that a single replica reconciles"
    )]
    LeadershipLost { lease: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A server of the controller's own (metrics, modules) could not listen.
    #[error("{what}: {source}")]
    Listen { what: String, source: std::io::Error },
    /// The xDS server could not listen, or refused the plugins it was given.
    #[error("{what}: {source}")]
    Xds { what: String, source: XdsError },
    /// The certificates of the xDS and module servers are missing or unusable.
    #[error("{what}: {source}")]
    Tls { what: String, source: wasmplug_xds::tls::TlsError },
    /// The managed CA: a certificate could not be made or read.
    #[error("{what}: {source}")]
    Ca { what: String, source: wasmplug_xds::ca::CaError },
    /// The managed CA's Secret is not what the controller keeps there.
    #[error("{what}: {problem}")]
    CaSecret { what: String, problem: &'static str },
    /// The plugin refused its configuration, or failed, in the controller's pre-flight host.
    #[error("pre-flight (the controller's proxy-wasm host): {}", preflight_summary(source))]
    Preflight { source: std::sync::Arc<wasmplug_host::HostError> },
}

/// The gateway a target's data plane is, for people.
fn target_gateway(target: crate::crd::Target) -> &'static str {
    match target {
        crate::crd::Target::Envoy => "upstream Envoy",
        crate::crd::Target::Istio => "Istio's proxy (upstream Envoy)",
        crate::crd::Target::Higress => "Higress's gateway",
    }
}

/// What a pre-flight refusal says in status: the callback and what the plugin logged, without
/// wasmtime's backtrace.
fn preflight_summary(e: &wasmplug_host::HostError) -> String {
    match e {
        wasmplug_host::HostError::Fault(f) => {
            let what = match f.kind {
                wasmplug_host::FaultKind::Timeout => "ran past its time budget".to_string(),
                wasmplug_host::FaultKind::OutOfMemory => "outgrew its memory cap".to_string(),
                wasmplug_host::FaultKind::Exit => "exited".to_string(),
                _ => format!("trapped: {}", f.message.lines().next().unwrap_or_default()),
            };
            let logged = f.panic_message.as_ref().map(|m| format!("; it logged: {m}")).unwrap_or_default();
            format!("{} {what}{logged}", f.phase)
        }
        other => other.to_string(),
    }
}

/// What is wrong with an image pull secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretProblem {
    #[error("not found in the plugin's namespace")]
    NotFound,
    #[error("cannot be read: {0}")]
    Unreadable(#[source] kube::Error),
    #[error("type is {0}, expected kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg")]
    WrongType(String),
    #[error("has no `{0}` key")]
    MissingKey(&'static str),
    #[error("`{key}` is not JSON: {source}")]
    NotJson { key: &'static str, source: serde_json::Error },
    #[error("`{key}`: {source}")]
    DockerConfig { key: &'static str, source: wasmplug_oci::Error },
}

/// A digest the image or module does not have is our [`Error::DigestMismatch`], whatever found it.
impl From<wasmplug_oci::Error> for Error {
    fn from(e: wasmplug_oci::Error) -> Self {
        match e {
            wasmplug_oci::Error::DigestMismatch { expected, actual, .. } => Error::DigestMismatch { expected, actual },
            other => Error::Image(other),
        }
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// The condition reason for a plugin that failed with this error: ResolvedRefs's for what
    /// resolving gives, ConfigValid's for a bad schema, Ready's for a data plane that could not
    /// take the plugin.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Image(e) | Error::NotConfirmed(e) => image_reason(e),
            Error::DigestMismatch { .. } => "DigestMismatch",
            Error::Unsupported { .. } => "Unsupported",
            Error::AbiUnsupported { .. } => "UnsupportedAbi",
            Error::Io { .. } => "ModuleUnreadable",
            Error::PullSecret { .. } => "InvalidPullSecret",
            Error::Schema(_) => "InvalidSchema",
            Error::TargetUnavailable { .. } => "TargetUnavailable",
            Error::Preflight { source } => match **source {
                wasmplug_host::HostError::Refused { .. } => "PluginRefused",
                wasmplug_host::HostError::Fault(_)
                | wasmplug_host::HostError::Instantiate { .. }
                | wasmplug_host::HostError::Usage { .. } => "PluginFailed",
                _ => "InvalidModule",
            },
            Error::Kube { .. }
            | Error::LeadershipLost { .. }
            | Error::Yaml { .. }
            | Error::Json { .. }
            | Error::Listen { .. }
            | Error::Xds { .. }
            | Error::Tls { .. }
            | Error::Ca { .. }
            | Error::CaSecret { .. } => "ApplyFailed",
        }
    }
}

/// What the registry or the image said, where it says more than "unavailable". A missing image
/// keeps the reason it always had, `ImageUnavailable`.
fn image_reason(e: &wasmplug_oci::Error) -> &'static str {
    use wasmplug_oci::Error as Oci;
    match e {
        Oci::DigestMismatch { .. } => "DigestMismatch",
        Oci::Denied { .. } => "AccessDenied",
        Oci::TooLarge { .. } => "ImageTooLarge",
        Oci::InvalidReference { .. } => "InvalidReference",
        Oci::BadModule { .. } | Oci::BadMetadata { .. } => "InvalidModule",
        Oci::NotFound { .. }
        | Oci::BadImage { .. }
        | Oci::Registry { .. }
        | Oci::Shared { .. }
        | Oci::Refused { .. }
        | Oci::DockerConfig(_)
        | Oci::Certificate(_)
        | Oci::Io { .. } => "ImageUnavailable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oci(e: wasmplug_oci::Error) -> Error {
        e.into()
    }

    #[test]
    fn reasons_follow_what_the_registry_said() {
        let image = || "r.io/p:1".to_string();
        let detail = || "x".to_string();
        assert_eq!(
            oci(wasmplug_oci::Error::Denied { image: image(), status: 401, detail: detail() }).reason(),
            "AccessDenied"
        );
        assert_eq!(
            oci(wasmplug_oci::Error::NotFound { image: image(), detail: detail() }).reason(),
            "ImageUnavailable"
        );
        let large = wasmplug_oci::Error::TooLarge { image: image(), what: "layer".into(), size: 2, limit: 1 };
        assert_eq!(oci(large).reason(), "ImageTooLarge");
        let unconfirmed =
            Error::NotConfirmed(wasmplug_oci::Error::Denied { image: image(), status: 403, detail: detail() });
        assert_eq!(unconfirmed.reason(), "AccessDenied");
    }

    #[test]
    fn an_image_digest_mismatch_is_ours_and_keeps_its_text() {
        let e = oci(wasmplug_oci::Error::DigestMismatch {
            image: "r.io/p:1".into(),
            what: "manifest".into(),
            expected: "sha256:aa".into(),
            actual: "sha256:bb".into(),
        });
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
        assert_eq!(e.reason(), "DigestMismatch");
        assert_eq!(e.to_string(), "digest mismatch: sha256 says sha256:aa, the module/image is sha256:bb");
    }

    #[test]
    fn sources_are_kept() {
        use std::error::Error as _;
        let e = Error::io("/m.wasm", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(e.reason(), "ModuleUnreadable");
        assert!(e.source().is_some_and(|s| s.is::<std::io::Error>()));
        let e =
            Error::PullSecret { name: "gw/cred".into(), problem: Box::new(SecretProblem::MissingKey(".dockercfg")) };
        assert_eq!(e.to_string(), "image pull secret `gw/cred`: has no `.dockercfg` key");
        assert_eq!(e.source().map(ToString::to_string).as_deref(), Some("has no `.dockercfg` key"));
    }
}
