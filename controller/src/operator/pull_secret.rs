//! Image pull secrets: a `kubernetes.io/dockerconfigjson` (or legacy `kubernetes.io/dockercfg`)
//! Secret, read by name from the plugin's own namespace only.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::{Value, json};
use wasmplug_oci::DockerConfig;

use crate::error::{Error, Result};

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
    let fail = |reason: String| Error::PullSecret { name: id.clone(), reason };
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match api.get_opt(name).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(fail("not found in the plugin's namespace".into())),
        Err(e) => return Err(fail(format!("cannot be read: {e}"))),
    };
    let data = secret.data.unwrap_or_default();
    let (key, wrap) = match secret.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => (".dockerconfigjson", false),
        Some("kubernetes.io/dockercfg") => (".dockercfg", true),
        other => {
            return Err(fail(format!(
                "type is {}, expected kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg",
                other.unwrap_or("empty")
            )));
        }
    };
    let bytes = data.get(key).map(|b| b.0.clone()).ok_or_else(|| fail(format!("has no `{key}` key")))?;
    let bytes = if wrap {
        // The legacy format is the `auths` map itself.
        let auths: Value = serde_json::from_slice(&bytes).map_err(|e| fail(format!("`{key}` is not JSON: {e}")))?;
        json!({ "auths": auths }).to_string().into_bytes()
    } else {
        bytes
    };
    let docker_config = DockerConfig::from_json(&bytes).map_err(|e| fail(format!("`{key}`: {e}")))?;
    let version = secret.metadata.resource_version.unwrap_or_default();
    Ok(PullCredentials { docker_config, tenant: format!("{id}@{version}") })
}
