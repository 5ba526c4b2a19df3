//! The workspace's layout as the top-level README describes it: the crate map lists exactly the
//! workspace's packages, at their paths, and nothing under `sdk/` depends on a crate under
//! `controller/` (plugin authors' tools never pull the operator).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use wasmplug_testkit::wasm::workspace_root;

/// The host's target triple (`rustc -vV`).
fn host_triple() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names the host").trim().to_string()
}

/// `cargo metadata` of the workspace, with the dependency graph resolved for the host (so the
/// sources of other platforms' dependencies need not be on disk).
fn metadata() -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host_triple()])
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Package id → (path relative to the workspace root, package name), for workspace members.
fn members(meta: &Value) -> BTreeMap<String, (String, String)> {
    let root = workspace_root();
    let ids: BTreeSet<&str> = meta["workspace_members"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| ids.contains(p["id"].as_str().unwrap()))
        .map(|p| {
            let manifest = Path::new(p["manifest_path"].as_str().unwrap());
            let dir = manifest.parent().unwrap().strip_prefix(&root).unwrap();
            let dir = if dir.as_os_str().is_empty() { ".".to_string() } else { dir.display().to_string() };
            (p["id"].as_str().unwrap().to_string(), (dir, p["name"].as_str().unwrap().to_string()))
        })
        .collect()
}

/// The `| \`path\` | \`package\` | what |` rows of the README's crate map.
fn readme_map() -> BTreeSet<(String, String)> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let section = readme.split("## The crates").nth(1).expect("README has a `## The crates` section");
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let path = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let package = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((path.to_string(), package.to_string()))
        })
        .collect()
}

#[test]
fn the_readme_crate_map_is_the_workspace() {
    let workspace: BTreeSet<(String, String)> = members(&metadata()).into_values().collect();
    let readme = readme_map();
    let missing: Vec<_> = workspace.difference(&readme).collect();
    let stale: Vec<_> = readme.difference(&workspace).collect();
    assert!(missing.is_empty() && stale.is_empty(), "not in the README: {missing:?}; not in the workspace: {stale:?}");
}

#[test]
fn nothing_under_sdk_depends_on_the_controller() {
    let meta = metadata();
    let members = members(&meta);
    let under =
        |id: &str, top: &str| members.get(id).is_some_and(|(dir, _)| dir == top || dir.starts_with(&format!("{top}/")));
    let mut wrong = Vec::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap();
        if !under(id, "sdk") {
            continue;
        }
        for dep in node["deps"].as_array().unwrap() {
            let dep_id = dep["pkg"].as_str().unwrap();
            if under(dep_id, "controller") {
                wrong.push(format!("{} -> {}", members[id].1, members[dep_id].1));
            }
        }
    }
    assert!(wrong.is_empty(), "sdk crates depending on controller crates (dev-dependencies included): {wrong:?}");
    // The check itself sees the graph: the controller does depend on sdk crates.
    let controller_deps = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| under(n["id"].as_str().unwrap(), "controller"))
        .flat_map(|n| n["deps"].as_array().unwrap().iter())
        .filter(|d| under(d["pkg"].as_str().unwrap(), "sdk"))
        .count();
    assert!(controller_deps > 0);
}

#[test]
fn sources_are_shared_through_crates_not_path_includes() {
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if !name.to_string_lossy().starts_with('.') && name != "target" {
                    walk(&path, found);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                if text.lines().any(|l| l.trim_start().starts_with(concat!("#[", "path"))) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    let mut found = Vec::new();
    for top in ["sdk", "plugins", "controller"] {
        walk(&workspace_root().join(top), &mut found);
    }
    assert!(found.is_empty(), "`#[path]` includes: {found:?}");
}
