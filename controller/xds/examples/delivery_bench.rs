//! Time from `XdsServer::update` with an edited plugin config to the effect seen through a
//! real Envoy 1.40, over 20 edits (p50/p99/max), plus the ACK and NACK round trips. Prints
//! Markdown. Run with `make bench-xds`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use wasmplug_testenv::gateway::{ControlPlane, TIMEOUT, labels, wait_for};
use wasmplug_xds::{Feedback, Resource};

const EDITS: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Waits for the ACK or NACK of `name` at `version`: (acked, time since `start`).
fn answered(
    cp: &ControlPlane,
    rx: &mut tokio::sync::broadcast::Receiver<Feedback>,
    name: &str,
    version: u64,
    start: Instant,
) -> (bool, Duration) {
    cp.rt.block_on(async {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                match rx.recv().await {
                    Ok(Feedback::Acked { resource: Resource::Filter(n), version: v, .. })
                        if n == name && v == version =>
                    {
                        return (true, start.elapsed());
                    }
                    Ok(Feedback::Nacked { resource: Resource::Filter(n), version: v, .. })
                        if n == name && v == version =>
                    {
                        return (false, start.elapsed());
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("feedback: {e}"),
                }
            }
        })
        .await
        .expect("no ACK/NACK in time")
    })
}

fn main() {
    let cp = ControlPlane::start();
    let [custom] = <[String; 1]>::try_from(cp.allow(&["custom-response"])).unwrap();
    let gw = cp.gateway("bench", labels(&[]));
    let mut rx = cp.xds.subscribe();
    let config = |i: usize| format!(r#"{{"status_code":200,"body":"edit-{i}"}}"#);

    // First delivery: LDS update, ECDS, module fetch, VM start.
    cp.update(vec![cp.plugin("custom", &custom, &config(0))]);
    let first = wait_for(TIMEOUT, || gw.get("/").text() == "edit-0").expect("first delivery never visible");

    let mut visible = Vec::new();
    let mut acks = Vec::new();
    for i in 1..=EDITS {
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        let v = cp.update(vec![cp.plugin("custom", &custom, &config(i))]);
        let want = format!("edit-{i}");
        let took = wait_for(TIMEOUT, || gw.get("/").text() == want).unwrap_or_else(|| panic!("edit {i} never visible"));
        visible.push(took);
        let (acked, ack) = answered(&cp, &mut rx, "custom", v, start);
        assert!(acked, "edit {i} was NACKed");
        acks.push(ack);
    }
    let mut nacks = Vec::new();
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        let v = cp.update(vec![cp.plugin("custom", &custom, &format!(r#"{{"status_code":{}}}"#, 700 + i))]);
        let (acked, took) = answered(&cp, &mut rx, "custom", v, start);
        assert!(!acked, "a refused config was ACKed");
        nacks.push(took);
    }
    visible.sort();
    acks.sort();
    nacks.sort();
    let envoy = std::process::Command::new(wasmplug_testenv::gateway::envoy_bin()).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&envoy.stdout);
    let version = version
        .split("version:")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.split('/').nth(1))
        .unwrap_or("?");
    println!("# xDS delivery latency\n");
    println!("Produced by `make bench-xds` (`cargo run -q -p wasmplug-xds --example bench`): the xDS and module");
    println!("servers in-process, one Envoy {version} (`--concurrency 1`) bootstrapped by `envoy_bootstrap`,");
    println!("everything on 127.0.0.1. Each edit changes the `body` of a custom-response plugin; the time runs");
    println!("from `update()` until a new HTTP request through Envoy answers with the new body (polled");
    println!("back to back, one connection per request, 5 ms apart). With 20 samples p99 is the maximum.");
    println!("{} logical CPUs.\n", num_cpus());
    println!("| measurement | n | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, v: &[Duration]| {
        println!(
            "| {name} | {} | {} | {} | {} |",
            v.len(),
            ms(percentile(v, 50.0)),
            ms(percentile(v, 99.0)),
            ms(v[v.len() - 1])
        );
    };
    row("config edit → effect visible", &visible);
    row("config edit → ACK received", &acks);
    row("refused config → NACK received", &nacks);
    println!("| first delivery (LDS + ECDS + module fetch + VM start) → effect visible | 1 | {} | | |", ms(first));
    let goal = percentile(&visible, 99.0) <= Duration::from_secs(1);
    println!("\nGoal p99 ≤ 1 s for an edit: {}.", if goal { "met" } else { "NOT met" });
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
