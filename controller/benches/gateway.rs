//! `make bench-gateway`: time from a WasmPlugin create or edit (an API request to the real API
//! server) to its effect on requests through a real Envoy gateway, with the controller in
//! between (resolve from the cache, validate, render, xDS). Prints Markdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::json;
use wasmplug_testenv::gateway::{Gateway, wait_for};
use wasmplug_testenv::system::System;

const EDITS: usize = 20;
const CREATES: usize = 10;

fn timed(gw: &Gateway, action: impl FnOnce(), mut effect: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    action();
    wait_for(wasmplug_testenv::system::TIMEOUT, &mut effect)
        .unwrap_or_else(|| panic!("no effect in time\n{}", gw.logs()));
    started.elapsed()
}

fn summary(what: &str, mut d: Vec<Duration>) -> String {
    d.sort();
    let at = |p: f64| d[((d.len() as f64 - 1.0) * p).round() as usize];
    let ms = |x: Duration| format!("{:.1} ms", x.as_secs_f64() * 1000.0);
    format!("| {what} | {} | {} | {} | {} |", d.len(), ms(at(0.5)), ms(at(0.99)), ms(d[d.len() - 1]))
}

fn main() {
    let sys = System::start();
    let block = sys.push("plugins/request-block", "request-block");
    let gw = sys.gateway("gw-bench", &[], None);

    // The first plugin: the gateway fetches and compiles the module.
    let first = timed(
        &gw,
        || sys.create("block", json!({ "url": block, "defaultConfig": { "block_urls": ["/edit/0"] } })),
        || gw.get("/edit/0").status == 403,
    );

    let mut edits = Vec::new();
    for i in 1..=EDITS {
        let path = format!("/edit/{i}");
        edits.push(timed(
            &gw,
            || sys.patch("block", json!({ "defaultConfig": { "block_urls": [path] } })),
            || gw.get(&path).status == 403,
        ));
    }

    // New plugins on a module the gateway already runs: a listener change plus a filter.
    let mut creates = Vec::new();
    for i in 0..CREATES {
        let (name, path) = (format!("extra-{i}"), format!("/extra/{i}"));
        creates.push(timed(
            &gw,
            || sys.create(&name, json!({ "url": block, "priority": 10, "defaultConfig": { "block_urls": [path] } })),
            || gw.get(&path).status == 403,
        ));
        sys.delete(&name);
        wait_for(wasmplug_testenv::system::TIMEOUT, || gw.get(&path).status == 200).unwrap();
    }

    println!("# WasmPlugin change → effect through Envoy\n");
    println!("`make bench-gateway`: apiextensions-apiserver + etcd, docker-registry, the controller (in-process),");
    println!("Envoy 1.40 (`--concurrency 1`), all on one 2-core machine. Each change is one API request; the");
    println!("effect is polled with new HTTP requests through Envoy every 5 ms.\n");
    println!("| change | n | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    println!("| first plugin (module fetch + compile) | 1 | {:.1} ms | | |", first.as_secs_f64() * 1000.0);
    println!("{}", summary("config edit", edits));
    println!("{}", summary("new plugin, module cached (listener + filter)", creates));
    println!("\nGoal: p99 ≤ 1 s.");
}
