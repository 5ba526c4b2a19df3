//! Running the `wasmplug` binary from the CLI's integration tests.

use std::process::{Command, Output};

/// Runs `wasmplug` with `args` and waits for it.
pub fn wasmplug(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmplug")).args(args).output().unwrap()
}

/// The stdout of a run that must have succeeded (its output is shown when it did not).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
