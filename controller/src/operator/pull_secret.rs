//! Image pull secrets: a `kubernetes.io/dockerconfigjson` (or legacy `kubernetes.io/dockercfg`)
//! Secret, read by name from the plugin's own namespace only.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::{Value, json};
use wasmplug_oci::DockerConfig;

use crate::error::{Error, Result, SecretProblem};

/// A pull secret's credentials and the identity the cache keeps tenants apart by.
#[derive(Debug, Clone)]
pub struct PullCredentials {
    pub docker_config: DockerConfig,
    /// `namespace/name@resourceVersion`: a changed Secret is a new tenant.
    pub tenant: String,
}

/// Reads `name` in `namespace`. A missing Secret, a wrong type or unreadable content is an
/// error naming the Secret and what is wrong with it.
pub async fn read(client: &Client, namespace: &str, name: &str) -> Result<PullCredentials> {
    let id = format!("{namespace}/{name}");
    let fail = |problem: SecretProblem| Error::PullSecret { name: id.clone(), problem: Box::new(problem) };
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match api.get_opt(name).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(fail(SecretProblem::NotFound)),
        Err(e) => return Err(fail(SecretProblem::Unreadable(e))),
    };
    let data = secret.data.unwrap_or_default();
    let (key, wrap) = match secret.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => (".dockerconfigjson", false),
        Some("kubernetes.io/dockercfg") => (".dockercfg", true),
        other => return Err(fail(SecretProblem::WrongType(other.unwrap_or("empty").to_string()))),
    };
    let bytes = data.get(key).map(|b| b.0.clone()).ok_or_else(|| fail(SecretProblem::MissingKey(key)))?;
    let bytes = if wrap {
        // The legacy format is the `auths` map itself.
        let auths: Value =
            serde_json::from_slice(&bytes).map_err(|source| fail(SecretProblem::NotJson { key, source }))?;
        json!({ "auths": auths }).to_string().into_bytes()
    } else {
        bytes
    };
    let docker_config =
        DockerConfig::from_json(&bytes).map_err(|source| fail(SecretProblem::DockerConfig { key, source }))?;
    let version = secret.metadata.resource_version.unwrap_or_default();
    Ok(PullCredentials { docker_config, tenant: format!("{id}@{version}") })
}
