//! The compiled-module cache: a second load of a module comes from disk and runs the same; a
//! damaged entry or a directory others can write to is passed over, never trusted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;

use wasmplug_host::{CompileCache, HttpResponse, Plugin, Request, VmOptions};
use wasmplug_testkit::wasm;

/// What hello-world adds to the request it passes upstream.
fn hello_header(plugin: &Plugin) -> String {
    let mut vm = plugin.start(VmOptions::default().configuration(r#"{"mockEnable":false}"#)).unwrap();
    let exchange = vm.run(&Request::get("/"), &mut HttpResponse::new(200, "ok")).unwrap();
    exchange.upstream_request.unwrap().header("hello").unwrap().to_string()
}

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    found.sort();
    found
}

#[test]
fn a_second_load_comes_from_the_cache_and_runs_the_same() {
    let module = wasm::plugin_module("hello-world");
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("compiled"));

    let first = Plugin::load_cached("hello-world", &module, &cache).unwrap();
    assert!(!first.compilation().from_cache);
    let stored = entries(cache.dir());
    assert_eq!(stored.len(), 1, "one entry per module: {stored:?}");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&module).unwrap()))
    };
    let name = stored[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&sha) && name.ends_with(".cwasm"), "named by the module's sha256: {name}");
    let mode = std::fs::metadata(cache.dir()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "only its owner can use the directory");

    let second = Plugin::load_cached("hello-world", &module, &cache).unwrap();
    assert!(second.compilation().from_cache);
    assert_eq!(hello_header(&second), hello_header(&first));
    assert_eq!(hello_header(&second), "world");
}

#[test]
fn a_damaged_entry_is_compiled_again_and_replaced() {
    let module = wasm::plugin_module("hello-world");
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    Plugin::load_cached("hello-world", &module, &cache).unwrap();
    let entry = entries(dir.path()).remove(0);
    let bytes = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &bytes[..bytes.len() / 2]).unwrap();

    let plugin = Plugin::load_cached("hello-world", &module, &cache).unwrap();
    assert!(!plugin.compilation().from_cache, "a truncated entry is not loaded");
    assert_eq!(hello_header(&plugin), "world");
    assert_eq!(std::fs::read(&entry).unwrap(), bytes, "the entry is written again whole");
    assert!(Plugin::load_cached("hello-world", &module, &cache).unwrap().compilation().from_cache);
}

#[test]
fn a_directory_others_can_write_to_is_not_used() {
    let module = wasm::plugin_module("hello-world");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let cache = CompileCache::new(dir.path());
    for _ in 0..2 {
        let plugin = Plugin::load_cached("hello-world", &module, &cache).unwrap();
        assert!(!plugin.compilation().from_cache);
        assert_eq!(hello_header(&plugin), "world");
    }
    assert!(entries(dir.path()).is_empty(), "nothing is stored where others could replace it");
}

#[test]
fn another_module_gets_its_own_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("c"));
    Plugin::load_cached("hello-world", wasm::plugin_module("hello-world"), &cache).unwrap();
    let other = Plugin::load_cached("request-block", wasm::plugin_module("request-block"), &cache).unwrap();
    assert!(!other.compilation().from_cache);
    assert_eq!(entries(cache.dir()).len(), 2);
}

#[test]
fn a_go_built_plugin_runs_and_its_second_start_loads_compiled() {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go-plugin");
    let module = wasm::go_module(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("compiled"));
    for from_cache in [false, true] {
        let plugin = Plugin::load_cached("go-plugin", &module, &cache).unwrap();
        assert_eq!(plugin.compilation().from_cache, from_cache);
        let mut vm = plugin.start(VmOptions::default().configuration("/deny")).unwrap();
        let denied = vm.run(&Request::get("/deny/x"), &mut HttpResponse::new(200, "ok")).unwrap();
        assert_eq!((denied.response.status, denied.response.body.as_slice()), (403, &b"denied by go-plugin\n"[..]));
        let passed = vm.run(&Request::get("/"), &mut HttpResponse::new(200, "ok")).unwrap();
        assert_eq!(passed.upstream_request.unwrap().header("x-go-plugin"), Some("5"), "the configuration's length");
    }
}

#[test]
fn the_least_recently_used_entries_beyond_64_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("c"));
    std::fs::create_dir(cache.dir()).unwrap();
    std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for i in 0..64 {
        let path = cache.dir().join(format!("old-{i:02}.cwasm"));
        std::fs::write(&path, b"stale").unwrap();
        let age = old + std::time::Duration::from_secs(i);
        std::fs::File::options().append(true).open(&path).unwrap().set_modified(age).unwrap();
    }
    Plugin::load_cached("hello-world", wasm::plugin_module("hello-world"), &cache).unwrap();
    let names: Vec<String> =
        entries(cache.dir()).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 64, "{names:?}");
    assert!(!names.contains(&"old-00.cwasm".to_string()), "the oldest entry went: {names:?}");
    assert!(names.contains(&"old-01.cwasm".to_string()));
}
