//! `grpc-plugin`: gRPC callouts as a plugin on plain `proxy-wasm` makes them, for the host's
//! conformance test (Envoy vs `wasmplug-host`).
//!
//! The configuration is the name of the cluster serving `echo.Echo`. Per request, header
//! `x-grpc` decides:
//! - `unary`: calls `echo.Echo/<x-grpc-method, default Say>` with the request path as message
//!   (timeout `x-grpc-timeout-ms`, default 5000) and metadata `x-from: grpc-plugin`. The answer
//!   goes onto the request as `x-grpc-reply`; a failure answers `503` with
//!   `grpc status <code>: <message>`.
//! - `stream`: opens `echo.Echo/Chat`, sends `one` and `two` (the second ends the stream) and
//!   puts what came back onto the request: the messages (`x-grpc-messages`, joined by `|`),
//!   the `x-echo` initial and `x-done` trailing metadata (`x-grpc-metadata`) and the close
//!   status (`x-grpc-status`).
//! - anything else: the request goes on untouched.

use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Root {
    cluster: String,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        self.cluster = String::from_utf8_lossy(&raw).trim().to_string();
        !self.cluster.is_empty()
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Call { cluster: self.cluster.clone(), ..Call::default() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[derive(Default)]
struct Call {
    cluster: String,
    messages: Vec<String>,
    initial: String,
    trailing: String,
}

fn text(bytes: Option<Vec<u8>>) -> String {
    String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()
}

impl Call {
    fn refuse(&self, status: u32) {
        let (_, message) = self.get_grpc_status();
        let body = format!("grpc status {status}: {}", message.unwrap_or_default());
        self.send_http_response(503, vec![("content-type", "text/plain")], Some(body.as_bytes()));
    }
}

impl HttpContext for Call {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let metadata = vec![("x-from", b"grpc-plugin".as_slice())];
        match self.get_http_request_header("x-grpc").as_deref() {
            Some("unary") => {
                let method = self.get_http_request_header("x-grpc-method").unwrap_or_else(|| "Say".into());
                let timeout = self.get_http_request_header("x-grpc-timeout-ms").and_then(|t| t.parse().ok());
                let path = self.get_http_request_header(":path").unwrap_or_default();
                let timeout = Duration::from_millis(timeout.unwrap_or(5000));
                let cluster = self.cluster.clone();
                match self.dispatch_grpc_call(&cluster, "echo.Echo", &method, metadata, Some(path.as_bytes()), timeout)
                {
                    Ok(_) => Action::Pause,
                    Err(status) => {
                        let body = format!("grpc call refused: {status:?}");
                        self.send_http_response(503, vec![], Some(body.as_bytes()));
                        Action::Pause
                    }
                }
            }
            Some("stream") => {
                let cluster = self.cluster.clone();
                match self.open_grpc_stream(&cluster, "echo.Echo", "Chat", metadata) {
                    Ok(token) => {
                        self.send_grpc_stream_message(token, Some(b"one"), false);
                        self.send_grpc_stream_message(token, Some(b"two"), true);
                        Action::Pause
                    }
                    Err(status) => {
                        let body = format!("grpc stream refused: {status:?}");
                        self.send_http_response(503, vec![], Some(body.as_bytes()));
                        Action::Pause
                    }
                }
            }
            _ => Action::Continue,
        }
    }
}

impl Context for Call {
    fn on_grpc_call_response(&mut self, _token: u32, status: u32, size: usize) {
        if status != 0 {
            self.refuse(status);
            return;
        }
        let reply = text(self.get_grpc_call_response_body(0, size));
        self.set_http_request_header("x-grpc-reply", Some(&reply));
        self.resume_http_request();
    }

    fn on_grpc_stream_initial_metadata(&mut self, _token: u32, _count: u32) {
        self.initial = text(self.get_grpc_stream_initial_metadata_value("x-echo"));
    }

    fn on_grpc_stream_message(&mut self, _token: u32, size: usize) {
        let message = text(self.get_grpc_stream_message(0, size));
        self.messages.push(message);
    }

    fn on_grpc_stream_trailing_metadata(&mut self, _token: u32, _count: u32) {
        self.trailing = text(self.get_grpc_stream_trailing_metadata_value("x-done"));
    }

    fn on_grpc_stream_close(&mut self, _token: u32, status: u32) {
        let messages = self.messages.join("|");
        let metadata = format!("initial={};trailing={}", self.initial, self.trailing);
        self.set_http_request_header("x-grpc-messages", Some(&messages));
        self.set_http_request_header("x-grpc-metadata", Some(&metadata));
        self.set_http_request_header("x-grpc-status", Some(&status.to_string()));
        self.resume_http_request();
    }
}
