//! `make bench-preflight`: what the controller's pre-flight costs. Per plugin module: the first
//! check (compiling the module included), then 200 distinct configurations on the compiled
//! module (each one a VM start: instantiate, `proxy_on_vm_start`, `proxy_on_configure`), and a
//! repeated configuration (answered from the results). Prints Markdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wasmplug_controller::WasmPlugin;
use wasmplug_controller::preflight::{Limits, Preflight};
use wasmplug_controller::resolve::{Resolved, ResolvedModule};

const CONFIGS: usize = 200;

fn plugin(config: Value) -> WasmPlugin {
    serde_json::from_value(json!({
        "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": { "name": "p", "namespace": "bench", "generation": 1 },
        "spec": { "url": "oci://r.example/p:1", "defaultConfig": config },
    }))
    .unwrap()
}

/// A field of /proc/self/status in MB (VmRSS, VmHWM).
fn status_mb(field: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = text
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    type Config = fn(usize) -> Value;
    let cases: [(&str, &str, Config); 4] = [
        ("request-block", "1 url", |i| json!({ "block_urls": [format!("/p{i}")] })),
        (
            "request-block",
            "200 regexps",
            |i| json!({ "block_regexp_urls": (0..200).map(|j| format!("^/r{i}/{j}/[a-z]+$")).collect::<Vec<_>>() }),
        ),
        ("key-auth", "1 consumer", |i| {
            json!({ "consumers": [{ "name": format!("c{i}"), "credential": format!("k{i}") }],
                    "keys": ["x-api-key"], "in_header": true })
        }),
        ("basic-auth", "100 consumers", |i| {
            json!({ "consumers": (0..100).map(|j| json!({ "name": format!("c{j}"), "credential": format!("u{i}-{j}:p") }))
                .collect::<Vec<_>>() })
        }),
    ];
    println!("# Pre-flight cost\n");
    println!("`make bench-preflight` (`cargo bench -p wasmplug-controller --bench preflight`): release build,");
    println!("wasmtime (cranelift), one pre-flight at a time, on this 2-core machine. Each of {CONFIGS} distinct");
    println!("configurations starts a VM on the compiled module; a repeated configuration is answered from the");
    println!("results.\n");
    println!(
        "| module | configuration | module size | first check (compiles) | per config p50 | p99 | max | repeated | refused | RSS after | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let start_rss = status_mb("VmRSS");
    for (crate_name, what, config) in cases {
        let path = wasmplug_testkit::wasm::plugin_module(crate_name);
        let bytes = std::fs::read(&path).unwrap();
        let resolved = Resolved {
            module: ResolvedModule { image_digest: None, module_sha256: hex::encode(Sha256::digest(&bytes)) },
            path: path.clone(),
            size: bytes.len() as u64,
            schema: None,
            schema_source: None,
            abi: None,
        };
        let pf = Arc::new(Preflight::new(Limits::default()));
        let started = Instant::now();
        let _ = rt.block_on(pf.check(&plugin(config(usize::MAX)), &resolved));
        let first = started.elapsed();
        let (mut times, mut refused) = (Vec::with_capacity(CONFIGS), 0);
        for i in 0..CONFIGS {
            let object = plugin(config(i));
            let started = Instant::now();
            refused += usize::from(rt.block_on(pf.check(&object, &resolved)).is_err());
            times.push(started.elapsed());
        }
        let again = plugin(config(0));
        let started = Instant::now();
        let _ = rt.block_on(pf.check(&again, &resolved));
        let repeated = started.elapsed();
        assert_eq!(pf.runs() as usize, CONFIGS + 1, "each distinct configuration ran once");
        times.sort();
        let at = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "| {crate_name} | {what} | {} KB | {} | {} | {} | {} | {} | {refused}/{CONFIGS} | {:.1} MB | {:.1} MB |",
            bytes.len() / 1024,
            ms(first),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(times[times.len() - 1]),
            ms(repeated),
            status_mb("VmRSS"),
            status_mb("VmHWM")
        );
    }
    println!("\nThe process held {start_rss:.1} MB before the first module; each row keeps its own pre-flight (and");
    println!("its compiled module) until the next row starts. Goal: ≤ 5 ms per configuration after compilation.");
}
