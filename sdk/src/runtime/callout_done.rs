//! Completion of a callout: running its callback, then resuming what nothing holds any more.

use proxy_wasm::hostcalls;
use proxy_wasm::types::Action;

use super::stream::Inner;
use crate::context::{BodyMode, Direction};
#[cfg(feature = "redis")]
use crate::error::Error;
use crate::http_response::read_http_response;
use crate::pending::Callback;
use crate::plugin::HttpPlugin;

impl<P: HttpPlugin> Inner<P> {
    /// After a callout's callback ran: resume what it asked for, or what nothing holds any more.
    pub(super) fn after_callout(&mut self) {
        if self.ctx.local_response_sent {
            self.ctx.paused = None;
            return;
        }
        let direction =
            self.ctx.resume_requested.take().or(if self.ctx.pending.is_empty() { self.ctx.paused } else { None });
        let Some(direction) = direction else { return };
        self.ctx.paused = None;
        let deferred = std::mem::take(&mut self.ctx.body_state(direction).deferred);
        if deferred
            && self.ctx.body_state(direction).mode == BodyMode::Buffered
            && let Some(config) = self.config.clone()
            && self.run_buffered(direction, &config) == Action::Pause
        {
            return;
        }
        let result = match direction {
            Direction::Request => hostcalls::resume_http_request(),
            Direction::Response => hostcalls::resume_http_response(),
        };
        if let Err(status) = result {
            log::warn!("resume failed (status {})", status as u32);
        }
    }

    pub(super) fn on_callout_done(&mut self, token: u32, num_headers: usize, body_size: usize) {
        let Some(callback) = self.ctx.pending.take(token) else {
            return;
        };
        match callback {
            Callback::Http { cluster, done } => {
                let result = read_http_response(&cluster, num_headers, body_size);
                done(&mut self.ctx, result);
            }
            #[cfg(feature = "redis")]
            Callback::Redis { cluster, done } => {
                done(&mut self.ctx, Err(Error::Callout { cluster, reason: "unexpected HTTP answer".into() }));
            }
        }
        self.after_callout();
    }
}
