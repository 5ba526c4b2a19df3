//! Callouts a request dispatched and not answered yet, with the callbacks that wait for them,
//! and where a stream's Redis replies go.
//!
//! Generic over the context the callbacks receive, so that this bookkeeping sits below the
//! context that holds it (as `Pending<HttpContext>`).

use crate::error::Result;
use crate::http_response::HttpResponse;
#[cfg(feature = "redis")]
use crate::resp::RedisReply;

type HttpCallback<C> = Box<dyn FnOnce(&mut C, Result<HttpResponse>)>;
#[cfg(feature = "redis")]
type RedisCallback<C> = Box<dyn FnOnce(&mut C, Result<RedisReply>)>;

pub(crate) enum Callback<C> {
    Http {
        cluster: String,
        done: HttpCallback<C>,
    },
    #[cfg(feature = "redis")]
    Redis {
        cluster: String,
        done: RedisCallback<C>,
    },
}

/// Calls dispatched by a request and not answered yet.
pub(crate) struct Pending<C> {
    calls: Vec<(u32, Callback<C>)>,
}

impl<C> Default for Pending<C> {
    fn default() -> Self {
        Pending { calls: Vec::new() }
    }
}

impl<C> Pending<C> {
    pub fn push(&mut self, token: u32, callback: Callback<C>) {
        self.calls.push((token, callback));
    }
    pub fn take(&mut self, token: u32) -> Option<Callback<C>> {
        let at = self.calls.iter().position(|(t, _)| *t == token)?;
        Some(self.calls.swap_remove(at).1)
    }
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

/// Receives the Redis replies of a stream, which the host delivers by token only;
/// implemented by the runtime.
#[cfg(feature = "redis")]
pub(crate) trait RedisSink {
    fn on_redis_reply(&self, token: u32, reply: Result<RedisReply, String>);
}
