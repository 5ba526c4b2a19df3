//! Where a plugin's module is built: `cargo build --profile wasm --target wasm32-wasip1`. The
//! `wasm` profile (in the workspace's `Cargo.toml`, and in each crate `wasmplug new` writes
//! outside a workspace) makes small modules; `release` stays a native profile for binaries.

use std::path::{Path, PathBuf};

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip1";
/// The cargo profile plugins are built with.
pub const PROFILE: &str = "wasm";
/// `cargo` arguments that build modules; add `-p <crate>` or `--manifest-path`.
pub const CARGO_ARGS: [&str; 5] = ["build", "--profile", PROFILE, "--target", TARGET];

/// The module cargo writes for `crate_name` under `target_dir`.
pub fn module_path(target_dir: &Path, crate_name: &str) -> PathBuf {
    target_dir.join(TARGET).join(PROFILE).join(format!("{}.wasm", crate_name.replace('-', "_")))
}
