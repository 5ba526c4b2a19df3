//! `raw-headers`: a conformance plugin written directly on `proxy-wasm` (no wasmplug SDK).
//!
//! Used by the host's differential conformance test (Envoy vs `wasmplug-host`). Behaviour:
//! - configuration `{"addRequestHeaders": {"name": "value", ...}, "denyPathPrefix": "/x",
//!   "addResponseHeaders": {"name": "value", ...}}`, every field optional (missing or empty
//!   configuration = all defaults); invalid JSON or an unknown field fails `on_configure`;
//! - a request whose `:path` starts with `denyPathPrefix` is answered locally with
//!   `403 forbidden by raw-headers` (`content-type: text/plain`, `x-raw-headers: denied`);
//! - otherwise every `addRequestHeaders` entry is added to the request (replacing a header of
//!   the same name) and the request continues;
//! - on the response, `x-raw-headers-path` is set to the request's path (per-request state kept
//!   from the request phase) and every `addResponseHeaders` entry is set.

use std::collections::BTreeMap;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct Config {
    add_request_headers: BTreeMap<String, String>,
    deny_path_prefix: Option<String>,
    add_response_headers: BTreeMap<String, String>,
}

#[derive(Default)]
struct Root {
    config: Rc<Config>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        if raw.iter().all(u8::is_ascii_whitespace) {
            self.config = Rc::default();
            return true;
        }
        match serde_json::from_slice::<Config>(&raw) {
            Ok(config) => {
                self.config = Rc::new(config);
                true
            }
            Err(err) => {
                log::error!("raw-headers: invalid plugin configuration: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter { config: Rc::clone(&self.config), path: String::new() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Filter {
    config: Rc<Config>,
    path: String,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.path = self.get_http_request_header(":path").unwrap_or_default();
        if let Some(prefix) = self.config.deny_path_prefix.as_deref().filter(|p| !p.is_empty())
            && self.path.starts_with(prefix)
        {
            log::info!("raw-headers: denied {}", self.path);
            self.send_http_response(
                403,
                vec![("content-type", "text/plain"), ("x-raw-headers", "denied")],
                Some(b"forbidden by raw-headers"),
            );
            return Action::Pause;
        }
        for (name, value) in &self.config.add_request_headers {
            self.set_http_request_header(name, Some(value));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_response_header("x-raw-headers-path", Some(&self.path));
        for (name, value) in &self.config.add_response_headers {
            self.set_http_response_header(name, Some(value));
        }
        Action::Continue
    }
}
