//! `make bench-restart`: restart to serving. The controller binary is SIGKILLed while generation 2
//! of a plugin is refused and started again with an empty module cache, five times; each time:
//! how long until it serves generation 1 again (restored from `status.serving`, the module pulled
//! again by digest) and answers gateways (`/readyz`), and how long a gateway started right then
//! takes to block as generation 1 does. Real API server, registry and Envoy. Prints Markdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use wasmplug_testenv::gateway::wait_for;
use wasmplug_testenv::process::{Scene, condition};

const ROUNDS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(30);

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let bin = Path::new(env!("CARGO_BIN_EXE_wasmplug-controller"));
    let scene = Scene::start();
    let mut controller = scene.controller(bin);
    scene.create_block();
    let gw = scene.gateway();
    wait_for(TIMEOUT, || gw.get("/blocked").status == 403).expect("generation 1 serves");
    scene.refuse_next_generation();
    wait_for(TIMEOUT, || condition(&scene.status(), "ConfigValid")["observedGeneration"] == 2)
        .expect("generation 2 refused");
    drop(gw);

    println!("# Restart to serving\n");
    println!("`make bench-restart`: the controller binary (release build) SIGKILLed while generation 2 of a");
    println!("plugin is refused, then started with an empty module cache; real apiextensions-apiserver + etcd,");
    println!("docker-registry and Envoy 1.40 over mutual TLS, all on this 2-core machine. Times from the");
    println!("new process's start, except the last column.\n");
    println!(
        "| round | generation 1 in place again | /readyz (gateways answered) | new gateway blocks as generation 1 |"
    );
    println!("|---|---|---|---|");
    for round in 1..=ROUNDS {
        controller.kill();
        controller = scene.controller(bin);
        let started = controller.started;
        wait_for(TIMEOUT, || controller.metric("wasmplug_serving_plugins") == Some(1.0)).expect("restored");
        let restored = started.elapsed();
        controller.wait("/readyz", |r| r.status == 200);
        let ready = started.elapsed();
        let gateway_started = Instant::now();
        let fresh = scene.gateway();
        wait_for(TIMEOUT, || fresh.get("/blocked").status == 403).expect("the new gateway blocks");
        let blocks = gateway_started.elapsed();
        println!("| {round} | {} | {} | {} |", ms(restored), ms(ready), ms(blocks));
    }
    println!("\nThe last column counts from the gateway's own start (Envoy's start included).");
}
