//! Token auth against a real registry: docker-registry with `auth: token`, trusting a minimal
//! token server's certificate (`wasmplug_testkit::registry::token`). Requests go through the
//! counting proxy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use wasmplug_oci::{
    DockerConfig, Error, PluginPackage, PushFormat, Registry, RegistryConfig, RetryPolicy, build_image, pull, push,
};
use wasmplug_testkit::registry::images::*;
use wasmplug_testkit::registry::proxy::Proxy;
use wasmplug_testkit::registry::token::TokenServer;
use wasmplug_testkit::registry::{PASSWORD, TestRegistry, USER, module};

fn registry(host: &str, docker_config: Option<String>) -> Registry {
    Registry::new(RegistryConfig {
        insecure_registries: vec![host.to_string()],
        docker_config: docker_config.map(|j| DockerConfig::from_json(j.as_bytes()).unwrap()),
        retry: RetryPolicy { attempts: 3, initial_backoff: Duration::from_millis(20), ..Default::default() },
        ..Default::default()
    })
    .unwrap()
}

fn basic(host: &str, user: &str, password: &str) -> Option<String> {
    Some(format!(r#"{{"auths": {{"{host}": {{"username": "{user}", "password": "{password}"}}}}}}"#))
}

#[tokio::test]
async fn token_auth_anonymous_basic_bearer_and_denied() {
    let tokens = TokenServer::start();
    let r = TestRegistry::start_with_token(&tokens);
    let proxy = Proxy::start(&r.host);
    let host = proxy.host.clone();
    let wasm = module("hello-world");
    let built = build_image(&PluginPackage::from_module("m", wasm.clone()).unwrap(), PushFormat::Higress).unwrap();

    // Basic credentials are exchanged for push tokens.
    let user = registry(&host, basic(&host, USER, PASSWORD));
    let public = image(&host, "public/hello:1.0.0");
    let private = image(&host, "private/hello:1.0.0");
    push(&user, &public, &built, &|_, _| {}).await.unwrap();
    push(&user, &private, &built, &|_, _| {}).await.unwrap();
    assert!(
        tokens.requests.lock().unwrap().iter().any(|(w, s)| w == USER && s == "repository:private/hello:pull,push"),
        "{:?}",
        tokens.requests.lock().unwrap()
    );
    // Without credentials, a push is refused.
    let anonymous = registry(&host, None);
    let err = push(&anonymous, &image(&host, "public/other:1"), &built, &|_, _| {}).await.unwrap_err();
    assert!(matches!(err, Error::Denied { status: 401, .. }), "{err}");

    // Anonymous: a token for the public repository's pull scope, and the pull works.
    assert_eq!(pull(&anonymous, &public, None, None).await.unwrap().module, wasm);
    assert!(tokens.requests.lock().unwrap().contains(&("anonymous".into(), "repository:public/hello:pull".into())));
    // Anonymous on a private repository: the token grants nothing, the registry says 401, once.
    proxy.clear();
    let err = pull(&anonymous, &private, None, None).await.unwrap_err();
    assert!(matches!(err, Error::Denied { status: 401, .. }), "{err}");
    assert_eq!(proxy.count("GET", "/manifests/"), 1);

    // Basic credentials for a pull token.
    assert_eq!(pull(&user, &private, None, None).await.unwrap().module, wasm);
    assert!(tokens.requests.lock().unwrap().contains(&(USER.into(), "repository:private/hello:pull".into())));

    // Wrong credentials: the token server says 401; no retry, and the registry is never asked
    // for the manifest.
    let wrong = registry(&host, basic(&host, USER, "wrong"));
    proxy.clear();
    let before = tokens.count(&format!("bad:{USER}"));
    let err = pull(&wrong, &private, None, None).await.unwrap_err();
    assert!(matches!(err, Error::Denied { status: 401, .. }), "{err}");
    assert!(err.to_string().contains("token service"), "{err}");
    assert_eq!(tokens.count(&format!("bad:{USER}")) - before, 1);
    assert_eq!(proxy.count("GET", "/manifests/"), 0);

    // A `registrytoken` in the docker config is sent as the bearer token, with no token request.
    let bearer = |token: String| Some(format!(r#"{{"auths": {{"{host}": {{"registrytoken": "{token}"}}}}}}"#));
    let n = tokens.requests.lock().unwrap().len();
    let with_token = registry(&host, bearer(tokens.mint(USER, "repository:private/hello:pull")));
    assert_eq!(pull(&with_token, &private, None, None).await.unwrap().module, wasm);
    assert_eq!(tokens.requests.lock().unwrap().len(), n);
    // One scoped to another repository is refused by the registry.
    let other_scope = registry(&host, bearer(tokens.mint(USER, "repository:public/hello:pull")));
    let err = pull(&other_scope, &private, None, None).await.unwrap_err();
    assert!(matches!(err, Error::Denied { status: 401, .. }), "{err}");
}
