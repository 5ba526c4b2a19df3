//! Per-request cost of hello-world in the host and in Envoy 1.40, and VM start time.
//! Prints markdown; `make bench-host` writes it to `sdk/host/bench/results.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use wasmplug_host::{HttpResponse, Plugin, Request, VmOptions};
use wasmplug_testkit::upstream::Upstream;
use wasmplug_testkit::{Envoy, EnvoyConfig, WasmFilter, client, wasm};

fn per(total: Duration, n: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(n)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn envoy_round(port: u16, n: u32) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        let resp = client::get(port, "/").unwrap();
        assert_eq!(resp.status, 200);
    }
    per(started.elapsed(), n)
}

fn main() {
    let module = wasm::plugin_module("hello-world");
    let compile_started = Instant::now();
    let plugin = Plugin::load("hello-world", &module).unwrap();
    let compile = compile_started.elapsed();

    // VM start: instantiate + _initialize + vm_start + configure.
    let starts = 300;
    let mut start_times = Vec::new();
    for _ in 0..starts {
        let t = Instant::now();
        let vm = plugin.start(VmOptions::default().configuration("{}")).unwrap();
        start_times.push(t.elapsed().as_secs_f64() * 1e6);
        drop(vm);
    }

    // Host: whole request (headers + response headers + done) through the plugin.
    let mut vm = plugin.start(VmOptions::default().configuration("{}")).unwrap();
    let mut upstream = HttpResponse::new(200, "upstream ok").header("content-type", "text/plain");
    let request = Request::get("/").host("example.com");
    let n_host = 20_000;
    let mut host_rounds = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..n_host {
            let ex = vm.run(&request, &mut upstream).unwrap();
            assert!(ex.upstream_request.is_some());
        }
        host_rounds.push(per(t.elapsed(), n_host));
    }

    // Envoy: the same plugin vs no filter, sequential requests, interleaved rounds.
    let up = Upstream::start();
    let with = Envoy::start(
        EnvoyConfig::proxy_to(up.port())
            .access_log(false)
            .filter(WasmFilter::new("hello-world", &module).configuration("{}")),
    )
    .unwrap();
    let without = Envoy::start(EnvoyConfig::proxy_to(up.port()).access_log(false)).unwrap();
    let n_envoy = 1_000;
    envoy_round(with.http_port(), 100);
    envoy_round(without.http_port(), 100);
    let (mut with_rounds, mut without_rounds) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        with_rounds.push(envoy_round(with.http_port(), n_envoy));
        without_rounds.push(envoy_round(without.http_port(), n_envoy));
    }
    let (host, env_with, env_without) = (median(host_rounds), median(with_rounds), median(without_rounds));
    let mut sorted = start_times.clone();
    sorted.sort_by(f64::total_cmp);

    println!("# wasmplug-host benchmark\n");
    println!("Command: `make bench-host` (release build of the host, Envoy 1.40 from PyPI, 2-core machine).\n");
    println!("## VM start (hello-world, instantiate + `_initialize` + `proxy_on_vm_start` + `proxy_on_configure`)\n");
    println!("| | µs |\n|---|---|");
    println!("| median of {starts} starts | {:.1} |", sorted[sorted.len() / 2]);
    println!("| p90 | {:.1} |", sorted[sorted.len() * 9 / 10]);
    println!("| module compile (once per plugin, cranelift) | {:.0} |\n", compile.as_secs_f64() * 1e6);
    println!("## Per-request cost of hello-world (`{{}}`: adds `hello: world`, request passes)\n");
    println!("| where | µs per request | what it includes |\n|---|---|---|");
    println!(
        "| host (`Vm::run`) | {host:.2} | context create, request headers, response headers, done/log/delete; no network |"
    );
    println!("| Envoy, with the plugin | {env_with:.1} | a full HTTP request over loopback (new connection each) |");
    println!("| Envoy, no filter | {env_without:.1} | the same without the Wasm filter |");
    println!(
        "| Envoy, cost of the plugin (difference) | {:.1} | includes noise of two loopback round trips |",
        env_with - env_without
    );
    println!("\nMedians of 3 interleaved rounds ({n_host} host requests, {n_envoy} Envoy requests per round).");
}
