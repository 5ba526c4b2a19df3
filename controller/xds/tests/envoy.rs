//! The xDS server driving real Envoy 1.40 gateways (all on 127.0.0.1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wasmplug_testenv::gateway::{ControlPlane, KeepAlive, TIMEOUT, labels, wait_for};
use wasmplug_xds::{DeliveryState, FailStrategy, Feedback, Resource};

/// Waits for the feedback event `pick` selects.
fn wait_feedback<T>(
    rx: &mut tokio::sync::broadcast::Receiver<Feedback>,
    rt: &tokio::runtime::Runtime,
    mut pick: impl FnMut(&Feedback) -> Option<T>,
) -> T {
    rt.block_on(async {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                match rx.recv().await {
                    Ok(f) => {
                        if let Some(t) = pick(&f) {
                            return t;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("feedback channel: {e}"),
                }
            }
        })
        .await
        .expect("no such feedback in time")
    })
}

#[test]
fn one_plugin_then_edit_keeps_connections() {
    let cp = ControlPlane::start();
    let [hello] = <[String; 1]>::try_from(cp.allow(&["hello-world"])).unwrap();
    let gw = cp.gateway("gw", labels(&[]));
    // No plugin yet: the request passes untouched.
    assert_eq!(gw.get("/").status, 200);
    assert_eq!(cp.upstream.last_request().unwrap().header("hello"), None);

    cp.update(vec![cp.plugin("hello", &hello, "{}")]);
    let took = wait_for(TIMEOUT, || {
        gw.get("/").status == 200 && cp.upstream.last_request().unwrap().header("hello") == Some("world")
    })
    .unwrap_or_else(|| panic!("the plugin never took effect"));
    eprintln!("first plugin visible after {took:?}");
    let status = cp.xds.plugin_status("hello").unwrap();
    assert_eq!(status.acked(), ["gw"], "{status:?}");

    // A keep-alive connection opened before the edit.
    let mut conn = KeepAlive::open(gw.port);
    let (code, _, body) = conn.get("/before").unwrap();
    assert_eq!((code, body.as_str()), (200, "upstream ok"));

    cp.update(vec![cp.plugin("hello", &hello, r#"{"mockEnable":true}"#)]);
    let took = wait_for(TIMEOUT, || gw.get("/").text() == "hello world")
        .unwrap_or_else(|| panic!("the edit never took effect"));
    eprintln!("config edit visible after {took:?}");
    // Same TCP connection, new config.
    let (code, _, body) = conn.get("/after").unwrap();
    assert_eq!((code, body.as_str()), (200, "hello world"));
    assert_eq!(cp.xds.plugin_status("hello").unwrap().acked(), ["gw"]);
}

#[test]
fn refused_config_is_nacked_and_the_previous_one_keeps_serving() {
    let cp = ControlPlane::start();
    let [block] = <[String; 1]>::try_from(cp.allow(&["request-block"])).unwrap();
    let gw = cp.gateway("gw", labels(&[]));
    let mut feedback = cp.xds.subscribe();
    let good = cp.update(vec![cp.plugin("block", &block, r#"{"block_urls":["/blocked"]}"#)]);
    wait_feedback(&mut feedback, &cp.rt, |f| match f {
        Feedback::Acked { resource: Resource::Filter(n), version, .. } if n == "block" && *version == good => Some(()),
        _ => None,
    });
    wait_for(TIMEOUT, || gw.get("/blocked").status == 403).unwrap();

    let bad = cp.update(vec![cp.plugin("block", &block, r#"{"block_regexp_urls":["("]}"#)]);
    let message = wait_feedback(&mut feedback, &cp.rt, |f| match f {
        Feedback::Nacked { node, resource: Resource::Filter(n), version, message }
            if n == "block" && node == "gw" && *version == bad =>
        {
            Some(message.clone())
        }
        Feedback::Acked { resource: Resource::Filter(n), version, .. } if n == "block" && *version == bad => {
            panic!("the refused config was ACKed")
        }
        _ => None,
    });
    eprintln!("NACK detail: {message}");
    assert!(message.contains("block"), "{message}");
    let status = cp.xds.plugin_status("block").unwrap();
    assert_eq!(status.version, bad);
    assert_eq!(status.nacked(), [("gw", message.as_str())]);
    // The previous config still serves.
    for _ in 0..5 {
        assert_eq!(gw.get("/blocked").status, 403);
        assert_eq!(gw.get("/fine").status, 200);
    }
    // A good config again is ACKed and applied.
    let fixed = cp.update(vec![cp.plugin("block", &block, r#"{"block_urls":["/other"]}"#)]);
    wait_feedback(&mut feedback, &cp.rt, |f| match f {
        Feedback::Acked { resource: Resource::Filter(n), version, .. } if n == "block" && *version == fixed => Some(()),
        _ => None,
    });
    wait_for(TIMEOUT, || gw.get("/other").status == 403 && gw.get("/blocked").status == 200).unwrap();
    assert_eq!(cp.xds.plugin_status("block").unwrap().nodes["gw"], DeliveryState::Acked);
}

/// Envoy 1.40 fetches remote code asynchronously on a code-cache miss and ACKs the filter
/// before the module is loaded: a config the plugin refuses on its first delivery is ACKed, and
/// the plugin then fails by its failure policy (503 for FAIL_CLOSED). Pinned here so a change
/// in Envoy shows.
#[test]
fn refused_config_on_first_delivery_is_acked_then_fails_closed() {
    let cp = ControlPlane::start();
    let [block] = <[String; 1]>::try_from(cp.allow(&["request-block"])).unwrap();
    let gw = cp.gateway("gw", labels(&[]));
    let mut feedback = cp.xds.subscribe();
    let bad = cp.update(vec![cp.plugin("block", &block, r#"{"block_regexp_urls":["("]}"#)]);
    let acked = wait_feedback(&mut feedback, &cp.rt, |f| match f {
        Feedback::Nacked { resource: Resource::Filter(n), version, .. } if n == "block" && *version == bad => {
            Some(false)
        }
        Feedback::Acked { resource: Resource::Filter(n), version, .. } if n == "block" && *version == bad => Some(true),
        _ => None,
    });
    assert!(acked, "Envoy now NACKs a refused config on a code-cache miss: update the docs");
    wait_for(TIMEOUT, || gw.get("/x").status == 503).unwrap();
    assert!(gw.logs().contains("invalid configuration at `block_regexp_urls[0]`"));
}

fn policy_outcome(policy: FailStrategy) -> (u16, Option<String>, String) {
    let cp = ControlPlane::start();
    let [hello] = <[String; 1]>::try_from(cp.allow(&["hello-world"])).unwrap();
    // The module is not in the allowed set: the module server answers 404.
    cp.modules.set_modules([]);
    let gw = cp.gateway("gw", labels(&[]));
    let mut feedback = cp.xds.subscribe();
    let mut p = cp.plugin("hello", &hello, "{}");
    p.filter.failure_policy = policy;
    let v = cp.update(vec![p]);
    wait_feedback(&mut feedback, &cp.rt, |f| match f {
        Feedback::Acked { resource: Resource::Filter(_), version, .. } if *version == v => Some(()),
        _ => None,
    });
    assert!(
        gw.logs().contains("Plugin hello failed to load") || {
            wait_for(TIMEOUT, || gw.logs().contains("Plugin hello failed to load")).is_some()
        }
    );
    let r = gw.get("/x");
    let hello = cp.upstream.last_request().and_then(|r| r.header("hello").map(str::to_string));
    (r.status, hello, r.text())
}

#[test]
fn unfetchable_module_fail_open_passes() {
    let (status, hello, body) = policy_outcome(FailStrategy::FailOpen);
    assert_eq!((status, hello, body.as_str()), (200, None, "upstream ok"));
}

#[test]
fn unfetchable_module_fail_closed_denies() {
    let (status, _, body) = policy_outcome(FailStrategy::FailClose);
    assert_eq!((status, body.as_str()), (503, ""));
}

#[test]
fn chain_order_follows_the_update_and_removal_clears_it() {
    let cp = ControlPlane::start();
    let [hello, block, custom] =
        <[String; 3]>::try_from(cp.allow(&["hello-world", "request-block", "custom-response"])).unwrap();
    let gw = cp.gateway("gw", labels(&[]));
    // request-block first: /blocked never reaches custom-response.
    cp.update(vec![
        cp.plugin("a.block", &block, r#"{"block_urls":["/blocked"],"blocked_message":"blocked"}"#),
        cp.plugin("b.custom", &custom, r#"{"status_code":200,"body":"custom"}"#),
    ]);
    wait_for(TIMEOUT, || gw.get("/blocked").text() == "blocked" && gw.get("/x").text() == "custom").unwrap();
    let filters = gw.http_filters();
    assert_eq!(filters, ["a.block", "b.custom", "envoy.filters.http.router"]);
    // Reversed: custom-response answers everything before request-block sees it.
    cp.update(vec![
        cp.plugin("b.custom", &custom, r#"{"status_code":200,"body":"custom"}"#),
        cp.plugin("a.block", &block, r#"{"block_urls":["/blocked"],"blocked_message":"blocked"}"#),
    ]);
    wait_for(TIMEOUT, || gw.get("/blocked").text() == "custom").unwrap();
    assert_eq!(gw.http_filters(), ["b.custom", "a.block", "envoy.filters.http.router"]);
    // A third plugin in the middle, then none at all.
    cp.update(vec![cp.plugin("a.block", &block, r#"{"block_urls":["/blocked"]}"#), cp.plugin("hello", &hello, "{}")]);
    wait_for(TIMEOUT, || {
        gw.get("/x").status == 200 && cp.upstream.last_request().unwrap().header("hello") == Some("world")
    })
    .unwrap();
    assert_eq!(gw.http_filters(), ["a.block", "hello", "envoy.filters.http.router"]);
    cp.update(vec![]);
    wait_for(TIMEOUT, || gw.http_filters() == ["envoy.filters.http.router"]).unwrap();
    // Filter-chain changes are in-place listener updates: the socket (port 0 here) is kept.
    assert_eq!(gw.listener_port(), Some(gw.port));
    cp.upstream.clear_requests();
    let r = gw.get("/blocked");
    assert_eq!((r.status, r.text().as_str()), (200, "upstream ok"));
    let seen = cp.upstream.last_request().unwrap();
    assert_eq!(seen.header("hello"), None);
    assert!(cp.xds.status().is_empty());
}

#[test]
fn nodes_get_the_plugins_their_labels_select() {
    let cp = ControlPlane::start();
    let [hello, block] = <[String; 2]>::try_from(cp.allow(&["hello-world", "request-block"])).unwrap();
    let edge = cp.gateway("edge-1", labels(&[("tier", "edge"), ("zone", "a")]));
    let internal = cp.gateway("internal-1", labels(&[("tier", "internal")]));
    let mut everyone = cp.plugin("hello", &hello, "{}");
    everyone.match_labels.clear();
    let mut edge_only = cp.plugin("block", &block, r#"{"block_urls":["/admin"]}"#);
    edge_only.match_labels = labels(&[("tier", "edge")]);
    cp.update(vec![edge_only, everyone]);
    wait_for(TIMEOUT, || edge.get("/admin").status == 403).unwrap();
    wait_for(TIMEOUT, || {
        internal.get("/admin").status == 200 && cp.upstream.last_request().unwrap().header("hello") == Some("world")
    })
    .unwrap();
    assert_eq!(edge.http_filters(), ["block", "hello", "envoy.filters.http.router"]);
    assert_eq!(internal.http_filters(), ["hello", "envoy.filters.http.router"]);
    wait_for(TIMEOUT, || {
        let s = cp.xds.status();
        s.len() == 2 && s[0].acked() == ["edge-1"] && s[1].acked() == ["edge-1", "internal-1"]
    })
    .unwrap_or_else(|| panic!("status: {:?}", cp.xds.status()));
    // Editing the edge-only plugin reaches the edge node only.
    let mut feedback = cp.xds.subscribe();
    let mut edge_only = cp.plugin("block", &block, r#"{"block_urls":["/internal"]}"#);
    edge_only.match_labels = labels(&[("tier", "edge")]);
    let mut everyone = cp.plugin("hello", &hello, "{}");
    everyone.match_labels.clear();
    let v = cp.update(vec![edge_only, everyone]);
    wait_feedback(&mut feedback, &cp.rt, |f| match f {
        Feedback::Acked { node, version, .. } if node == "edge-1" && *version == v => Some(()),
        _ => None,
    });
    wait_for(TIMEOUT, || edge.get("/internal").status == 403).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    while let Ok(f) = feedback.try_recv() {
        assert!(
            !matches!(&f, Feedback::Acked { node, .. } | Feedback::Nacked { node, .. } if node == "internal-1"),
            "internal-1 was pushed: {f:?}"
        );
    }
    let nodes = cp.xds.nodes();
    let mut ids: Vec<_> = nodes.iter().map(|n| (n.id.as_str(), n.labels.get("tier").map(String::as_str))).collect();
    ids.sort();
    assert_eq!(ids, [("edge-1", Some("edge")), ("internal-1", Some("internal"))]);
    assert!(nodes.iter().all(|n| n.listener == DeliveryState::Acked));
    drop(internal);
    wait_for(TIMEOUT, || cp.xds.nodes().len() == 1).unwrap();
}

/// Each plugin's filter goes out in its own response: when one of two edited plugins is
/// refused, the NACK names that one, and the other one's edit is ACKed and applied.
#[test]
fn a_nack_names_only_the_refusing_plugin() {
    let cp = ControlPlane::start();
    let [block, custom] = <[String; 2]>::try_from(cp.allow(&["request-block", "custom-response"])).unwrap();
    let gw = cp.gateway("gw", labels(&[]));
    let custom_cfg = |body: &str| format!(r#"{{"status_code":200,"body":"{body}","enable_on_status":[404]}}"#);
    cp.update(vec![
        cp.plugin("block", &block, r#"{"block_urls":["/blocked"]}"#),
        cp.plugin("custom", &custom, &custom_cfg("one")),
    ]);
    wait_for(TIMEOUT, || cp.xds.status().iter().all(|s| s.acked() == ["gw"]) && gw.get("/blocked").status == 403)
        .unwrap();
    cp.upstream.respond("/missing", wasmplug_testkit::upstream::UpstreamResponse::new(404, "nope"));
    assert_eq!(gw.get("/missing").text(), "one");

    // A keep-alive connection from before a listener change (a new plugin order).
    let mut conn = KeepAlive::open(gw.port);
    assert_eq!(conn.get("/blocked").unwrap().0, 403);

    let mut feedback = cp.xds.subscribe();
    let v = cp.update(vec![
        cp.plugin("custom", &custom, &custom_cfg("two")),
        cp.plugin("block", &block, r#"{"block_urls":["/blocked"],"blocked_code":99}"#),
    ]);
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 2 {
        let (name, outcome) = wait_feedback(&mut feedback, &cp.rt, |f| match f {
            Feedback::Acked { resource: Resource::Filter(n), version, .. } if *version == v => {
                Some((n.clone(), "ACK".to_string()))
            }
            Feedback::Nacked { resource: Resource::Filter(n), version, message, .. } if *version == v => {
                Some((n.clone(), format!("NACK {message}")))
            }
            _ => None,
        });
        seen.insert(name, outcome);
    }
    assert_eq!(seen["custom"], "ACK");
    assert_eq!(seen["block"], "NACK Unable to create Wasm plugin block");
    wait_for(TIMEOUT, || gw.get("/missing").text() == "two").unwrap();
    // block keeps its previous config.
    assert_eq!(gw.get("/blocked").status, 403);
    let status = cp.xds.status();
    assert_eq!(status[0].name, "custom");
    assert_eq!(status[0].acked(), ["gw"]);
    assert_eq!(status[1].nacked(), [("gw", "Unable to create Wasm plugin block")]);
    // The listener change that came with the refused config went through...
    wait_for(TIMEOUT, || gw.http_filters() == ["custom", "block", "envoy.filters.http.router"]).unwrap();
    wait_for(TIMEOUT, || cp.xds.nodes()[0].listener == DeliveryState::Acked).unwrap();
    // ...and so do later ones while the refused config is still the current one.
    cp.update(vec![
        cp.plugin("block", &block, r#"{"block_urls":["/blocked"],"blocked_code":99}"#),
        cp.plugin("custom", &custom, &custom_cfg("two")),
    ]);
    wait_for(TIMEOUT, || gw.http_filters() == ["block", "custom", "envoy.filters.http.router"]).unwrap();
    wait_for(TIMEOUT, || cp.xds.nodes()[0].listener == DeliveryState::Acked).unwrap();
    assert_eq!(gw.get("/blocked").status, 403);
    assert_eq!(cp.xds.plugin_status("block").unwrap().nacked(), [("gw", "Unable to create Wasm plugin block")]);
    // The connection opened before the listener changes still answers.
    assert_eq!(conn.get("/blocked").unwrap().0, 403);
}
