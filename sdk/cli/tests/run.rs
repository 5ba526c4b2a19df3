//! `wasmplug run` end to end: a chain of real plugins in the host between an HTTP client and a
//! recording upstream, with a callout to a cluster given on the command line and `--explain`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gateway;

use std::process::Command;

use gateway::{Gateway, s, write};

use wasmplug_testkit::client;
use wasmplug_testkit::upstream::{Upstream, UpstreamResponse};
use wasmplug_testkit::wasm::plugin_module;

#[test]
fn chain_proxies_answers_locally_calls_out_and_explains() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    upstream.set_default_response(UpstreamResponse::new(200, "from upstream").header("x-upstream", "1"));
    let token = Upstream::start();
    token.respond("/token", UpstreamResponse::new(200, "").header("x-token", "secret-abc"));

    let raw_yaml = "addRequestHeaders:\n  x-added: \"1\"\ndenyPathPrefix: /admin\naddResponseHeaders:\n  x-served-by: raw-headers\n";
    let args = vec![
        s("--upstream"),
        format!("http://127.0.0.1:{}", upstream.port()),
        s("--plugin"),
        plugin_module("hello-world").display().to_string(),
        s("--config"),
        write(
            tmp.path(),
            "hello.json",
            r#"{"mockEnable": false, "_rules_": [{"_match_domain_": ["mock.test"], "mockEnable": true}]}"#,
        ),
        s("--plugin"),
        plugin_module("raw-headers").display().to_string(),
        s("--config"),
        write(tmp.path(), "raw.yaml", raw_yaml),
        s("--plugin"),
        plugin_module("http-call").display().to_string(),
        s("--config"),
        write(
            tmp.path(),
            "call.json",
            r#"{"serviceSource":"ip","serviceName":"token","servicePort":8080,"requestPath":"/token","tokenHeader":"x-token"}"#,
        ),
        s("--plugin"),
        plugin_module("key-auth").display().to_string(),
        s("--config"),
        write(
            tmp.path(),
            "key.json",
            r#"{"consumers":[{"name":"c1","credential":"k1"}],"keys":["x-api-key"],"global_auth":true}"#,
        ),
        s("--cluster"),
        format!("outbound|8080||token.static=http://127.0.0.1:{}", token.port()),
        s("--explain"),
    ];
    let gw = Gateway::start(&args);
    // key-auth (AUTHN) runs first although given last; the others keep their order.
    let banner = gw.output();
    let order: Vec<_> =
        ["key-auth", "hello-world", "raw-headers", "http-call"].iter().map(|n| banner.find(n).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{banner}");

    // Through the whole chain to the upstream and back.
    let ok = client::request(gw.port, "POST", "/api?q=1").header("x-api-key", "k1").body("payload").send().unwrap();
    assert_eq!((ok.status, ok.text().as_str()), (200, "from upstream"), "{}", gw.output());
    assert_eq!(ok.header("x-upstream"), Some("1"));
    assert_eq!(ok.header("x-served-by"), Some("raw-headers"));
    assert_eq!(ok.header("x-raw-headers-path"), Some("/api?q=1"));
    let seen = upstream.last_request().unwrap();
    assert_eq!((seen.method.as_str(), seen.path.as_str(), seen.body_text().as_str()), ("POST", "/api?q=1", "payload"));
    assert_eq!(seen.header("hello"), Some("world"));
    assert_eq!(seen.header("x-added"), Some("1"));
    assert_eq!(seen.header("x-token"), Some("secret-abc"), "the callout's answer");
    assert_eq!(seen.header("x-mse-consumer"), Some("c1"));
    assert_eq!(token.requests().len(), 1);
    let explained = gw.wait_output("POST 127.0.0.1");
    for needle in [
        "+x-mse-consumer: c1",
        "+hello: world",
        "+x-added: 1",
        "+x-token: secret-abc",
        "+x-served-by: raw-headers",
        "callout:  GET",
        "(cluster outbound|8080||token.static)",
        "no rule matches this request: the global config applies",
    ] {
        assert!(explained.contains(needle), "{needle} missing from:\n{explained}");
    }

    // raw-headers answers locally: the plugins after it and the upstream never see the request.
    upstream.clear_requests();
    let denied = client::request(gw.port, "GET", "/admin/users").header("x-api-key", "k1").send().unwrap();
    assert_eq!((denied.status, denied.text().as_str()), (403, "forbidden by raw-headers"));
    assert!(upstream.last_request().is_none());
    let explained = gw.wait_output("GET 127.0.0.1");
    let block = &explained[explained.find("GET 127.0.0.1").unwrap()..];
    assert!(block.contains("-> 403"), "{block}");
    assert!(block.contains("answered locally by plugin 3 (raw-headers)"), "{block}");
    assert!(block.contains("4. http-call: did not run"), "{block}");

    // key-auth refuses a request without a key before anything else runs.
    let refused = client::get(gw.port, "/x").unwrap();
    assert_eq!(refused.status, 401, "{}", refused.text());
    let explained = gw.wait_output("/x -> 401");
    let block = &explained[explained.find("/x -> 401").unwrap()..];
    assert!(block.contains("answered locally by plugin 1 (key-auth)"), "{block}");
    assert!(block.contains("2. hello-world: did not run"), "{block}");
}

#[test]
fn unreachable_upstream_and_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gw = Gateway::start(&[
        s("--upstream"),
        format!("http://127.0.0.1:{closed}"),
        s("--plugin"),
        plugin_module("hello-world").display().to_string(),
    ]);
    let response = client::get(gw.port, "/").unwrap();
    assert_eq!(response.status, 503, "{}", response.text());
    drop(gw);

    // A configuration the plugin refuses stops the gateway before it listens.
    let out = Command::new(env!("CARGO_BIN_EXE_wasmplug"))
        .args(["run", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--plugin"])
        .arg(plugin_module("raw-headers"))
        .args(["--config", &write(tmp.path(), "bad.json", r#"{"nope":1}"#)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("raw-headers refused to start"), "{err}");

    // A --config belongs to the --plugin before it.
    let out = Command::new(env!("CARGO_BIN_EXE_wasmplug"))
        .args(["run", "--upstream", "http://127.0.0.1:1", "--config", "c.json", "--plugin", "p.wasm"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("each --config must follow the --plugin it configures"), "{err}");
}

#[test]
fn a_changed_configuration_is_reloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let config = write(tmp.path(), "raw.json", r#"{"denyPathPrefix":"/admin"}"#);
    let gw = Gateway::start(&[
        s("--upstream"),
        format!("http://127.0.0.1:{}", upstream.port()),
        s("--plugin"),
        plugin_module("raw-headers").display().to_string(),
        s("--config"),
        config.clone(),
    ]);
    assert_eq!(client::get(gw.port, "/admin").unwrap().status, 403);
    assert_eq!(client::get(gw.port, "/other").unwrap().status, 200);

    std::fs::write(&config, r#"{"denyPathPrefix":"/other"}"#).unwrap();
    assert!(gw.wait_output("reloaded raw-headers").contains("reloaded raw-headers"), "{}", gw.output());
    assert_eq!(client::get(gw.port, "/admin").unwrap().status, 200);
    assert_eq!(client::get(gw.port, "/other").unwrap().status, 403);

    // A configuration the plugin refuses: the running version stays.
    std::fs::write(&config, r#"{"denyPathPrefix":"/other","unknown":true}"#).unwrap();
    let out = gw.wait_output("reload of raw-headers failed");
    assert!(out.contains("reload of raw-headers failed, the previous version keeps running"), "{out}");
    assert_eq!(client::get(gw.port, "/other").unwrap().status, 403);
}

#[test]
fn a_failing_plugin_is_reported_and_the_gateway_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let panicking = tmp.path().join("panicking.wasm");
    std::fs::write(
        &panicking,
        wat::parse_str(wasmplug_testkit::fixtures::module(wasmplug_testkit::fixtures::PANIC)).unwrap(),
    )
    .unwrap();
    let gw = Gateway::start(&[
        s("--upstream"),
        format!("http://127.0.0.1:{}", upstream.port()),
        s("--plugin"),
        plugin_module("hello-world").display().to_string(),
        s("--plugin"),
        panicking.display().to_string(),
        s("--explain"),
    ]);
    for _ in 0..2 {
        let response = client::get(gw.port, "/x").unwrap();
        assert_eq!(response.status, 503, "{}", response.text());
    }
    assert!(upstream.last_request().is_none());
    let out = gw.wait_output("fault:");
    assert!(out.contains("answered locally by plugin 2 (panicking): it failed, fail strategy FAIL_CLOSE"), "{out}");
    assert!(out.contains("fault:    plugin `panicking` failed in"), "{out}");
    assert!(out.contains("boom"), "{out}");
}

#[test]
fn the_configuration_reaches_the_plugin_byte_for_byte_and_yaml_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let echo = tmp.path().join("echo.wasm");
    std::fs::write(&echo, wat::parse_str(wasmplug_testkit::fixtures::echo_configuration()).unwrap()).unwrap();
    let echo = echo.display().to_string();
    for (name, text, expected) in [
        ("spaced.json", "{ \"a\" :  1,\n  \"b\": [ ] }\n", "{ \"a\" :  1,\n  \"b\": [ ] }\n"),
        ("raw.txt", "deny /admin; allow *", "deny /admin; allow *"),
        ("c.yaml", "a: 1\nb: [x]\n", r#"{"a":1,"b":["x"]}"#),
    ] {
        let config = write(tmp.path(), name, text);
        let gw = Gateway::start(&[
            s("--upstream"),
            format!("http://127.0.0.1:{}", upstream.port()),
            s("--plugin"),
            echo.clone(),
            s("--config"),
            config,
        ]);
        let response = client::get(gw.port, "/").unwrap();
        assert_eq!((response.status, response.text()), (200, expected.to_string()), "{name}");
    }
}

#[test]
fn a_module_compiles_once_and_later_starts_load_it_compiled() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = Upstream::start();
    let args = [
        s("--upstream"),
        format!("http://127.0.0.1:{}", upstream.port()),
        s("--plugin"),
        plugin_module("raw-headers").display().to_string(),
        s("--compile-cache"),
        tmp.path().join("compiled").display().to_string(),
    ];
    let line = |gw: &Gateway| {
        let out = gw.wait_output("raw-headers (");
        out.lines().find(|l| l.contains("1. raw-headers")).map(str::to_string).unwrap_or(out)
    };
    let first = Gateway::start(&args);
    assert!(line(&first).contains(", compiled in "), "{}", first.output());
    drop(first);

    let second = Gateway::start(&args);
    assert!(
        line(&second).contains(", loaded compiled in ") && line(&second).contains("(compile cache)"),
        "{}",
        second.output()
    );
    assert_eq!(client::get(second.port, "/").unwrap().status, 200);
    assert_eq!(std::fs::read_dir(tmp.path().join("compiled")).unwrap().count(), 1);
}
