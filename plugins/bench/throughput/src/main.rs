//! Request throughput through one Envoy worker (`--concurrency 1`, pinned to CPU 0) with
//! `wrk` pinned to CPU 1: no Wasm filter vs the raw proxy-wasm hello vs the SDK hello-world.
//! Two setups: `direct` (Envoy answers the route itself with `direct_response`, so the filter's
//! cost is set against Envoy's bare per-request work: the strictest ratio) and `proxied` (Envoy
//! forwards to an upstream, a second Envoy answering directly, pinned to CPU 1 with wrk).
//! Rounds interleave the variants and the median of each is reported, with ratios.
//!
//! Two measures per run: wrk's requests per second (wall clock, sensitive to anything else the
//! machine runs) and Envoy's capacity, requests per second of CPU time that the Envoy process
//! itself used (from /proc), which is robust against other load on the machine.
//!
//! Usage: `bench-throughput direct|proxied [seconds per run] [rounds]` (defaults 10 and 3).
//! Needs `wrk` and `taskset`.

use std::process::Command;

use wasmplug_testkit::{Envoy, EnvoyConfig, Route, VirtualHost, WasmFilter, wasm};

struct Variant {
    name: &'static str,
    filter: Option<WasmFilter>,
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let proxied = match args.next().as_deref() {
        Some("direct") => false,
        Some("proxied") => true,
        other => return Err(format!("first argument must be `direct` or `proxied`, got {other:?}")),
    };
    let upstream = if proxied {
        let config = EnvoyConfig::new()
            .virtual_host(VirtualHost::new("default", ["*"]).route(Route::direct("default", "/", 200, "ok")))
            .access_log(false)
            .log_level("warn")
            .cpu_list("1");
        Some(Envoy::start(config)?)
    } else {
        None
    };
    let upstream_port = upstream.as_ref().map(Envoy::http_port);
    let seconds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let variants = [
        Variant { name: "no Wasm filter", filter: None },
        Variant {
            name: "raw proxy-wasm hello",
            filter: Some(WasmFilter::new("raw-hello", wasm::try_plugin_module("raw-hello")?).configuration("{}")),
        },
        Variant {
            name: "SDK hello-world",
            filter: Some(WasmFilter::new("hello-world", wasm::try_plugin_module("hello-world")?).configuration("{}")),
        },
    ];
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut capacity: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for (i, v) in variants.iter().enumerate() {
            let m = run(v, seconds, upstream_port)?;
            eprintln!(
                "round {}: {:<22} {:>8.0} req/s  {:>8.0} req per Envoy CPU-second",
                round + 1,
                v.name,
                m.rps,
                m.capacity
            );
            wall[i].push(m.rps);
            capacity[i].push(m.capacity);
        }
    }
    let wall: Vec<f64> = wall.iter_mut().map(|r| median(r)).collect();
    let capacity: Vec<f64> = capacity.iter_mut().map(|r| median(r)).collect();
    println!("| variant | req per Envoy CPU-second | vs no filter | vs raw | wrk req/s | vs no filter | vs raw |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, v) in variants.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} |",
            v.name,
            capacity[i],
            capacity[i] / capacity[0],
            capacity[i] / capacity[1],
            wall[i],
            wall[i] / wall[0],
            wall[i] / wall[1]
        );
    }
    println!();
    let setup = if proxied { "proxied to an upstream Envoy on CPU 1" } else { "direct_response" };
    println!(
        "{setup}; {rounds} interleaved rounds of {seconds} s each; `wrk -t1 -c16` on CPU 1, Envoy `--concurrency 1` on CPU 0."
    );
    Ok(())
}

struct Measure {
    /// Requests per second of wall-clock time, as wrk saw them.
    rps: f64,
    /// Requests per second of CPU time used by the Envoy process.
    capacity: f64,
}

fn run(variant: &Variant, seconds: u32, upstream_port: Option<u16>) -> Result<Measure, String> {
    let mut config = match upstream_port {
        Some(port) => EnvoyConfig::proxy_to(port),
        None => EnvoyConfig::new()
            .virtual_host(VirtualHost::new("default", ["*"]).route(Route::direct("default", "/", 200, "ok"))),
    }
    .access_log(false)
    .log_level("warn")
    .cpu_list("0");
    if let Some(filter) = &variant.filter {
        config = config.filter(filter.clone());
    }
    let envoy = Envoy::start(config)?;
    let url = format!("http://127.0.0.1:{}/", envoy.http_port());
    // Warm up the VM and connections before measuring.
    wrk(&url, 1)?;
    let cpu_before = envoy.cpu_time()?;
    let (rps, requests) = wrk(&url, seconds)?;
    let cpu = envoy.cpu_time()?.saturating_sub(cpu_before).as_secs_f64();
    if cpu <= 0.0 {
        return Err("Envoy used no measurable CPU time".into());
    }
    Ok(Measure { rps, capacity: requests / cpu })
}

/// Requests per second and the number of requests completed.
fn wrk(url: &str, seconds: u32) -> Result<(f64, f64), String> {
    let out = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1", "-c16", &format!("-d{seconds}s"), url])
        .output()
        .map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        return Err(format!("wrk saw errors:\n{text}"));
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    // "  123456 requests in 10.00s, ..."
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no request count in wrk output:\n{text}"))?;
    Ok((rps, requests))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}
