//! transformer: rewrites request and response headers, request query parameters and JSON body
//! fields (remove, rename, replace, add, append, map), with Higress's `transformer` config.
//!
//! Headers and query parameters are edited in the headers phase. Body items become a list of
//! edits applied in the body phase to the buffered body, which is only read when a rule has
//! body items for that direction and the body is uncompressed JSON.

mod config;
mod headers;
mod json_body;
mod query;
mod transform;
mod validate;

use wasmplug_sdk::prelude::*;

pub use config::Config;
use headers::Edit;
use json_body::{BodyOp, Outcome};

/// Per-request state: the body edits decided in each headers phase.
#[derive(Default)]
pub struct Transformer {
    request_ops: Vec<BodyOp>,
    response_ops: Vec<BodyOp>,
}

fn lowercase(headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).collect()
}

impl HttpPlugin for Transformer {
    type Config = Config;

    const REQUEST_BODY: BodyMode = BodyMode::Buffered;
    const RESPONSE_BODY: BodyMode = BodyMode::Buffered;

    fn configure(config: &mut Config) -> Result<(), String> {
        validate::validate(config)
    }

    fn on_request_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        if config.req_rules.is_empty() {
            ctx.dont_read_request_body();
            return Action::Continue;
        }
        let before = lowercase(ctx.request_headers());
        let path = ctx.path().to_owned();
        let out = transform::headers_phase(&config.req_rules, &before, Some(&path));
        for edit in headers::diff(&before, &out.headers) {
            match edit {
                Edit::Remove(name) => ctx.remove_request_header(&name),
                Edit::Set(name, value) => ctx.set_request_header(&name, &value),
                Edit::Add(name, value) => ctx.add_request_header(&name, &value),
            };
        }
        if let Some(new_path) = out.path {
            ctx.set_request_header(":path", &new_path);
        }
        if out.body_ops.is_empty() || !ctx.has_request_body() || !transform::is_json_body(&out.headers) {
            ctx.dont_read_request_body();
        } else {
            // The body size changes: Envoy sends it chunked (or sets the new length).
            ctx.remove_request_header("content-length");
            self.request_ops = out.body_ops;
        }
        Action::Continue
    }

    fn on_request_body(&mut self, ctx: &mut HttpContext, _config: &Config, body: &[u8]) -> Action {
        match json_body::apply(body, &self.request_ops) {
            Outcome::Changed(new) => {
                ctx.set_request_body(&new);
            }
            Outcome::Unchanged => {}
            Outcome::NotJson => log::debug!("transformer: request body is not valid JSON; passed through unchanged"),
        }
        Action::Continue
    }

    fn on_response_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        if config.resp_rules.is_empty() {
            ctx.dont_read_response_body();
            return Action::Continue;
        }
        let before = lowercase(ctx.response_headers());
        let out = transform::headers_phase(&config.resp_rules, &before, None);
        for edit in headers::diff(&before, &out.headers) {
            match edit {
                Edit::Remove(name) => ctx.remove_response_header(&name),
                Edit::Set(name, value) => ctx.set_response_header(&name, &value),
                Edit::Add(name, value) => ctx.add_response_header(&name, &value),
            };
        }
        if out.body_ops.is_empty() || !ctx.has_response_body() || !transform::is_json_body(&out.headers) {
            ctx.dont_read_response_body();
        } else {
            ctx.remove_response_header("content-length");
            self.response_ops = out.body_ops;
        }
        Action::Continue
    }

    fn on_response_body(&mut self, ctx: &mut HttpContext, _config: &Config, body: &[u8]) -> Action {
        match json_body::apply(body, &self.response_ops) {
            Outcome::Changed(new) => {
                ctx.set_response_body(&new);
            }
            Outcome::Unchanged => {}
            Outcome::NotJson => log::debug!("transformer: response body is not valid JSON; passed through unchanged"),
        }
        Action::Continue
    }
}

wasmplug_sdk::plugin!(Transformer);
