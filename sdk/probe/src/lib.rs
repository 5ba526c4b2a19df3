//! A plugin for the SDK's own end-to-end tests: access-log attributes, metrics, ticks,
//! buffered request bodies with a limit, streaming response chunks and headers on local replies.

mod config;

use std::cell::OnceCell;
use std::time::Duration;

use wasmplug_sdk::prelude::*;

pub use config::Config;

thread_local! {
    static REQUESTS: OnceCell<Counter> = const { OnceCell::new() };
}

#[derive(Default)]
pub struct Probe;

impl HttpPlugin for Probe {
    type Config = Config;
    const REQUEST_BODY: BodyMode = BodyMode::Buffered;
    const RESPONSE_BODY: BodyMode = BodyMode::Streaming;

    fn on_start(start: &mut PluginStart<'_, Config>) {
        if let Ok(counter) = Counter::new("probe_requests") {
            REQUESTS.with(|c| {
                c.get_or_init(|| counter);
            });
        }
        if let Ok(ticks) = Gauge::new("probe_ticks") {
            start.register_tick(Duration::from_millis(50), move || ticks.add(1));
        }
    }

    fn on_request_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        REQUESTS.with(|c| c.get().map(|c| c.increment(1)));
        let (method, path) = (ctx.method().to_string(), ctx.path().to_string());
        ctx.set_user_attribute("probe_method", method);
        ctx.set_user_attribute("probe_path", path.clone());
        ctx.write_user_attributes_to_log();
        if let Some(limit) = config.request_body_limit {
            ctx.set_request_body_limit(limit);
        }
        if !config.uppercase_request_body && config.request_body_limit.is_none() {
            ctx.dont_read_request_body();
        }
        if !config.uppercase_response {
            ctx.dont_read_response_body();
        }
        if config.panic_prefix.as_deref().is_some_and(|p| path.starts_with(p)) {
            panic_on_purpose(&path);
        }
        if config.deny_prefix.as_deref().is_some_and(|p| path.starts_with(p)) {
            ctx.send_response(401, &[("content-type", "text/plain")], "denied by probe");
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_request_body(&mut self, ctx: &mut HttpContext, config: &Config, body: &[u8]) -> Action {
        if config.uppercase_request_body {
            ctx.set_request_body(&body.to_ascii_uppercase());
        }
        Action::Continue
    }

    fn on_response_headers(&mut self, ctx: &mut HttpContext, _config: &Config) -> Action {
        let local = if ctx.local_response_sent() { "true" } else { "false" };
        ctx.set_response_header("x-probe-local-reply", local);
        if ctx.has_response_body() {
            ctx.remove_response_header("content-length");
        }
        Action::Continue
    }

    fn on_response_body_chunk(
        &mut self,
        _ctx: &mut HttpContext,
        _config: &Config,
        chunk: &[u8],
        _end_of_stream: bool,
    ) -> Option<Vec<u8>> {
        Some(chunk.to_ascii_uppercase())
    }
}

/// A plugin bug, on purpose: the SDK must log it and Envoy must apply the fail policy.
#[allow(clippy::panic)]
fn panic_on_purpose(path: &str) {
    panic!("probe panics on {path}");
}

wasmplug_sdk::plugin!(Probe);
