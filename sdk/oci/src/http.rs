//! The pull path's HTTP client (reqwest, as oci-client uses it) with what oci-client does not let
//! us configure: manifest bodies read through a bounded reader, a redirect policy, and the
//! bearer-token flow done here, with the token realm checked against the same policy.
//!
//! Policy (SSRF, anchors.md §5): a request may go on to another origin (a redirect, or a token
//! realm) only over HTTPS, never to a link-local, cloud-metadata or unspecified address, and to
//! a loopback or private address only when the registry itself is on one of the same kind.
//! A realm on the registry's own host (any port) is accepted in the registry's scheme.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use crate::address::{GuardedResolver, HostKind, kind_of};
use crate::auth::DockerConfig;
use crate::reference::ImageRef;

/// A request that would have left the registry for a place the policy does not allow.
#[derive(Debug)]
pub(crate) struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// What went wrong, for the caller to classify (retry or not).
#[derive(Debug)]
pub(crate) enum HttpError {
    /// A non-success status, with the start of the body.
    Status {
        code: u16,
        url: String,
        body: String,
    },
    Transport(reqwest::Error),
    Refused(String),
    /// The token service refused the credentials (or answered garbage).
    Token {
        status: u16,
        detail: String,
    },
    /// A body over the limit: declared (`Content-Length`) or counted while reading.
    TooLarge {
        size: u64,
    },
}

impl From<reqwest::Error> for HttpError {
    fn from(e: reqwest::Error) -> Self {
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            if let Some(r) = s.downcast_ref::<Refused>() {
                return HttpError::Refused(r.0.clone());
            }
            source = s.source();
        }
        HttpError::Transport(e)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Op {
    Pull,
    Push,
}

/// Credentials to present for one repository and operation.
#[derive(Clone)]
pub(crate) enum Authz {
    None,
    Basic(String, String),
    Bearer(String),
}

impl Authz {
    fn header(&self) -> Option<HeaderValue> {
        use base64::Engine as _;
        let text = match self {
            Authz::None => return None,
            Authz::Basic(u, p) => {
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
            }
            Authz::Bearer(t) => format!("Bearer {t}"),
        };
        let mut v = HeaderValue::from_str(&text).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// Registry, repository, operation.
type TokenKey = (String, String, Op);

pub(crate) struct Http {
    client: reqwest::Client,
    insecure: Vec<String>,
    docker_config: Option<DockerConfig>,
    tokens: Mutex<HashMap<TokenKey, (Authz, Instant)>>,
}

const ERROR_BODY_LIMIT: usize = 64 << 10;

impl Http {
    pub(crate) fn new(
        insecure: Vec<String>,
        ca_pems: &[Vec<u8>],
        docker_config: Option<DockerConfig>,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Self, String> {
        let certs = ca_pems
            .iter()
            .map(|p| reqwest::Certificate::from_pem(p).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let client = reqwest::Client::builder()
            .tls_certs_merge(certs)
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .user_agent(concat!("wasmplug/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(GuardedResolver::system())
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 10 {
                    return attempt.error(Refused("too many redirects".into()));
                }
                let origin = attempt.previous().first().cloned();
                match origin.map(|o| check_target(&o, attempt.url(), false)) {
                    Some(Err(why)) => {
                        let msg = format!("refused redirect to {}: {why}", attempt.url());
                        attempt.error(Refused(msg))
                    }
                    _ => attempt.follow(),
                }
            }))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Http { client, insecure, docker_config, tokens: Mutex::new(HashMap::new()) })
    }

    fn scheme(&self, registry: &str) -> &'static str {
        if self.insecure.iter().any(|r| r == registry) { "http" } else { "https" }
    }

    pub(crate) fn url(&self, image: &ImageRef, rest: &str) -> String {
        format!("{}://{}/v2/{}/{rest}", self.scheme(image.registry()), image.registry(), image.repository())
    }

    /// The credentials to present: a configured bearer token, basic credentials for a Basic
    /// challenge, or a token fetched from the (checked) realm of a Bearer challenge.
    pub(crate) async fn authz(&self, image: &ImageRef, op: Op) -> Result<Authz, HttpError> {
        let registry = image.registry();
        let creds = match &self.docker_config {
            Some(cfg) => cfg.auth_for(registry).map_err(|e| HttpError::Token { status: 0, detail: e.to_string() })?,
            None => oci_client::secrets::RegistryAuth::Anonymous,
        };
        let basic = match &creds {
            oci_client::secrets::RegistryAuth::Bearer(t) => return Ok(Authz::Bearer(t.clone())),
            oci_client::secrets::RegistryAuth::Basic(u, p) => Some((u.clone(), p.clone())),
            oci_client::secrets::RegistryAuth::Anonymous => None,
        };
        let key = (registry.to_string(), image.repository().to_string(), op);
        if let Some((a, until)) = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
            && *until > Instant::now()
        {
            return Ok(a.clone());
        }
        let base = format!("{}://{registry}/v2/", self.scheme(registry));
        let ping = self.client.get(&base).send().await?;
        let challenge = ping.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let status = ping.status();
        drop(ping);
        let Some(challenge) = challenge.filter(|_| status == StatusCode::UNAUTHORIZED) else {
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(HttpError::Status { code: status.as_u16(), url: base, body: String::new() });
            }
            return Ok(basic.map(|(u, p)| Authz::Basic(u, p)).unwrap_or(Authz::None));
        };
        let (scheme, params) = parse_challenge(&challenge);
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(basic.map(|(u, p)| Authz::Basic(u, p)).unwrap_or(Authz::None));
        }
        let realm = params.get("realm").ok_or_else(|| HttpError::Token {
            status: 401,
            detail: format!("bearer challenge without a realm: {challenge}"),
        })?;
        let realm_url =
            Url::parse(realm).map_err(|e| HttpError::Refused(format!("token realm `{realm}` is not a URL: {e}")))?;
        let base_url = Url::parse(&base).map_err(|e| HttpError::Refused(e.to_string()))?;
        check_target(&base_url, &realm_url, true)
            .map_err(|why| HttpError::Refused(format!("refused token realm {realm}: {why}")))?;
        let scope = match op {
            Op::Pull => format!("repository:{}:pull", image.repository()),
            Op::Push => format!("repository:{}:pull,push", image.repository()),
        };
        let mut query = vec![("scope", scope.as_str())];
        if let Some(s) = params.get("service") {
            query.push(("service", s));
        }
        let mut req = self.client.get(realm_url).query(&query);
        if let Some((u, p)) = &basic {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await?;
        let status = resp.status();
        let body = read_bounded(resp, ERROR_BODY_LIMIT as u64).await.unwrap_or_default();
        if !status.is_success() {
            let detail = format!("token service {realm}: HTTP {status}: {}", String::from_utf8_lossy(&body));
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(HttpError::Status { code: status.as_u16(), url: realm.clone(), body: detail });
            }
            return Err(HttpError::Token { status: status.as_u16(), detail });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| HttpError::Token { status: 200, detail: format!("token service {realm}: {e}") })?;
        let token = parsed.token.or(parsed.access_token).filter(|t| !t.is_empty()).ok_or_else(|| HttpError::Token {
            status: 200,
            detail: format!("token service {realm} returned no token"),
        })?;
        let authz = Authz::Bearer(token);
        // Refresh a little early; 60 s is the distribution spec's default lifetime.
        let life = Duration::from_secs(parsed.expires_in.unwrap_or(60).saturating_sub(10).max(1));
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (authz.clone(), Instant::now() + life));
        Ok(authz)
    }

    /// Sends an authorized request; a non-success status is an error carrying the body's start.
    pub(crate) async fn send(
        &self,
        image: &ImageRef,
        op: Op,
        method: Method,
        url: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, HttpError> {
        if let Ok(parsed) = Url::parse(url)
            && kind_of(&parsed) == HostKind::Forbidden
        {
            return Err(HttpError::Refused(format!("{url}: {}", crate::address::FORBIDDEN)));
        }
        let authz = self.authz(image, op).await?;
        let mut req = self.client.request(method, url);
        if let Some(a) = accept {
            req = req.header(reqwest::header::ACCEPT, a);
        }
        if let Some(h) = authz.header() {
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req.send().await?;
        let status = resp.status();
        if !status.is_success() {
            let final_url = resp.url().to_string();
            let body = read_bounded(resp, ERROR_BODY_LIMIT as u64).await.unwrap_or_default();
            let body = String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
            return Err(HttpError::Status { code: status.as_u16(), url: final_url, body });
        }
        Ok(resp)
    }
}

/// Reads a whole body, refusing one that declares or turns out to be over `limit` bytes
/// (a declared length over the limit is refused before any of the body is read).
pub(crate) async fn read_bounded(mut resp: reqwest::Response, limit: u64) -> Result<Bytes, HttpError> {
    if let Some(len) = resp.content_length()
        && len > limit
    {
        return Err(HttpError::TooLarge { size: len });
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(HttpError::TooLarge { size: (buf.len() + chunk.len()) as u64 });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

/// `Bearer realm="x",service="y"` → ("Bearer", {realm: x, service: y}).
fn parse_challenge(text: &str) -> (String, HashMap<String, String>) {
    let text = text.trim();
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        params.insert(key, value);
    }
    (scheme.to_string(), params)
}

/// May a request that started at `origin` go on to `target`? `same_host_any_port` is for token
/// realms, which often sit on the registry's host at another port.
pub(crate) fn check_target(origin: &Url, target: &Url, same_host_any_port: bool) -> Result<(), String> {
    let same_host = origin.host_str() == target.host_str();
    let same_port = origin.port_or_known_default() == target.port_or_known_default();
    if same_host && (same_port || same_host_any_port) {
        if origin.scheme() == "https" && target.scheme() != "https" {
            return Err("it drops from HTTPS to plain HTTP".into());
        }
        if target.scheme() == "http" || target.scheme() == "https" {
            return Ok(());
        }
    }
    if target.scheme() != "https" {
        return Err(format!(
            "only HTTPS is followed to another host (or port) than the registry's {}",
            origin.host_str().unwrap_or_default()
        ));
    }
    match (kind_of(origin), kind_of(target)) {
        (_, HostKind::Forbidden) => Err(crate::address::FORBIDDEN.into()),
        (o, t @ (HostKind::Loopback | HostKind::Private)) if o != t => {
            Err("a loopback or private address is contacted only for a registry on one".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(origin: &str, target: &str, realm: bool) -> Result<(), String> {
        check_target(&Url::parse(origin).unwrap(), &Url::parse(target).unwrap(), realm)
    }

    #[test]
    fn target_policy() {
        let reg = "https://registry.example.com/v2/";
        assert!(check(reg, "https://registry.example.com/v2/x", false).is_ok());
        assert!(check(reg, "https://cdn.example.net/blob", false).is_ok());
        assert!(check(reg, "http://cdn.example.net/blob", false).is_err());
        assert!(check(reg, "http://registry.example.com/v2/x", false).is_err());
        assert!(check(reg, "https://169.254.169.254/latest/meta-data", false).is_err());
        assert!(check(reg, "https://metadata.google.internal/", false).is_err());
        assert!(check(reg, "https://127.0.0.1:8443/", false).is_err());
        assert!(check(reg, "https://10.0.0.5/", false).is_err());
        assert!(check(reg, "https://[fe80::1]/", false).is_err());
        assert!(check(reg, "https://[::ffff:169.254.169.254]/", false).is_err());
        assert!(check(reg, "https://[fd00:ec2::254]/", false).is_err());
        assert!(check(reg, "https://100.100.100.200/", false).is_err());
        assert!(check(reg, "file:///etc/passwd", false).is_err());
        // A registry on loopback may send us to another loopback HTTPS port, never plain HTTP.
        assert!(check("http://127.0.0.1:5000/v2/", "https://127.0.0.1:5001/", false).is_ok());
        assert!(check("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5001/", false).is_err());
        assert!(check("http://127.0.0.1:5000/v2/", "https://169.254.169.254/", false).is_err());
        // Token realms: the registry's host at any port, in its scheme, or HTTPS elsewhere.
        assert!(check("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5001/token", true).is_ok());
        assert!(check(reg, "http://registry.example.com:8080/token", true).is_err());
        assert!(check(reg, "https://auth.example.com/token", true).is_ok());
        assert!(check(reg, "http://auth.example.com/token", true).is_err());
    }

    #[test]
    fn challenge_parsing() {
        let (s, p) = parse_challenge(r#"Bearer realm="https://a/token",service="reg, x",scope="repository:r:pull""#);
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://a/token");
        assert_eq!(p["service"], "reg, x");
        assert_eq!(p["scope"], "repository:r:pull");
        let (s, p) = parse_challenge("Basic realm=reg");
        assert_eq!((s.as_str(), p["realm"].as_str()), ("Basic", "reg"));
    }
}
