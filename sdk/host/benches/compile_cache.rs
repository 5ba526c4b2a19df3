//! Compiling a module vs loading it compiled from the compile cache, per module: an SDK plugin
//! and a Go-built one. Prints a Markdown table (`make bench-compile-cache`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmplug_host::{CompileCache, Plugin};
use wasmplug_testkit::wasm;

const ROUNDS: usize = 5;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn spread(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!("{:.1} ({:.1}–{:.1})", values[values.len() / 2], values[0], values[values.len() - 1])
}

fn main() {
    let go = wasm::go_module(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go-plugin")).unwrap();
    let modules: Vec<(&str, PathBuf)> = vec![
        ("hello-world (SDK)", wasm::plugin_module("hello-world")),
        ("transformer (SDK)", wasm::plugin_module("transformer")),
        ("go-plugin (Go 1.27, raw ABI)", go),
    ];
    println!("# Compile cache: compiling vs loading compiled\n");
    println!("Command: `make bench-compile-cache` (release build of the host, wasmtime 48 cranelift, 2-core machine).");
    println!("Median (min–max) of {ROUNDS} rounds; each round compiles into an empty cache, then loads from it.\n");
    println!("| module | size | compile, ms | load from cache, ms | ratio |");
    println!("|---|---|---|---|---|");
    for (label, path) in &modules {
        let size = std::fs::metadata(path).unwrap().len();
        let (mut compiled, mut loaded) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let dir = tempfile::tempdir().unwrap();
            let cache = CompileCache::new(dir.path().join("compiled"));
            let first = Plugin::load_cached("bench", path, &cache).unwrap().compilation();
            let second = Plugin::load_cached("bench", path, &cache).unwrap().compilation();
            assert!(!first.from_cache && second.from_cache);
            compiled.push(ms(first.took));
            loaded.push(ms(second.took));
        }
        let ratio = compiled.iter().sum::<f64>() / loaded.iter().sum::<f64>();
        println!(
            "| {label} | {:.0} KB | {} | {} | {ratio:.0}× |",
            size as f64 / 1024.0,
            spread(compiled),
            spread(loaded)
        );
    }
}
