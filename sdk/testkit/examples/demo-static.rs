//! `make demo`: the built plugins in a real Envoy on 127.0.0.1, in front of a recording upstream.
//! Sends a few requests to show each plugin at work, then keeps serving for your own curl until
//! Ctrl-C (or exits at once with `--once`).
//!
//! Usage: `demo [--port 10000] [--once]`

use std::time::Duration;

use wasmplug_testkit::upstream::Upstream;
use wasmplug_testkit::{Envoy, EnvoyConfig, Route, VirtualHost, WasmFilter, client, wasm};

const CHAIN: [(&str, &str); 4] = [
    (
        "request-block",
        r#"{"block_urls": ["/admin"], "blocked_code": 403, "blocked_message": "blocked by request-block"}"#,
    ),
    (
        "key-auth",
        r#"{"consumers": [{"name": "alice", "credential": "alice-key"}], "keys": ["x-api-key"],
            "_rules_": [{"_match_route_": ["private"], "allow": ["alice"]}]}"#,
    ),
    ("hello-world", r#"{"_rules_": [{"_match_route_": ["hello"], "mockEnable": true}]}"#),
    ("transformer", r#"{"reqRules": [{"operate": "add", "headers": [{"key": "x-demo", "value": "wasmplug"}]}]}"#),
];

/// A request of the self-check: path, request headers, the status the chain must answer.
type Check = (&'static str, &'static [(&'static str, &'static str)], u16);

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let once = args.iter().any(|a| a == "--once");
    let port = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(10000);

    let upstream = Upstream::start();
    let mut config = EnvoyConfig::new().listen_port(port).cluster("upstream", upstream.port()).virtual_host(
        VirtualHost::new("default", ["*"])
            .route(Route::new("private", "/private", "upstream"))
            .route(Route::new("hello", "/hello", "upstream"))
            .route(Route::new("public", "/", "upstream")),
    );
    for (name, plugin_config) in CHAIN {
        config = config.filter(WasmFilter::new(name, wasm::try_plugin_module(name)?).configuration(plugin_config));
    }
    let envoy = Envoy::start(config)?;
    let port = envoy.http_port();
    println!("Envoy 1.40 is serving on http://127.0.0.1:{port} with the plugin chain:");
    for (name, plugin_config) in CHAIN {
        println!("  {name:<14} {}", plugin_config.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    println!();

    let checks: [Check; 5] = [
        ("/public/page", &[], 200),
        ("/admin/users", &[], 403),
        ("/private/data", &[], 401),
        ("/private/data", &[("x-api-key", "alice-key")], 200),
        ("/hello", &[], 200),
    ];
    let mut failures = 0;
    for (path, headers, expected) in checks {
        upstream.clear_requests();
        let mut req = client::request(port, "GET", path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send()?;
        let shown: Vec<String> = headers.iter().map(|(k, v)| format!("-H '{k}: {v}' ")).collect();
        println!("$ curl {}http://127.0.0.1:{port}{path}", shown.concat());
        println!("  -> {} {}", resp.status, resp.text().trim());
        match upstream.last_request() {
            Some(seen) => {
                let interesting: Vec<String> = seen
                    .headers
                    .iter()
                    .filter(|(k, _)| ["hello", "x-demo", "x-mse-consumer"].contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                println!("  upstream received {} {} with {}", seen.method, seen.path, interesting.join(", "));
            }
            None => println!("  (answered by a plugin; the upstream received nothing)"),
        }
        if resp.status != expected {
            println!("  UNEXPECTED: wanted {expected}");
            failures += 1;
        }
    }
    if failures > 0 {
        return Err(format!("{failures} request(s) failed; Envoy log:\n{}", envoy.logs()));
    }
    if once {
        return Ok(());
    }
    println!("\nTry it yourself, e.g.: curl -i -H 'x-api-key: alice-key' http://127.0.0.1:{port}/private/x");
    println!("Press Ctrl-C to stop.");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
