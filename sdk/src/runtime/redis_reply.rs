//! Redis replies (`redis` feature): the host delivers them by token, through the sink the
//! stream registered with the Redis client.

use std::cell::RefCell;

use proxy_wasm::hostcalls;

use super::stream::Inner;
use crate::error::Error;
use crate::pending::{Callback, RedisSink};
use crate::plugin::HttpPlugin;
use crate::resp::RedisReply;

impl<P: HttpPlugin> RedisSink for RefCell<Inner<P>> {
    fn on_redis_reply(&self, token: u32, reply: Result<RedisReply, String>) {
        let Ok(mut inner) = self.try_borrow_mut() else {
            return;
        };
        let _ = hostcalls::set_effective_context(inner.ctx.id);
        let Some(callback) = inner.ctx.pending.take(token) else {
            return;
        };
        if let Callback::Redis { cluster, done } = callback {
            done(&mut inner.ctx, reply.map_err(|reason| Error::Callout { cluster, reason }));
        }
        inner.after_callout();
    }
}
