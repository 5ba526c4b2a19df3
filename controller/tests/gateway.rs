//! The whole system on one machine, all real: apiextensions-apiserver + etcd, Debian's
//! docker-registry, the controller (in-process, serving xDS and modules) and Envoy 1.40
//! gateways bootstrapped to it. WasmPlugins are created, edited and deleted through the API
//! server; what Envoy does is checked with HTTP requests, and what the gateways said with status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::json;
use wasmplug_controller::operator;
use wasmplug_oci::{ImageRef, PullPolicy};
use wasmplug_testenv::gateway::{Gateway, KeepAlive, wait_for};
use wasmplug_testenv::system::{System, TIMEOUT};
use wasmplug_testkit::registry::free_port;

fn until(what: &str, gw: &Gateway, f: impl FnMut() -> bool) -> Duration {
    wait_for(TIMEOUT, f).unwrap_or_else(|| panic!("{what} never happened\n{}", gw.logs()))
}

#[test]
fn kubectl_to_envoy_edit_nack_order_and_delete() {
    let sys = System::start();
    let block = sys.push("plugins/request-block", "request-block");
    let hello = sys.push("plugins/hello-world", "hello-world");
    let gw = sys.gateway("gw-1", &[("app", "edge")], None);
    assert_eq!(gw.get("/blocked").status, 200, "no plugin yet");

    // 1. A WasmPlugin: Envoy applies it, and status says the gateway took it.
    sys.create("block", json!({ "url": block, "phase": "AUTHZ", "defaultConfig": { "block_urls": ["/blocked"] } }));
    let took = until("the first plugin", &gw, || gw.get("/blocked").status == 403);
    eprintln!("create → effect through Envoy: {took:?}");
    let programmed = sys.condition("block", "Programmed", |c| c.status == "True");
    assert!(programmed.message.contains("gw-1"), "{programmed:?}");
    assert_eq!(gw.get("/fine").status, 200);

    // 2. An edit: new behaviour without a restart, on a connection opened before it.
    let mut conn = KeepAlive::open(gw.port);
    assert_eq!(conn.get("/other").unwrap().0, 200);
    sys.patch("block", json!({ "defaultConfig": { "block_urls": ["/other"] } }));
    let took = until("the edit", &gw, || gw.get("/other").status == 403 && gw.get("/blocked").status == 200);
    eprintln!("edit → effect through Envoy: {took:?}");
    assert_eq!(conn.get("/other").unwrap().0, 403, "the keep-alive connection sees the edit");
    sys.condition("block", "Programmed", |c| c.status == "True" && c.message.contains("generation 2"));

    // 3. A config the schema allows but the plugin refuses (a bad regex): the controller's
    // pre-flight starts the plugin on it and the plugin refuses it. Status carries the plugin's
    // own message, no gateway gets it, and the previous config keeps serving.
    sys.patch("block", json!({ "defaultConfig": { "block_urls": ["/other"], "block_regexp_urls": ["("] } }));
    let refused = sys.condition("block", "ConfigValid", |c| c.status == "False");
    assert_eq!(refused.reason, "PluginRefused", "{refused:?}");
    assert!(refused.message.contains("block_regexp_urls[0]"), "the plugin's message: {refused:?}");
    let ready = sys.condition("block", "Ready", |_| true);
    assert!(ready.message.contains("generation 2"), "what serves: {ready:?}");
    for _ in 0..3 {
        assert_eq!(gw.get("/other").status, 403, "generation 2 keeps serving");
        assert_eq!(conn.get("/fine").unwrap().0, 200);
    }
    // The same refusal for a plugin no gateway has loaded yet: nothing is delivered.
    sys.create("fresh", json!({ "url": block, "defaultConfig": { "block_regexp_urls": ["("] } }));
    let refused = sys.condition("fresh", "ConfigValid", |c| c.status == "False");
    assert_eq!(refused.reason, "PluginRefused", "{refused:?}");
    assert_eq!(sys.condition("fresh", "Programmed", |_| true).reason, "NotDelivered");
    // A delivery would reach the gateway within a second (see the timings above).
    std::thread::sleep(Duration::from_secs(1));
    assert!(!gw.http_filters().contains(&"gw.fresh".to_string()), "{:?}", gw.http_filters());
    sys.delete("fresh");

    // 5. A second plugin in an earlier phase runs first (the order in Envoy's chain).
    // (A merge patch: null removes the key.)
    sys.patch("block", json!({ "defaultConfig": { "block_regexp_urls": null } }));
    sys.condition("block", "Programmed", |c| c.status == "True" && c.message.contains("generation 4"));
    sys.create("hello", json!({ "url": hello, "phase": "AUTHN", "defaultConfig": { "mockEnable": true } }));
    until("the second plugin", &gw, || gw.get("/other").text() == "hello world");
    sys.condition("hello", "Programmed", |c| c.status == "True");
    let filters = gw.http_filters();
    assert_eq!(filters, ["gw.hello", "gw.block", "envoy.filters.http.router"], "chain order");
    // Moving it after request-block changes the order without a restart.
    sys.patch("hello", json!({ "phase": "STATS" }));
    until("the reorder", &gw, || gw.get("/other").status == 403);
    assert_eq!(gw.http_filters(), ["gw.block", "gw.hello", "envoy.filters.http.router"]);

    // 6. Deleting the WasmPlugins removes the filters.
    sys.delete("hello");
    sys.delete("block");
    until("the removal", &gw, || gw.get("/other").status == 200 && gw.get("/other").text() != "hello world");
    assert_eq!(gw.http_filters(), ["envoy.filters.http.router"]);
    assert!(sys.ctx.delivery.as_ref().unwrap().modules.modules().is_empty(), "no module served for nobody");
}

#[test]
fn unfetchable_module_fails_open_or_closed_and_selectors_pick_gateways() {
    let sys = System::start();
    let hello = sys.push("plugins/hello-world", "hello-world");
    // This gateway cannot reach the module server: every module is unfetchable for it.
    let broken = sys.gateway("gw-broken", &[("zone", "broken")], Some(format!("127.0.0.1:{}", free_port())));
    let other = sys.gateway("gw-other", &[("zone", "fine")], None);

    sys.create(
        "open",
        json!({ "url": hello, "failStrategy": "FAIL_OPEN", "selector": { "matchLabels": { "zone": "broken" } },
                "defaultConfig": { "mockEnable": true } }),
    );
    sys.condition("open", "Programmed", |c| c.message.contains("gw-broken"));
    // FAIL_OPEN: the plugin is skipped, requests reach the upstream.
    std::thread::sleep(Duration::from_secs(2));
    let r = broken.get("/x");
    assert_eq!((r.status, r.text() == "hello world"), (200, false), "FAIL_OPEN passes: {}", r.text());
    // The other gateway is not selected: untouched.
    assert_eq!(other.get("/x").text(), "upstream ok");

    sys.patch("open", json!({ "failStrategy": "FAIL_CLOSE" }));
    until("FAIL_CLOSE", &broken, || broken.get("/x").status == 503);

    // Selecting the working gateway instead: it runs the plugin.
    sys.patch("open", json!({ "selector": { "matchLabels": { "zone": "fine" } } }));
    until("the working gateway", &other, || other.get("/x").text() == "hello world");
    until("the broken gateway released", &broken, || broken.get("/x").status == 200);
}

/// A gateway's ACKs update Programmed without re-running the pipeline: with an `Always`-policy
/// image, each edit costs the registry requests of one resolve, and the gateway's feedback on it
/// none.
#[test]
fn gateway_feedback_sends_no_registry_requests() {
    let sys = System::start();
    let url = sys.counted(&sys.push("plugins/hello-world", "hello-world"));
    let gw = sys.gateway("gw-1", &[], None);
    let manifests =
        || sys.registry_proxy.requests.lock().unwrap().iter().filter(|(_, p)| p.contains("/manifests/")).count();
    let spec = |mock: bool| json!({ "url": url, "imagePullPolicy": "Always", "defaultConfig": { "mockEnable": mock } });
    sys.create("hello", spec(false));
    sys.condition("hello", "Programmed", |c| c.status == "True");
    until("the plugin", &gw, || {
        gw.get("/");
        sys.upstream.last_request().is_some_and(|r| r.header("hello") == Some("world"))
    });

    // What one resolve of an Always image asks the registry, measured on the cache itself.
    let before = manifests();
    let image = ImageRef::parse(&url).unwrap();
    sys.rt.block_on(sys.ctx.cache.resolve(&image, None, Some(PullPolicy::Always), None)).unwrap();
    let per_resolve = manifests() - before;
    assert!(per_resolve >= 1, "an Always image is checked with the registry");

    let before = manifests();
    let edits = 20;
    for i in 0..edits {
        sys.patch("hello", spec(i % 2 == 0));
        sys.condition("hello", "Programmed", |c| c.status == "True" && c.message.contains("accepted"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let asked = manifests() - before;
    assert_eq!(asked, edits * per_resolve, "one resolve per edit, none for the gateway's feedback");
    assert_eq!(gw.get("/").text(), "upstream ok", "the last edit (mockEnable false) is what the gateway runs");
}

#[test]
fn with_preflight_off_envoy_refuses_and_status_carries_its_nack() {
    let sys = System::start_with(|o: &mut operator::Options| o.preflight = None);
    let block = sys.push("plugins/request-block", "request-block");
    let gw = sys.gateway("gw-1", &[], None);
    sys.create("block", json!({ "url": block, "defaultConfig": { "block_urls": ["/blocked"] } }));
    until("the plugin", &gw, || gw.get("/blocked").status == 403);
    sys.patch("block", json!({ "defaultConfig": { "block_regexp_urls": ["("] } }));
    let nack = sys.condition("block", "Programmed", |c| c.status == "False");
    assert_eq!(nack.reason, "Rejected");
    assert!(nack.message.contains("gw-1") && nack.message.contains("generation 2"), "{nack:?}");
    assert!(nack.message.contains("Unable to create Wasm"), "Envoy's detail: {nack:?}");
    let valid = sys.condition("block", "ConfigValid", |c| c.status == "True");
    assert!(valid.message.contains("pre-flight is off"), "{valid:?}");
    assert_eq!(gw.get("/blocked").status, 403, "generation 1 keeps serving");
}
