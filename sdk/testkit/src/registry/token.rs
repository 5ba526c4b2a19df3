//! A minimal token server for docker-registry's `auth: token`: RS256 JWTs signed (with the
//! `openssl` command) by a throwaway key whose self-signed certificate is the registry's
//! `rootcertbundle`, sent in the `x5c` header. Basic credentials `USER`/`PASSWORD` get what
//! they ask for; anonymous callers get `pull` on `public/*` only; wrong credentials get 401.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{PASSWORD, USER};

pub const SERVICE: &str = "wasmplug-test-registry";
pub const ISSUER: &str = "wasmplug-test-issuer";

/// One token request: (who: "anonymous", the user, or "bad:<user>"), the scope asked for.
pub type Seen = Arc<Mutex<Vec<(String, String)>>>;

pub struct TokenServer {
    pub realm: String,
    pub cert_path: PathBuf,
    pub requests: Seen,
    key_path: PathBuf,
    cert_der: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl TokenServer {
    pub fn start() -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        let (key_path, cert_path) = (dir.path().join("token.key"), dir.path().join("token.crt"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=wasmplug token"])
            .arg("-keyout")
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let der = Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(&cert_path).output().unwrap();
        assert!(der.status.success());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let server =
            TokenServer { realm, cert_path, requests: Arc::default(), key_path, cert_der: der.stdout, _dir: dir };
        let (seen, key, cert) = (server.requests.clone(), server.key_path.clone(), server.cert_der.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (seen, key, cert) = (seen.clone(), key.clone(), cert.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &seen, &key, &cert);
                });
            }
        });
        server
    }

    /// A token for `scope` (`repository:<name>:<actions>`), as the server would issue it.
    pub fn mint(&self, subject: &str, scope: &str) -> String {
        mint(&self.key_path, &self.cert_der, subject, scope)
    }

    pub fn count(&self, who: &str) -> usize {
        self.requests.lock().unwrap().iter().filter(|(w, _)| w == who).count()
    }
}

fn serve(conn: std::net::TcpStream, seen: &Seen, key: &PathBuf, cert: &[u8]) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut basic = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
            && let Some(b64) = value.trim().strip_prefix("Basic ")
        {
            basic = b64_decode(b64.trim());
        }
    }
    let target = first.split_whitespace().nth(1).unwrap_or_default();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let param = |k: &str| {
        query.split('&').find_map(|kv| kv.strip_prefix(&format!("{k}="))).map(percent_decode).unwrap_or_default()
    };
    let (scope, service) = (param("scope"), param("service"));
    let who = match basic.as_deref().map(|b| b.split_once(':').unwrap_or((b, ""))) {
        None => "anonymous".to_string(),
        Some((u, p)) if u == USER && p == PASSWORD => u.to_string(),
        Some((u, _)) => format!("bad:{u}"),
    };
    seen.lock().unwrap().push((who.clone(), scope.clone()));
    let mut conn = conn;
    if who.starts_with("bad:") || service != SERVICE {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid credentials"}]}"#;
        return write!(
            conn,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    // Anonymous: pull on public/* only; the user: whatever was asked.
    let granted = match scope.splitn(3, ':').collect::<Vec<_>>()[..] {
        ["repository", name, _] if who == "anonymous" && !name.starts_with("public/") => format!("repository:{name}:"),
        ["repository", name, _] if who == "anonymous" => format!("repository:{name}:pull"),
        _ => scope.clone(),
    };
    let token = mint(key, cert, &who, &granted);
    let body = format!(r#"{{"token":"{token}","expires_in":300}}"#);
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mint(key: &PathBuf, cert_der: &[u8], subject: &str, scope: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let access: Vec<serde_json::Value> = match scope.splitn(3, ':').collect::<Vec<_>>()[..] {
        ["repository", name, actions] => vec![serde_json::json!({
            "type": "repository",
            "name": name,
            "actions": actions.split(',').filter(|a| !a.is_empty()).collect::<Vec<_>>(),
        })],
        _ => vec![],
    };
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [b64(cert_der, false)]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{subject}-{scope}"), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(&header).unwrap(), true),
        b64(&serde_json::to_vec(&claims).unwrap(), true)
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    format!("{signing_input}.{}", b64(&out.stdout, true))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64, padded standard alphabet or unpadded URL-safe (this module is also compiled into
/// the CLI's tests, which do not depend on the base64 crate).
fn b64(data: &[u8], url: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            let c = B64[((n >> (18 - 6 * i)) & 63) as usize];
            out.push(match (url, c) {
                (true, b'+') => '-',
                (true, b'/') => '_',
                _ => c as char,
            });
        }
        if !url {
            out.push_str(&"=="[..3 - chunk.len()]);
        }
    }
    out
}

fn b64_decode(text: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        bits = (bits << 6) | B64.iter().position(|x| *x == c)? as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    String::from_utf8(out).ok()
}
