//! Auth, TLS, the plain-HTTP allowlist, retries, and the cache's single-flight, against a real
//! registry (directly or through a proxy that counts requests and misbehaves).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmplug_oci::{
    Cache, DockerConfig, Error, PluginPackage, PullPolicy, PushFormat, Registry, RegistryConfig, RetryPolicy,
    build_image, pull, push,
};
use wasmplug_testkit::registry::images::*;
use wasmplug_testkit::registry::proxy::{Action, Proxy};
use wasmplug_testkit::registry::{Options, PASSWORD, TestRegistry, USER, module};

fn no_progress(_: &str, _: usize) {}

fn docker_config(host: &str, user: &str, password: &str) -> DockerConfig {
    DockerConfig::from_json(
        format!(r#"{{"auths": {{"{host}": {{"username": "{user}", "password": "{password}"}}}}}}"#).as_bytes(),
    )
    .unwrap()
}

fn config(insecure: &[&str]) -> RegistryConfig {
    RegistryConfig {
        insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
        retry: RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        },
        ..Default::default()
    }
}

async fn seed(
    reg: &Registry,
    host: &str,
    format: PushFormat,
) -> (wasmplug_oci::ImageRef, wasmplug_oci::Digest, Vec<u8>) {
    let wasm = module("hello-world");
    let built = build_image(&PluginPackage::from_module("m", wasm.clone()).unwrap(), format).unwrap();
    let img = image(host, "plugins/hello:1.0.0");
    let d = push(reg, &img, &built, &no_progress).await.unwrap();
    (img, d, wasm)
}

#[tokio::test]
async fn basic_auth_from_docker_config_ok_and_denied_without_retry() {
    let r = TestRegistry::start(Options { auth: true, ..Default::default() });
    let proxy = Proxy::start(&r.host);
    let good = Registry::new(RegistryConfig {
        docker_config: Some(docker_config(&proxy.host, USER, PASSWORD)),
        ..config(&[&proxy.host])
    })
    .unwrap();
    let (img, _, wasm) = seed(&good, &proxy.host, PushFormat::Higress).await;
    assert_eq!(pull(&good, &img, None, None).await.unwrap().module, wasm);

    for (name, reg) in [
        ("anonymous", Registry::new(config(&[&proxy.host])).unwrap()),
        (
            "wrong password",
            Registry::new(RegistryConfig {
                docker_config: Some(docker_config(&proxy.host, USER, "nope")),
                ..config(&[&proxy.host])
            })
            .unwrap(),
        ),
    ] {
        proxy.clear();
        let err = pull(&reg, &img, None, None).await.unwrap_err();
        assert!(matches!(err, Error::Denied { status: 401, .. }), "{name}: {err}");
        assert_eq!(proxy.count("GET", "/manifests/"), 1, "{name}: a 401 is not retried");
    }
}

#[tokio::test]
async fn forbidden_is_not_retried_but_5xx_and_resets_are() {
    let r = TestRegistry::start(Options::default());
    let proxy = Proxy::start(&r.host);
    let reg = Registry::new(config(&[&proxy.host])).unwrap();
    let (img, _, wasm) = seed(&reg, &proxy.host, PushFormat::Cncf).await;

    proxy.clear();
    proxy.set_policy(
        |m, p, _| if m == "GET" && p.contains("/manifests/") { Action::Status(403) } else { Action::Forward },
    );
    let err = pull(&reg, &img, None, None).await.unwrap_err();
    assert!(matches!(err, Error::Denied { status: 403, .. }), "{err}");
    assert_eq!(proxy.count("GET", "/manifests/"), 1);

    // Two 503s on the manifest, then a reset on the blob: the pull still succeeds.
    proxy.clear();
    proxy.set_policy(|m, p, n| match (m, p.contains("/manifests/"), p.contains("/blobs/sha256")) {
        ("GET", true, _) if n <= 2 => Action::Status(503),
        ("GET", _, true) if n == 1 => Action::Reset,
        _ => Action::Forward,
    });
    assert_eq!(pull(&reg, &img, None, None).await.unwrap().module, wasm);
    assert_eq!(proxy.count("GET", "/manifests/"), 3);

    // Always 500: bounded attempts, then a clear error.
    proxy.clear();
    proxy.set_policy(
        |m, p, _| if m == "GET" && p.contains("/manifests/") { Action::Status(500) } else { Action::Forward },
    );
    let err = pull(&reg, &img, None, None).await.unwrap_err();
    assert!(matches!(err, Error::Registry { attempts: 4, .. }), "{err}");
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert_eq!(proxy.count("GET", "/manifests/"), 4);

    // A blob response cut in the middle is retried, and the result is still verified.
    proxy.clear();
    proxy.set_policy(|m, p, n| {
        if m == "GET" && p.contains("/blobs/sha256") && n == 1 { Action::Truncate } else { Action::Forward }
    });
    assert_eq!(pull(&reg, &img, None, None).await.unwrap().module, wasm);
}

#[tokio::test]
async fn a_stalled_registry_times_out() {
    let r = TestRegistry::start(Options::default());
    let proxy = Proxy::start(&r.host);
    let reg = Registry::new(config(&[&proxy.host])).unwrap();
    let (img, _, _) = seed(&reg, &proxy.host, PushFormat::Cncf).await;
    proxy.set_policy(|m, p, _| if m == "GET" && p.contains("/manifests/") { Action::Stall } else { Action::Forward });
    let stalled = Registry::new(RegistryConfig {
        read_timeout: Duration::from_millis(300),
        retry: RetryPolicy {
            attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        },
        ..config(&[&proxy.host])
    })
    .unwrap();
    let started = Instant::now();
    let err = pull(&stalled, &img, None, None).await.unwrap_err();
    assert!(matches!(err, Error::Registry { attempts: 2, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn tls_with_a_custom_ca_and_no_silent_http() {
    let tls = TestRegistry::start(Options { tls: true, ..Default::default() });
    let trusted =
        Registry::new(RegistryConfig { ca_certificates_pem: vec![tls.ca_pem.clone().unwrap()], ..config(&[]) })
            .unwrap();
    let (img, _, wasm) = seed(&trusted, &tls.host, PushFormat::Higress).await;
    assert_eq!(pull(&trusted, &img, None, None).await.unwrap().module, wasm);
    // Without the CA: a TLS error, at once (not retried), and no fallback to HTTP.
    let untrusted = Registry::new(config(&[])).unwrap();
    let err = pull(&untrusted, &img, None, None).await.unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
    assert!(matches!(err, Error::Registry { attempts: 1, .. }), "{err}");
    assert!(Registry::new(RegistryConfig { ca_certificates_pem: vec![b"junk".to_vec()], ..config(&[]) }).is_err());

    // A plain-HTTP registry is spoken to only when listed as insecure.
    let plain = TestRegistry::start(Options::default());
    let (img, _, _) = seed(&client(&plain.host), &plain.host, PushFormat::Cncf).await;
    let err = pull(&untrusted, &img, None, None).await.unwrap_err();
    assert!(err.to_string().contains("plain HTTP is used only for registries listed as insecure"), "{err}");
    assert!(pull(&client(&plain.host), &img, None, None).await.is_ok());
}

#[tokio::test]
async fn cache_single_flight_policies_and_atomic_files() {
    let r = TestRegistry::start(Options::default());
    let proxy = Proxy::start(&r.host);
    let reg = Registry::new(config(&[&proxy.host])).unwrap();
    let (img, digest, wasm) = seed(&reg, &proxy.host, PushFormat::Higress).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::new(dir.path(), reg).unwrap());
    let by_digest = image(&proxy.host, &format!("plugins/hello@{digest}"));

    proxy.clear();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (cache, img) = (cache.clone(), by_digest.clone());
            tokio::spawn(async move { cache.resolve(&img, None, None, None).await })
        })
        .collect();
    let mut paths = Vec::new();
    for t in tasks {
        paths.push(t.await.unwrap().unwrap().path);
    }
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(std::fs::read(&paths[0]).unwrap(), wasm);
    assert_eq!(proxy.count("GET", "/manifests/"), 1, "{:?}", proxy.requests.lock().unwrap());
    // One GET per blob the pull needs: spec.yaml and plugin.tar.gz.
    let mut blob_gets: Vec<String> = proxy
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, p)| m == "GET" && p.contains("/blobs/"))
        .map(|r| r.1.clone())
        .collect();
    assert_eq!(blob_gets.len(), 2, "{blob_gets:?}");
    blob_gets.dedup();
    assert_eq!(blob_gets.len(), 2, "{blob_gets:?}");
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

    // IfNotPresent by digest: no request. A tag resolves once, then is served from the cache.
    proxy.clear();
    cache.resolve(&by_digest, None, None, None).await.unwrap();
    cache.resolve(&img, None, None, None).await.unwrap();
    cache.resolve(&img, None, None, None).await.unwrap();
    assert_eq!(proxy.count("GET", "/manifests/"), 1);
    // Always: the manifest is fetched again; the module is not.
    proxy.clear();
    let hit = cache.resolve(&img, Some(&digest), Some(PullPolicy::Always), None).await.unwrap();
    assert_eq!((proxy.count("GET", "/manifests/"), proxy.count("GET", "/blobs/")), (1, 0));
    assert_eq!(hit.manifest_digest, digest.to_string());
    // A wrong expected digest fails, whatever the cache holds.
    let other = wasmplug_oci::Digest::of(b"other");
    assert!(matches!(
        cache.resolve(&img, Some(&other), Some(PullPolicy::Always), None).await,
        Err(Error::DigestMismatch { .. })
    ));
}

#[tokio::test]
async fn a_huge_manifest_is_refused_before_its_body_is_read() {
    let r = TestRegistry::start(Options::default());
    let proxy = Proxy::start(&r.host);
    let reg = Registry::new(config(&[&proxy.host])).unwrap();
    let (img, _, _) = seed(&reg, &proxy.host, PushFormat::Cncf).await;
    let limit = wasmplug_oci::Limits::default().max_manifest_bytes;

    // Declared as 1 GiB: refused on the headers, once (not retried), with hardly a byte read.
    proxy.clear();
    proxy.set_policy(|m, p, _| {
        if m == "GET" && p.contains("/manifests/") { Action::Endless { chunked: false } } else { Action::Forward }
    });
    let started = Instant::now();
    let err = pull(&reg, &img, None, None).await.unwrap_err();
    assert!(
        matches!(&err, Error::TooLarge { what, size, limit: l, .. } if what == "manifest" && *size == 1 << 30 && *l == limit),
        "{err}"
    );
    assert!(err.to_string().contains("plugins/hello:1.0.0"), "{err}");
    assert_eq!(proxy.count("GET", "/manifests/"), 1);
    std::thread::sleep(Duration::from_millis(200));
    let sent = proxy.sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(sent < limit, "{sent} body bytes went out before the refusal");
    assert!(started.elapsed() < Duration::from_secs(5));

    // No length (chunked): the bounded reader stops just past the limit.
    proxy.clear();
    proxy.sent.store(0, std::sync::atomic::Ordering::SeqCst);
    proxy.set_policy(|m, p, _| {
        if m == "GET" && p.contains("/manifests/") { Action::Endless { chunked: true } } else { Action::Forward }
    });
    let err = pull(&reg, &img, None, None).await.unwrap_err();
    assert!(matches!(&err, Error::TooLarge { what, size, .. } if what == "manifest" && *size > limit), "{err}");
    assert_eq!(proxy.count("GET", "/manifests/"), 1);
    std::thread::sleep(Duration::from_millis(200));
    let sent = proxy.sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(sent < limit + (16 << 20), "{sent} body bytes went out before the refusal");
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[tokio::test]
async fn redirects_and_token_realms_cannot_lead_elsewhere() {
    let r = TestRegistry::start(Options::default());
    let proxy = Proxy::start(&r.host);
    // Where a hostile redirect would send us on this machine: counted, so we see nothing arrives.
    let elsewhere = Proxy::start(&r.host);
    let reg = Registry::new(config(&[&proxy.host])).unwrap();
    let (img, _, wasm) = seed(&reg, &proxy.host, PushFormat::Cncf).await;
    let refused = |err: &Error, what: &str| {
        assert!(matches!(err, Error::Refused { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("plugins/hello:1.0.0") && text.contains(what), "`{text}` should mention {what}");
    };

    // A same-origin redirect is followed.
    proxy.clear();
    let same = leak(format!("http://{}/v2/plugins/hello/manifests/1.0.0", proxy.host));
    proxy.set_policy(move |m, p, n| {
        if m == "GET" && p.contains("/manifests/") && n == 1 { Action::Redirect(same) } else { Action::Forward }
    });
    assert_eq!(pull(&reg, &img, None, None).await.unwrap().module, wasm);

    // The manifest redirected to the cloud metadata address: refused at once, not retried.
    for target in ["https://169.254.169.254/latest/meta-data/", "http://169.254.169.254/latest/meta-data/"] {
        proxy.clear();
        proxy.set_policy(move |m, p, _| {
            if m == "GET" && p.contains("/manifests/") { Action::Redirect(target) } else { Action::Forward }
        });
        let err = pull(&reg, &img, None, None).await.unwrap_err();
        refused(&err, "169.254.169.254");
        assert_eq!(proxy.count("GET", "/manifests/"), 1);
    }

    // A blob redirected to another local port in plain HTTP: refused, and nothing gets there.
    proxy.clear();
    let other = leak(format!("http://{}/v2/plugins/hello/blobs/x", elsewhere.host));
    proxy.set_policy(
        move |m, p, _| {
            if m == "GET" && p.contains("/blobs/sha256") { Action::Redirect(other) } else { Action::Forward }
        },
    );
    let err = pull(&reg, &img, None, None).await.unwrap_err();
    refused(&err, &elsewhere.host);
    assert!(err.to_string().contains("only HTTPS"), "{err}");
    assert_eq!(elsewhere.requests.lock().unwrap().len(), 0);

    // Bearer challenges whose realm is the metadata address, or plain HTTP on another host:
    // refused before any token request, for pulls and for pushes.
    for realm in [
        r#"Bearer realm="http://169.254.169.254/token",service="x""#,
        r#"Bearer realm="https://169.254.169.254/token",service="x""#,
        r#"Bearer realm="http://10.1.2.3/token",service="x""#,
    ] {
        proxy.clear();
        proxy.set_policy(
            move |m, p, _| if m == "GET" && p == "/v2/" { Action::Challenge(realm) } else { Action::Forward },
        );
        let err = pull(&reg, &img, None, None).await.unwrap_err();
        refused(&err, "token realm");
        assert_eq!(proxy.count("GET", "/manifests/"), 0, "{realm}");
        let err = reg.push_blob(&img, bytes::Bytes::from_static(b"x"), "layer").await.unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err}");
        assert_eq!(proxy.count("POST", "/blobs/uploads"), 0, "{realm}");
    }
    // A realm on the registry's own host (another port, as docker-registry setups often have)
    // is accepted: here it is the `elsewhere` proxy, which the token request reaches.
    proxy.clear();
    let own = leak(format!(r#"Bearer realm="http://{}/token",service="x""#, elsewhere.host));
    proxy.set_policy(move |m, p, _| if m == "GET" && p == "/v2/" { Action::Challenge(own) } else { Action::Forward });
    let err = pull(&reg, &img, None, None).await.unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err}");
    assert_eq!(elsewhere.count("GET", "/token?"), 1);
}
