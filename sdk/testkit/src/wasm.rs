//! Locating (and building on first use) the plugin `.wasm` modules under test.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use wasmplug_contract::build::CARGO_ARGS;

/// Crates already built by this process.
static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The workspace root: this crate lives at `<workspace>/sdk/testkit`.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().and_then(Path::parent).map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// The cargo target directory (`CARGO_TARGET_DIR` if set, else `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// Where the module of `crate_name` is written (`wasm32-wasip1/wasm/` under [`target_dir`]).
pub fn module_path(crate_name: &str) -> PathBuf {
    wasmplug_contract::build::module_path(&target_dir(), crate_name)
}

/// The `.wasm` module of the workspace plugin crate `crate_name` (e.g. `"raw-hello"`).
///
/// The first request for a crate in this process runs
/// `cargo build --profile wasm --target wasm32-wasip1 -p <crate_name>` from the workspace root
/// (cargo is `$CARGO`, else `cargo`); later requests reuse the result. With
/// `WASMPLUG_SKIP_WASM_BUILD=1` nothing is built and the module must already exist.
///
/// # Panics
/// If the build fails or the module is missing: this is test-harness code, and a
/// missing module makes the calling test meaningless.
#[allow(clippy::panic)]
pub fn plugin_module(crate_name: &str) -> PathBuf {
    match try_plugin_module(crate_name) {
        Ok(path) => path,
        Err(err) => panic!("{err}"),
    }
}

/// As [`plugin_module`], returning the failure instead of panicking.
pub fn try_plugin_module(crate_name: &str) -> Result<PathBuf, String> {
    let path = module_path(crate_name);
    let skip_build = std::env::var("WASMPLUG_SKIP_WASM_BUILD").is_ok_and(|v| v == "1");
    if !skip_build {
        // Held for the whole build: parallel tests wait for one build instead of racing.
        let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
        let built = built.get_or_insert_with(HashSet::new);
        if !built.contains(crate_name) {
            build(crate_name)?;
            built.insert(crate_name.to_owned());
        }
    }
    if path.is_file() {
        Ok(path)
    } else if skip_build {
        Err(format!(
            "wasm module {} does not exist and WASMPLUG_SKIP_WASM_BUILD=1; build it with \
             `cargo {} -p {crate_name}`",
            path.display(),
            CARGO_ARGS.join(" ")
        ))
    } else {
        Err(format!(
            "`cargo build -p {crate_name}` succeeded but {} does not exist; is `{crate_name}` \
             a cdylib crate of this workspace?",
            path.display()
        ))
    }
}

fn build(crate_name: &str) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(CARGO_ARGS)
        .args(["-p", crate_name])
        .status()
        .map_err(|err| format!("cannot run {cargo:?} to build `{crate_name}`: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "building the wasm module of `{crate_name}` failed ({status}): \
             `cargo {} -p {crate_name}` in {}",
            CARGO_ARGS.join(" "),
            root.display()
        ))
    }
}
