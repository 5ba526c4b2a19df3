//! Handing bodies to the plugin: ignored, buffered (with a size limit) or streamed, and held
//! while a callout is pending.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Action;

use super::stream::Inner;
use crate::context::{BodyMode, Direction, StreamPhase};
use crate::plugin::HttpPlugin;

impl<P: HttpPlugin> Inner<P> {
    pub(super) fn on_body(&mut self, direction: Direction, size: usize, end_of_stream: bool) -> Action {
        // The common case: nobody reads this body and nothing holds the stream.
        if self.ctx.body_state(direction).mode == BodyMode::Ignore
            && self.ctx.paused.is_none()
            && !self.ctx.local_response_sent
        {
            return Action::Continue;
        }
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        self.ctx.phase = match direction {
            Direction::Request => StreamPhase::RequestBody,
            Direction::Response => StreamPhase::ResponseBody,
        };
        if self.ctx.local_response_sent {
            return if direction == Direction::Request { Action::Pause } else { Action::Continue };
        }
        let paused = self.ctx.paused == Some(direction);
        let state = self.ctx.body_state(direction);
        state.size = size;
        if paused {
            state.deferred |= end_of_stream;
            return Action::Pause;
        }
        match state.mode {
            BodyMode::Ignore => Action::Continue,
            BodyMode::Buffered => {
                if let Some(limit) = state.limit.filter(|limit| size > *limit) {
                    return self.refuse_oversized(direction, limit);
                }
                if !end_of_stream {
                    return Action::Pause;
                }
                self.run_buffered(direction, &config)
            }
            BodyMode::Streaming => {
                let chunk = hostcalls::get_buffer(direction.body(), 0, size).ok().flatten().unwrap_or_default();
                let replaced = match direction {
                    Direction::Request => {
                        self.plugin.on_request_body_chunk(&mut self.ctx, &config, &chunk, end_of_stream)
                    }
                    Direction::Response => {
                        self.plugin.on_response_body_chunk(&mut self.ctx, &config, &chunk, end_of_stream)
                    }
                };
                if let Some(new) = replaced {
                    let _ = hostcalls::set_buffer(direction.body(), 0, size, &new);
                }
                Action::Continue
            }
        }
    }

    /// Trailers end a body that had no end-of-stream data frame.
    pub(super) fn on_trailers(&mut self, direction: Direction) -> Action {
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        if self.ctx.paused == Some(direction) {
            self.ctx.body_state(direction).deferred = true;
            return Action::Pause;
        }
        let state = self.ctx.body_state(direction);
        if state.mode == BodyMode::Buffered && state.present && !state.handled && !self.ctx.local_response_sent {
            return self.run_buffered(direction, &config);
        }
        Action::Continue
    }

    pub(super) fn run_buffered(&mut self, direction: Direction, config: &P::Config) -> Action {
        let state = self.ctx.body_state(direction);
        state.handled = true;
        let body = hostcalls::get_buffer(direction.body(), 0, state.size).ok().flatten().unwrap_or_default();
        let action = match direction {
            Direction::Request => self.plugin.on_request_body(&mut self.ctx, config, &body),
            Direction::Response => self.plugin.on_response_body(&mut self.ctx, config, &body),
        };
        self.finish(direction, action)
    }

    fn refuse_oversized(&mut self, direction: Direction, limit: usize) -> Action {
        let (status, text) = match direction {
            Direction::Request => (413, "Payload Too Large"),
            Direction::Response => (500, "Internal Server Error"),
        };
        log::warn!(
            "{} body exceeds the {limit}-byte buffer limit; answering {status}",
            if direction == Direction::Request { "request" } else { "response" },
        );
        self.ctx.send_response(status, &[("content-type", "text/plain")], text);
        Action::Pause
    }
}
