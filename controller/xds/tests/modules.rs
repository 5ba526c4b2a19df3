//! The module server over real HTTP: the allowed set, 404s, HEAD, headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sha2::{Digest, Sha256};
use wasmplug_testkit::client;
use wasmplug_xds::ModuleServer;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn serves_only_the_allowed_set() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = rt.block_on(ModuleServer::bind("127.0.0.1:0".parse().unwrap())).unwrap();
    let port = server.local_addr().port();
    assert_eq!(server.base_url(), format!("http://127.0.0.1:{port}/modules"));
    let dir = tempfile::tempdir().unwrap();
    let a_bytes = b"\0asm\x01\0\0\0module a".to_vec();
    let b_bytes = b"\0asm\x01\0\0\0module b, longer".to_vec();
    let (a, b) = (sha(&a_bytes), sha(&b_bytes));
    // Both are in the shared cache directory; only `a` is allowed.
    let a_path = dir.path().join(format!("{a}.wasm"));
    let b_path = dir.path().join(format!("{b}.wasm"));
    std::fs::write(&a_path, &a_bytes).unwrap();
    std::fs::write(&b_path, &b_bytes).unwrap();
    server.set_modules([(a.clone(), a_path.clone())]);

    let got = client::get(port, &format!("/modules/sha256/{a}.wasm")).unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, a_bytes);
    assert_eq!(got.header("content-type"), Some("application/wasm"));
    assert_eq!(got.header("content-length"), Some(a_bytes.len().to_string().as_str()));

    let head = client::request(port, "HEAD", &format!("/modules/sha256/{a}.wasm")).send().unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some(a_bytes.len().to_string().as_str()));
    assert_eq!(head.header("content-type"), Some("application/wasm"));

    // On disk, not allowed: 404, for GET and HEAD.
    assert_eq!(client::get(port, &format!("/modules/sha256/{b}.wasm")).unwrap().status, 404);
    let head = client::request(port, "HEAD", &format!("/modules/sha256/{b}.wasm")).send().unwrap();
    assert_eq!(head.status, 404);
    // Malformed names and other paths.
    for path in [
        format!("/modules/sha256/{a}"),
        format!("/modules/sha256/{}.wasm", a.to_uppercase()),
        format!("/modules/sha256/{}.wasm", &a[..10]),
        "/modules/sha256/..%2F..%2Fetc%2Fpasswd.wasm".to_string(),
        format!("/sha256/{a}.wasm"),
    ] {
        assert_eq!(client::get(port, &path).unwrap().status, 404, "{path}");
    }
    // Not a GET/HEAD.
    assert_eq!(client::post(port, &format!("/modules/sha256/{a}.wasm"), "x").unwrap().status, 405);

    // Replaced at once: now only `b`.
    server.set_modules([(b.clone(), b_path)]);
    assert_eq!(server.modules(), std::slice::from_ref(&b));
    assert_eq!(client::get(port, &format!("/modules/sha256/{a}.wasm")).unwrap().status, 404);
    let got = client::get(port, &format!("/modules/sha256/{b}.wasm")).unwrap();
    assert_eq!((got.status, got.body), (200, b_bytes));

    // Allowed but gone from disk: 404, not 500.
    server.set_modules([(a.clone(), dir.path().join("missing.wasm"))]);
    assert_eq!(client::get(port, &format!("/modules/sha256/{a}.wasm")).unwrap().status, 404);
    // Empty set.
    server.set_modules([]);
    assert!(server.modules().is_empty());
}
