//! The last good state survives the controller: the real binary, SIGKILLed while the current
//! generation of a plugin is refused, and a new process with an empty module cache. Real API
//! server, registry and Envoy gateway, all over mutual TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use wasmplug_testenv::gateway::wait_for;
use wasmplug_testenv::process::{Scene, condition};

const TIMEOUT: Duration = Duration::from_secs(30);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wasmplug-controller"))
}

#[test]
fn sigkill_while_refused_then_empty_cache_serves_the_last_good_generation() {
    let scene = Scene::start();

    // Generation 1 serves.
    let first = scene.controller(bin());
    let gw = scene.gateway();
    scene.create_block();
    wait_for(TIMEOUT, || gw.get("/blocked").status == 403)
        .unwrap_or_else(|| panic!("gen 1 never served\n{}", first.logs()));

    // Generation 2 is refused by the schema: status says so and generation 1 keeps serving.
    scene.refuse_next_generation();
    wait_for(TIMEOUT, || condition(&scene.status(), "ConfigValid")["observedGeneration"] == 2)
        .unwrap_or_else(|| panic!("gen 2 never checked\n{}", first.logs()));
    let before = scene.status();
    assert_eq!(condition(&before, "ConfigValid")["status"], "False", "{before:#}");
    assert_eq!(before["servingGeneration"], 1, "{before:#}");
    assert_eq!(before["serving"]["generation"], 1, "{before:#}");

    // SIGKILL, and a new process with an empty cache: the gateway answers as generation 1 did
    // while no controller runs and after the new one has taken over.
    first.kill();
    let killed = Instant::now();
    // (Its cache directory is new: ControllerProcess makes one per process.)
    let mut second = scene.controller(bin());
    let mut answers = Vec::new();
    let restored = wait_for(TIMEOUT, || {
        answers.push(gw.get("/blocked").status);
        second.metric("wasmplug_serving_plugins") == Some(1.0)
    });
    assert!(restored.is_some(), "the new process never served the plugin\n{}", second.logs());
    second.wait("/readyz", |r| r.status == 200);
    for _ in 0..20 {
        answers.push(gw.get("/blocked").status);
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("kill → restored in the new process: {:?} ({} requests)", killed.elapsed(), answers.len());
    assert!(answers.iter().all(|s| *s == 403), "generation 1 served throughout: {answers:?}");
    assert!(second.logs().contains("restored the last good generation from status.serving"), "{}", second.logs());
    let after = scene.status();
    let sha = after["serving"]["moduleSha256"].as_str().unwrap();
    let pulled = second.cache.path().join(format!("modules/modules/sha256/{sha}.wasm"));
    assert!(pulled.is_file(), "the module was pulled again into the new cache: {}", pulled.display());
    assert_eq!(after["servingGeneration"], 1, "{after:#}");
    assert_eq!(after["serving"], before["serving"], "the record stays as it was");
    assert_eq!(condition(&after, "ConfigValid")["status"], "False", "generation 2 stays refused");

    // A gateway that starts now, from nothing, gets generation 1 from the new process.
    drop(gw);
    let fresh = scene.gateway();
    wait_for(TIMEOUT, || fresh.get("/blocked").status == 403)
        .unwrap_or_else(|| panic!("a new gateway never got gen 1\n{}\n{}", second.logs(), fresh.logs()));
    assert_eq!(fresh.get("/fine").status, 200);
}
