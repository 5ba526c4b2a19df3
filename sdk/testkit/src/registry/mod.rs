//! Test support: a real registry (Debian's `docker-registry`, CNCF distribution 2.8) on
//! 127.0.0.1, optionally with htpasswd auth and TLS from a throwaway CA, and a small HTTP proxy
//! that counts requests and misbehaves on demand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod images;
pub mod proxy;
pub mod token;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-pw";

#[derive(Default, Clone, Copy)]
pub struct Options {
    pub auth: bool,
    pub tls: bool,
}

pub struct TestRegistry {
    pub host: String,
    pub dir: tempfile::TempDir,
    pub ca_pem: Option<Vec<u8>>,
    child: Child,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a server certificate for 127.0.0.1 (X.509 v3: rustls rejects v1 certificates).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=wasmplug test CA"])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt"))
        .args(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(
        p("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("server.crt"))
        .arg("-extfile")
        .arg(p("server.ext")));
    (p("ca.crt"), p("server.crt"), p("server.key"))
}

impl TestRegistry {
    pub fn start(opts: Options) -> TestRegistry {
        Self::start_with(opts, None)
    }

    /// A registry with `auth: token` trusting `server`'s signing certificate.
    pub fn start_with_token(server: &token::TokenServer) -> TestRegistry {
        let auth = format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            server.realm,
            token::SERVICE,
            token::ISSUER,
            server.cert_path.display()
        );
        Self::start_with(Options::default(), Some(auth))
    }

    fn start_with(opts: Options, extra_auth: Option<String>) -> TestRegistry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: run `make registry-tools` (Debian package docker-registry)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: wasmplug-test\n",
            dir.path().join("data").display()
        );
        let mut ca_pem = None;
        if opts.tls {
            let (ca, crt, key) = make_certs(dir.path());
            cfg.push_str(&format!("  tls:\n    certificate: {}\n    key: {}\n", crt.display(), key.display()));
            ca_pem = Some(std::fs::read(ca).unwrap());
        }
        if opts.auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd (apache2-utils): run `make registry-tools`");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wasmplug-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        if let Some(auth) = extra_auth {
            cfg.push_str(&auth);
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child =
            Command::new(REGISTRY_BIN).arg("serve").arg(&cfg_path).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let host = format!("127.0.0.1:{port}");
        let reg = TestRegistry { host: host.clone(), dir, ca_pem, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&host).is_err() {
            assert!(Instant::now() < deadline, "registry did not start: {}", reg.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

/// The module of workspace plugin `name` (see [`crate::wasm::plugin_module`]).
pub fn module(name: &str) -> Vec<u8> {
    std::fs::read(crate::wasm::plugin_module(name)).unwrap()
}

/// A module of about `size` bytes: a valid core module padded with a custom section.
pub fn padded_module(size: usize) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    let name = b"pad";
    let payload = size.saturating_sub(16);
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend((0..payload).map(|i| (i * 7 % 251) as u8));
    m.push(0);
    let mut len = body.len();
    loop {
        let mut byte = (len & 0x7f) as u8;
        len >>= 7;
        if len != 0 {
            byte |= 0x80;
        }
        m.push(byte);
        if len == 0 {
            break;
        }
    }
    m.extend(body);
    m
}
