//! `wasmplug`: build, push, pull, inspect and validate plugin images (in progress).

fn main() {}
