//! A Redis client over Higress's host functions (`proxy_redis_init`, `proxy_dispatch_redis_call`,
//! and the `proxy_on_redis_call_response` callback). Enabled by the `redis` feature.
//!
//! Upstream Envoy does not provide these functions: a module that uses this client fails to load
//! there with Envoy naming the missing import `env.proxy_redis_init`. Higress's gateway and the
//! wasmplug local host provide them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Weak;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::context::HttpContext;
use crate::error::{Error, Result};
use crate::pending::{Callback, RedisSink};
pub use crate::resp::RedisReply;
use crate::resp::{decode_reply, encode_command};

/// Buffer type under which the host keeps a Redis reply.
const REDIS_CALL_RESPONSE_BUFFER: u32 = 9;

mod abi {
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        pub fn proxy_redis_init(
            cluster_ptr: *const u8,
            cluster_len: usize,
            user_ptr: *const u8,
            user_len: usize,
            password_ptr: *const u8,
            password_len: usize,
            timeout_ms: u32,
        ) -> u32;
        pub fn proxy_dispatch_redis_call(
            cluster_ptr: *const u8,
            cluster_len: usize,
            query_ptr: *const u8,
            query_len: usize,
            token: *mut u32,
        ) -> u32;
        pub fn proxy_get_buffer_bytes(
            buffer_type: u32,
            start: usize,
            max_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
    }
}

thread_local! {
    static ROUTES: RefCell<HashMap<u32, Weak<dyn RedisSink>>> = RefCell::new(HashMap::new());
}

/// A Redis client for one cluster (for example `Cluster::fqdn("redis.default.svc.cluster.local", 6379)`).
#[derive(Debug, Clone)]
pub struct RedisClient {
    cluster: String,
}

impl RedisClient {
    pub fn new(cluster: &Cluster) -> Self {
        RedisClient { cluster: cluster.cluster_name(None) }
    }

    /// Opens the connection pool. Call it once per plugin start (in `HttpPlugin::configure`).
    pub fn init(&self, username: &str, password: &str, timeout: Duration) -> Result<()> {
        let timeout = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        // SAFETY: every pointer/length pair comes from a live slice.
        let status = unsafe {
            abi::proxy_redis_init(
                self.cluster.as_ptr(),
                self.cluster.len(),
                username.as_ptr(),
                username.len(),
                password.as_ptr(),
                password.len(),
                timeout,
            )
        };
        match status {
            0 => Ok(()),
            s => Err(Error::Callout {
                cluster: self.cluster.clone(),
                reason: format!("redis init refused (status {s})"),
            }),
        }
    }

    /// Sends any command, e.g. `["INCRBY", "k", "2"]`. The callback receives the reply;
    /// Redis errors arrive as `Ok(RedisReply::Error)`.
    pub fn command<A: AsRef<[u8]>>(
        &self,
        ctx: &mut HttpContext,
        args: &[A],
        on_reply: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        let Some(sink) = ctx.redis_sink.clone() else {
            return Err(Error::Unsupported("Redis calls outside an HTTP stream"));
        };
        let query = encode_command(args);
        let mut token = 0u32;
        // SAFETY: pointers come from live slices; `token` is a valid out-pointer.
        let status = unsafe {
            abi::proxy_dispatch_redis_call(
                self.cluster.as_ptr(),
                self.cluster.len(),
                query.as_ptr(),
                query.len(),
                &mut token,
            )
        };
        if status != 0 {
            return Err(Error::Callout {
                cluster: self.cluster.clone(),
                reason: format!("redis dispatch refused (status {status})"),
            });
        }
        ROUTES.with(|r| r.borrow_mut().insert(token, sink));
        ctx.pending.push(token, Callback::Redis { cluster: self.cluster.clone(), done: Box::new(on_reply) });
        Ok(())
    }

    pub fn get(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["GET", key], cb)
    }
    pub fn set(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        value: &str,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["SET", key, value], cb)
    }
    pub fn set_ex(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        value: &str,
        seconds: u64,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["SET", key, value, "EX", &seconds.to_string()], cb)
    }
    pub fn incr_by(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        by: i64,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["INCRBY", key, &by.to_string()], cb)
    }
    pub fn expire(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        seconds: u64,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["EXPIRE", key, &seconds.to_string()], cb)
    }
    pub fn del(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["DEL", key], cb)
    }
    pub fn hget(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        field: &str,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["HGET", key, field], cb)
    }
    pub fn hset(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        field: &str,
        value: &str,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["HSET", key, field, value], cb)
    }
    pub fn lpush(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        value: &str,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["LPUSH", key, value], cb)
    }
    pub fn sadd(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        member: &str,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["SADD", key, member], cb)
    }
    pub fn zadd(
        &self,
        ctx: &mut HttpContext,
        key: &str,
        score: f64,
        member: &str,
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        self.command(ctx, &["ZADD", key, &score.to_string(), member], cb)
    }
    /// `EVAL script numkeys keys... args...`
    pub fn eval(
        &self,
        ctx: &mut HttpContext,
        script: &str,
        keys: &[&str],
        args: &[&str],
        cb: impl FnOnce(&mut HttpContext, Result<RedisReply>) + 'static,
    ) -> Result<()> {
        let numkeys = keys.len().to_string();
        let mut all: Vec<&str> = vec!["EVAL", script, &numkeys];
        all.extend_from_slice(keys);
        all.extend_from_slice(args);
        self.command(ctx, &all, cb)
    }
}

fn read_reply(size: usize) -> Result<RedisReply, String> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: out-pointers are valid; on success the host hands over a buffer it allocated
    // through `proxy_on_memory_allocate`, which we take ownership of.
    let status = unsafe { abi::proxy_get_buffer_bytes(REDIS_CALL_RESPONSE_BUFFER, 0, size, &mut data, &mut len) };
    if status != 0 || data.is_null() {
        return Err(format!("cannot read the reply (status {status})"));
    }
    // SAFETY: see above; the allocation is `len` bytes long.
    let bytes = unsafe { Vec::from_raw_parts(data, len, len) };
    decode_reply(&bytes)
}

/// Called by the host when a Redis reply (or a failure) arrives.
#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_redis_call_response(_plugin_context_id: u32, token: u32, status: u32, response_size: usize) {
    let sink = ROUTES.with(|r| r.borrow_mut().remove(&token)).and_then(|w| w.upgrade());
    let Some(sink) = sink else {
        log::debug!("redis reply for unknown or finished stream (token {token})");
        return;
    };
    let reply =
        if status == 0 { read_reply(response_size) } else { Err(format!("redis call failed (status {status})")) };
    sink.on_redis_reply(token, reply);
}
