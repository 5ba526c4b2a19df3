//! `raw-hello`: the `hello-world` plugin written directly on `proxy-wasm`.
//!
//! A benchmark comparator for the SDK (module size and throughput). Behaviour:
//! - configuration `{"mockEnable": bool}` (missing or empty configuration = `false`);
//!   invalid JSON or an unknown field fails `on_configure`, so the host rejects the plugin;
//! - `mockEnable: true`: every request is answered locally with `200 hello world`;
//! - otherwise the request header `hello: world` is added and the request continues.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(HelloRoot::default()) });
}}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct Config {
    mock_enable: bool,
}

#[derive(Default)]
struct HelloRoot {
    config: Config,
}

impl Context for HelloRoot {}

impl RootContext for HelloRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        if raw.iter().all(u8::is_ascii_whitespace) {
            self.config = Config::default();
            return true;
        }
        match serde_json::from_slice::<Config>(&raw) {
            Ok(config) => {
                self.config = config;
                true
            }
            Err(err) => {
                log::error!("raw-hello: invalid plugin configuration: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Hello { config: self.config }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Hello {
    config: Config,
}

impl Context for Hello {}

impl HttpContext for Hello {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.config.mock_enable {
            self.send_http_response(200, vec![("content-type", "text/plain")], Some(b"hello world"));
            Action::Pause
        } else {
            self.add_http_request_header("hello", "world");
            Action::Continue
        }
    }
}
