//! Credentials from a docker config JSON (`~/.docker/config.json`, the `.dockerconfigjson` Secret).

use std::collections::BTreeMap;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The `auths` map of a docker config. `credsStore`/`credHelpers` are not supported (a
/// controller has no helper binaries); a registry listed only there gets anonymous access.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Clone, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthEntry(<redacted>)")
    }
}

impl DockerConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::DockerConfig(e.to_string()))
    }

    /// Credentials for a registry host (`host[:port]`). Keys may carry a scheme and a path
    /// (`https://index.docker.io/v1/`); Docker Hub's aliases are treated as one registry.
    /// `registrytoken` is sent as a bearer token; `identitytoken` as the password of a basic
    /// login (what ACR-style refresh tokens expect, with the username when one is given).
    pub fn auth_for(&self, registry: &str) -> Result<RegistryAuth> {
        let want = normalize(registry);
        let Some(entry) = self.auths.iter().find(|(k, _)| normalize(k) == want).map(|(_, v)| v) else {
            return Ok(RegistryAuth::Anonymous);
        };
        if let Some(token) = entry.registrytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(RegistryAuth::Bearer(token.to_string()));
        }
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            let user = entry.username.clone().unwrap_or_else(|| "<token>".to_string());
            return Ok(RegistryAuth::Basic(user, token.to_string()));
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(RegistryAuth::Basic(u.clone(), p.clone()));
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| Error::DockerConfig(format!("`auth` for {registry} is not base64: {e}")))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| Error::DockerConfig(format!("`auth` for {registry} is not UTF-8")))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| Error::DockerConfig(format!("`auth` for {registry} is not user:password")))?;
            return Ok(RegistryAuth::Basic(u.to_string(), p.to_string()));
        }
        Ok(RegistryAuth::Anonymous)
    }
}

fn normalize(key: &str) -> String {
    let key = key.trim();
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = key.split('/').next().unwrap_or_default().to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_kind_of_entry() {
        let cfg = DockerConfig::from_json(
            br#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
                "127.0.0.1:5000": {"username": "u", "password": "p"},
                "tok.example.com": {"registrytoken": "abc"},
                "acr.example.com": {"identitytoken": "refresh"},
                "empty.example.com": {}
            }, "credsStore": "desktop"}"#,
        )
        .unwrap();
        assert_eq!(cfg.auth_for("registry-1.docker.io").unwrap(), RegistryAuth::Basic("user".into(), "pa:ss".into()));
        assert_eq!(cfg.auth_for("127.0.0.1:5000").unwrap(), RegistryAuth::Basic("u".into(), "p".into()));
        assert_eq!(cfg.auth_for("tok.example.com").unwrap(), RegistryAuth::Bearer("abc".into()));
        assert_eq!(cfg.auth_for("acr.example.com").unwrap(), RegistryAuth::Basic("<token>".into(), "refresh".into()));
        assert_eq!(cfg.auth_for("empty.example.com").unwrap(), RegistryAuth::Anonymous);
        assert_eq!(cfg.auth_for("other.example.com").unwrap(), RegistryAuth::Anonymous);
        assert!(format!("{cfg:?}").contains("redacted"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(DockerConfig::from_json(b"\"x\"").is_err());
        let cfg = DockerConfig::from_json(br#"{"auths": {"x.io": {"auth": "!!"}}}"#).unwrap();
        assert!(cfg.auth_for("x.io").is_err());
    }
}
