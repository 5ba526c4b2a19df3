//! Benchmark: cold pull vs cache hit (100 KB and 5 MB modules), and 50 concurrent resolves of
//! one digest (GETs counted at a proxy in front of the registry). Prints Markdown.
//! Run with `make bench-oci` (needs `make registry-tools`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmplug_oci::{Cache, PluginPackage, PushFormat, build_image, push};
use wasmplug_testkit::registry::images::{client, image};
use wasmplug_testkit::registry::proxy::Proxy;
use wasmplug_testkit::registry::{Options, TestRegistry, padded_module};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let r = TestRegistry::start(Options::default());
    let proxy = Proxy::start(&r.host);
    let reg = client(&r.host);
    println!("# wasmplug-oci: pull and cache benchmark\n");
    println!("Command: `make bench-oci` (`cargo run --release -p wasmplug-oci --example pull_bench`).");
    println!(
        "Registry: Debian docker-registry 2.8 on 127.0.0.1 (plain HTTP, filesystem storage), same 2-core machine.\n"
    );
    println!("## Cold pull vs cache hit (Higress layout, resolve by digest, IfNotPresent)\n");
    println!("| module | cold pull (median of 7) | cache hit (median of 200) | hit speed-up |");
    println!("|---|---|---|---|");
    for (label, size) in [("100 KB", 100 * 1024), ("5 MB", 5 * 1024 * 1024)] {
        let pkg = PluginPackage::from_module("m", padded_module(size)).unwrap();
        let built = build_image(&pkg, PushFormat::Higress).unwrap();
        let img = image(&r.host, &format!("bench/m{size}:1"));
        let digest = push(&reg, &img, &built, &|_, _| {}).await.unwrap();
        let pinned = img.with_digest(&digest);
        let mut cold = Vec::new();
        let mut hits = Vec::new();
        for _ in 0..7 {
            let dir = tempfile::tempdir().unwrap();
            let cache = Cache::new(dir.path(), client(&r.host)).unwrap();
            let t = Instant::now();
            cache.resolve(&pinned, None, None, None).await.unwrap();
            cold.push(t.elapsed());
            for _ in 0..200 / 7 + 1 {
                let t = Instant::now();
                let m = cache.resolve(&pinned, None, None, None).await.unwrap();
                hits.push(t.elapsed());
                assert_eq!(m.size, pkg.module.len() as u64);
            }
        }
        let (c, h) = (median(cold), median(hits));
        println!(
            "| {label} ({} bytes) | {} | {} | {:.0}x |",
            pkg.module.len(),
            ms(c),
            ms(h),
            c.as_secs_f64() / h.as_secs_f64()
        );
    }
    println!(
        "\nA cold pull: manifest GET, one blob GET (plugin.tar.gz: the padded test modules carry no metadata, so no spec.yaml layer), digest checks, gunzip and tar checks, atomic writes (fsync) of module and records."
    );
    println!("A hit: read the manifest-digest record (JSON) and stat the module file; no network.\n");

    println!("## 50 concurrent resolves of one digest (fresh cache)\n");
    println!("| layout | manifest GETs | blob GETs | distinct blobs | wall time |");
    println!("|---|---|---|---|---|");
    for (name, format) in [("cncf (1 layer)", PushFormat::Cncf), ("higress (plugin.tar.gz)", PushFormat::Higress)] {
        let pkg = PluginPackage::from_module("m", padded_module(1024 * 1024)).unwrap();
        let built = build_image(&pkg, format).unwrap();
        let img = image(&proxy.host, &format!("bench/concurrent-{}:1", name.len()));
        let proxied = client(&proxy.host);
        let digest = push(&proxied, &img, &built, &|_, _| {}).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(Cache::new(dir.path(), proxied).unwrap());
        let pinned = img.with_digest(&digest);
        proxy.clear();
        let t = Instant::now();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (cache, pinned) = (cache.clone(), pinned.clone());
                tokio::spawn(async move { cache.resolve(&pinned, None, None, None).await.unwrap() })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let wall = t.elapsed();
        let reqs = proxy.requests.lock().unwrap().clone();
        let manifests = reqs.iter().filter(|(m, p)| m == "GET" && p.contains("/manifests/")).count();
        let blobs: Vec<_> =
            reqs.iter().filter(|(m, p)| m == "GET" && p.contains("/blobs/")).map(|r| r.1.clone()).collect();
        let mut distinct = blobs.clone();
        distinct.sort();
        distinct.dedup();
        println!("| {name} | {manifests} | {} | {} | {} |", blobs.len(), distinct.len(), ms(wall));
    }
    println!("\nCounted at a proxy in front of the registry; `/v2/` pings by the client are not counted.");
}
