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

/// The `.wasm` module of the Go plugin in `source` (a directory with `go.mod`), built the way
/// Higress builds its Go plugins (`GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`) with
/// the toolchain `controller/testenv/install-go.sh` installs (cached; standard library only).
/// Written to `go/<directory name>.wasm` under [`target_dir`].
pub fn go_module(source: &Path) -> Result<PathBuf, String> {
    let root = workspace_root();
    let install = root.join("controller/testenv/install-go.sh");
    let out = Command::new(&install).output().map_err(|e| format!("cannot run {}: {e}", install.display()))?;
    let go = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    if !out.status.success() || go.is_empty() {
        return Err(format!("{} failed: {}", install.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let goroot = Path::new(&go).parent().and_then(Path::parent).ok_or_else(|| format!("{go}: no GOROOT"))?;
    let name = source.file_name().map(|n| n.to_string_lossy().replace('-', "_")).unwrap_or_default();
    let module = target_dir().join("go").join(format!("{name}.wasm"));
    let cache = wasmplug_contract::dirs::user_cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("wasmplug"))
        .join("gocache");
    let out = Command::new(&go)
        .current_dir(source)
        .envs([("GOROOT", goroot.as_os_str()), ("GOCACHE", cache.as_os_str())])
        .envs([("GOTOOLCHAIN", "local"), ("GOPROXY", "off"), ("CGO_ENABLED", "0"), ("GOOS", "wasip1")])
        .envs([("GOARCH", "wasm"), ("GOFLAGS", "")])
        .args(["build", "-buildmode=c-shared", "-o"])
        .arg(&module)
        .arg(".")
        .output()
        .map_err(|e| format!("cannot run {go}: {e}"))?;
    if out.status.success() {
        Ok(module)
    } else {
        Err(format!("go build in {} failed: {}", source.display(), String::from_utf8_lossy(&out.stderr)))
    }
}
