//! A one-request-per-connection HTTP proxy in front of a registry: it records every request
//! line and can answer with a status, reset, stall or truncate instead of forwarding.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    Forward,
    Status(u16),
    Reset,
    Stall,
    /// Forward the headers and only half of the body, then close.
    Truncate,
    /// Answer 200 with an endless manifest body (declared as 1 GiB, or chunked without a length),
    /// counting in `Proxy::sent` the body bytes the client accepted.
    Endless {
        chunked: bool,
    },
    /// Answer with a redirect to this URL.
    Redirect(&'static str),
    /// Answer 401 with this `WWW-Authenticate` challenge.
    Challenge(&'static str),
}

pub type Policy = Arc<dyn Fn(&str, &str, usize) -> Action + Send + Sync>;

pub struct Proxy {
    pub host: String,
    pub requests: Arc<Mutex<Vec<(String, String)>>>,
    /// Body bytes written to clients by `Action::Endless`.
    pub sent: Arc<AtomicU64>,
    policy: Arc<Mutex<Policy>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let policy: Arc<Mutex<Policy>> = Arc::new(Mutex::new(Arc::new(|_: &str, _: &str, _| Action::Forward)));
        let sent = Arc::new(AtomicU64::new(0));
        let (reqs, pol, up, snt) = (requests.clone(), policy.clone(), upstream.to_string(), sent.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (reqs, pol, up, snt) = (reqs.clone(), pol.clone(), up.clone(), snt.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &up, &reqs, &pol, &snt);
                });
            }
        });
        Proxy { host, requests, sent, policy }
    }

    pub fn set_policy(&self, p: impl Fn(&str, &str, usize) -> Action + Send + Sync + 'static) {
        *self.policy.lock().unwrap() = Arc::new(p);
    }

    pub fn count(&self, method: &str, path_part: &str) -> usize {
        self.requests.lock().unwrap().iter().filter(|(m, p)| m == method && p.contains(path_part)).count()
    }

    pub fn clear(&self) {
        self.requests.lock().unwrap().clear();
    }
}

fn handle(
    mut client: TcpStream,
    upstream: &str,
    reqs: &Mutex<Vec<(String, String)>>,
    pol: &Mutex<Policy>,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        let end = line == "\r\n";
        if !line.to_ascii_lowercase().starts_with("connection:") {
            head.push(line);
        }
        if end {
            break;
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    let mut parts = head[0].split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let n = {
        let mut r = reqs.lock().unwrap();
        r.push((method.clone(), path.clone()));
        r.iter().filter(|(m, p)| *m == method && *p == path).count()
    };
    let policy = pol.lock().unwrap().clone();
    match policy(&method, &path, n) {
        Action::Forward | Action::Truncate => {}
        Action::Status(code) => {
            let code_name = match code {
                401 => "UNAUTHORIZED",
                403 => "DENIED",
                _ => "UNKNOWN",
            };
            let body = format!(r#"{{"errors":[{{"code":"{code_name}","message":"injected"}}]}}"#);
            write!(
                client,
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return Ok(());
        }
        Action::Endless { chunked } => {
            let framing = if chunked { "Transfer-Encoding: chunked" } else { "Content-Length: 1073741824" };
            write!(
                client,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n{framing}\r\nConnection: close\r\n\r\n"
            )?;
            let block = vec![b' '; 64 << 10];
            client.set_write_timeout(Some(Duration::from_secs(5)))?;
            for _ in 0..(1 << 14) {
                if chunked {
                    write!(client, "{:x}\r\n", block.len())?;
                }
                client.write_all(&block)?;
                if chunked {
                    client.write_all(b"\r\n")?;
                }
                sent.fetch_add(block.len() as u64, Ordering::SeqCst);
            }
            return Ok(());
        }
        Action::Redirect(to) => {
            write!(
                client,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        Action::Challenge(c) => {
            let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"injected"}]}"#;
            write!(
                client,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {c}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return Ok(());
        }
        Action::Reset => {
            // SO_LINGER 0 would send RST; closing without answering is what clients see as a reset.
            client.shutdown(Shutdown::Both)?;
            return Ok(());
        }
        Action::Stall => {
            std::thread::sleep(Duration::from_secs(20));
            return Ok(());
        }
    }
    let truncate = policy(&method, &path, n) == Action::Truncate;
    let mut up = TcpStream::connect(upstream)?;
    let last = head.len() - 1;
    head.insert(last, "Connection: close\r\n".into());
    up.write_all(head.concat().as_bytes())?;
    up.write_all(&body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(resp.len());
    let head_text = String::from_utf8_lossy(&resp[..split]).replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    let head_text: String =
        head_text.split_inclusive("\r\n").filter(|l| !l.to_ascii_lowercase().starts_with("connection: keep")).collect();
    client.write_all(head_text.as_bytes())?;
    let body = &resp[split..];
    let body = if truncate { &body[..body.len() / 2] } else { body };
    client.write_all(body)?;
    client.flush()?;
    client.shutdown(Shutdown::Both)?;
    Ok(())
}
