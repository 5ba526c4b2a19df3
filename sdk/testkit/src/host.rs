//! Plugins through the `wasmplug-host` harness: a workspace plugin's compiled module (built and
//! compiled once per process) and a VM per configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use wasmplug_host::{Exchange, FailStrategy, HttpResponse, Plugin, Request, Vm, VmOptions};

/// The compiled plugin of workspace crate `crate_name` (built on first use, compiled once per process).
pub fn plugin(crate_name: &str) -> Plugin {
    static CACHE: OnceLock<Mutex<HashMap<String, Plugin>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    cache
        .entry(crate_name.to_string())
        .or_insert_with(|| Plugin::load(crate_name, crate::wasm::plugin_module(crate_name)).unwrap())
        .clone()
}

/// A VM of `crate_name` with `configuration` (fail closed, Envoy's default).
pub fn vm(crate_name: &str, configuration: &str) -> Vm {
    plugin(crate_name).start(VmOptions::default().configuration(configuration)).unwrap()
}

pub fn vm_with(crate_name: &str, options: VmOptions) -> Vm {
    plugin(crate_name).start(options).unwrap()
}

pub fn fail_open() -> VmOptions {
    VmOptions::default().fail_strategy(FailStrategy::FailOpen)
}

/// The recording upstream's default answer.
pub fn upstream_ok() -> HttpResponse {
    HttpResponse::new(200, "upstream ok").header("content-type", "text/plain")
}

/// One request through `vm`, the upstream answering [`upstream_ok`].
pub fn send(vm: &mut Vm, request: Request) -> Exchange {
    vm.run(&request, &mut upstream_ok()).unwrap()
}
