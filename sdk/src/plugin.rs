//! The trait a plugin implements, and what it can set up when it starts.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::context::{BodyMode, HttpContext};
pub use proxy_wasm::types::Action;

/// An HTTP plugin. One value is created per request (`Default`), so per-request state is
/// simply the plugin's own fields. Every handler receives the config selected for the request:
/// the first `_rules_` entry that matches, else the global config.
///
/// Handlers return [`Action::Continue`] to let the stream go on, or [`Action::Pause`] after
/// dispatching a callout (the request waits for its answer) or after sending a local response.
/// A `Pause` with nothing to wait for is turned into `Continue`, so a request never hangs.
pub trait HttpPlugin: Default + 'static {
    /// The configuration, deserialized from the plugin's JSON configuration.
    type Config: DeserializeOwned + 'static;

    /// How the request body is handed to the plugin (changeable per request from the headers handler).
    const REQUEST_BODY: BodyMode = BodyMode::Ignore;
    /// How the response body is handed to the plugin.
    const RESPONSE_BODY: BodyMode = BodyMode::Ignore;

    /// Checks a parsed config (global or rule) and completes derived fields. An error refuses
    /// the configuration: Envoy rejects it and keeps the previous one. Start the message with
    /// the field (`"consumers[1].name: duplicate name"`) to have it reported at that field,
    /// e.g. `_rules_[0].consumers[1].name`.
    fn configure(_config: &mut Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// Runs once per (re)configuration of the plugin, after the configs were accepted.
    fn on_start(_start: &mut PluginStart<'_, Self::Config>) {}

    fn on_request_headers(&mut self, _ctx: &mut HttpContext, _config: &Self::Config) -> Action {
        Action::Continue
    }

    /// The whole request body ([`BodyMode::Buffered`]).
    fn on_request_body(&mut self, _ctx: &mut HttpContext, _config: &Self::Config, _body: &[u8]) -> Action {
        Action::Continue
    }

    /// One request body chunk ([`BodyMode::Streaming`]); return `Some` to replace the chunk.
    fn on_request_body_chunk(
        &mut self,
        _ctx: &mut HttpContext,
        _config: &Self::Config,
        _chunk: &[u8],
        _end_of_stream: bool,
    ) -> Option<Vec<u8>> {
        None
    }

    fn on_response_headers(&mut self, _ctx: &mut HttpContext, _config: &Self::Config) -> Action {
        Action::Continue
    }

    /// The whole response body ([`BodyMode::Buffered`]).
    fn on_response_body(&mut self, _ctx: &mut HttpContext, _config: &Self::Config, _body: &[u8]) -> Action {
        Action::Continue
    }

    /// One response body chunk ([`BodyMode::Streaming`]); return `Some` to replace the chunk.
    fn on_response_body_chunk(
        &mut self,
        _ctx: &mut HttpContext,
        _config: &Self::Config,
        _chunk: &[u8],
        _end_of_stream: bool,
    ) -> Option<Vec<u8>> {
        None
    }

    /// The stream is finished (Envoy's `on_log`): access logging, metrics.
    fn on_done(&mut self, _ctx: &mut HttpContext, _config: &Self::Config) {}
}

pub(crate) struct Tick {
    pub period: Duration,
    pub next_due: Duration,
    pub run: Box<dyn FnMut()>,
}

/// What a plugin can set up when it starts.
pub struct PluginStart<'a, C> {
    pub(crate) global: Option<&'a C>,
    pub(crate) ticks: &'a mut Vec<Tick>,
}

impl<C> PluginStart<'_, C> {
    /// The global config, when the configuration has one.
    pub fn global_config(&self) -> Option<&C> {
        self.global
    }

    /// Runs `run` every `period` (at the host's timer granularity, at least 1 ms).
    pub fn register_tick(&mut self, period: Duration, run: impl FnMut() + 'static) {
        let period = period.max(Duration::from_millis(1));
        self.ticks.push(Tick { period, next_due: Duration::ZERO, run: Box::new(run) });
    }
}
