//! The proxy-wasm contexts behind a plugin: configuration, rule selection, body handling,
//! callout completion and ticks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext as HostHttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};

use crate::config::{self, RuleSet};
use crate::context::{BodyMode, Direction, HttpContext, Phase};
use crate::host::{cluster_name, route_name};
use crate::http_response::read_http_response;
use crate::matcher::RequestFacts;
use crate::pending::Callback;
use crate::plugin::{HttpPlugin, PluginStart, Tick};

thread_local! {
    static PLUGIN_NAME: Cell<&'static str> = const { Cell::new("wasmplug") };
}

/// Entry point used by [`plugin!`](crate::plugin).
pub fn start<P: HttpPlugin>(name: &'static str) {
    PLUGIN_NAME.with(|n| n.set(name));
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(new_root::<P>);
}

fn new_root<P: HttpPlugin>(_context_id: u32) -> Box<dyn RootContext> {
    Box::new(Root::<P> { name: PLUGIN_NAME.with(Cell::get), rules: None, ticks: Vec::new() })
}

struct Root<P: HttpPlugin> {
    name: &'static str,
    rules: Option<Rc<RuleSet<P::Config>>>,
    ticks: Vec<Tick>,
}

impl<P: HttpPlugin> Context for Root<P> {}

impl<P: HttpPlugin> RootContext for Root<P> {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        if let Ok(level) = hostcalls::get_log_level() {
            proxy_wasm::set_log_level(level);
        }
        true
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size).ok().flatten().unwrap_or_default();
        let set = match config::parse::<P::Config, _>(&raw, P::configure) {
            Ok(set) => Rc::new(set),
            Err(e) => {
                log::error!("{e}; configuration refused");
                return false;
            }
        };
        self.ticks.clear();
        P::on_start(&mut PluginStart { global: set.global().map(|c| &**c), ticks: &mut self.ticks });
        if let Some(period) = self.ticks.iter().map(|t| t.period).reduce(gcd) {
            let _ = hostcalls::set_tick_period(period);
        }
        log::info!(
            "configuration accepted ({} rule(s), global config {})",
            set.rule_count(),
            if set.global().is_some() { "on" } else { "off" }
        );
        self.rules = Some(set);
        true
    }

    fn on_tick(&mut self) {
        let now =
            hostcalls::get_current_time().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
        for tick in &mut self.ticks {
            if now >= tick.next_due {
                tick.next_due = now + tick.period;
                (tick.run)();
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HostHttpContext>> {
        Some(Box::new(Stream::<P>::new(context_id, self.name, self.rules.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn gcd(a: Duration, b: Duration) -> Duration {
    let (mut a, mut b) = (a.as_millis(), b.as_millis());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    Duration::from_millis(u64::try_from(a).unwrap_or(u64::MAX))
}

struct Stream<P: HttpPlugin> {
    inner: Rc<RefCell<Inner<P>>>,
}

struct Inner<P: HttpPlugin> {
    plugin: P,
    ctx: HttpContext,
    rules: Option<Rc<RuleSet<P::Config>>>,
    config: Option<Rc<P::Config>>,
}

impl<P: HttpPlugin> Stream<P> {
    fn new(id: u32, name: &'static str, rules: Option<Rc<RuleSet<P::Config>>>) -> Self {
        let ctx = HttpContext::new(id, name, P::REQUEST_BODY, P::RESPONSE_BODY);
        let inner = Rc::new(RefCell::new(Inner { plugin: P::default(), ctx, rules, config: None }));
        #[cfg(feature = "redis")]
        {
            let sink: Rc<dyn crate::pending::RedisSink> = inner.clone();
            inner.borrow_mut().ctx.redis_sink = Some(Rc::downgrade(&sink));
        }
        Stream { inner }
    }

    fn with<R>(&self, default: R, f: impl FnOnce(&mut Inner<P>) -> R) -> R {
        match self.inner.try_borrow_mut() {
            Ok(mut inner) => f(&mut inner),
            Err(_) => default,
        }
    }
}

impl<P: HttpPlugin> Inner<P> {
    fn select_config(&mut self) -> Option<Rc<P::Config>> {
        let rules = self.rules.as_ref()?;
        self.ctx.rules_configured = rules.rule_count() > 0;
        if rules.rule_count() == 0 {
            return rules.global().cloned();
        }
        let route = rules.needs_route().then(route_name).flatten();
        let cluster = rules.needs_cluster().then(cluster_name).flatten();
        let facts = RequestFacts {
            route_name: route.as_deref(),
            host: rules.needs_host().then(|| self.ctx.host()),
            cluster_name: cluster.as_deref(),
        };
        // Debug logs say which config applies (shown by `wasmplug run --explain`); they cost
        // nothing when the host's log level is above debug.
        let Some((index, config)) = rules.select(&facts) else {
            log::debug!("no rule matches this request and there is no global config: skipped");
            return None;
        };
        match index {
            Some(i) => log::debug!("_rules_[{i}] matches this request"),
            None => log::debug!("no rule matches this request: the global config applies"),
        }
        self.ctx.matched_rule = index;
        Some(config.clone())
    }

    /// Turns a handler's answer into what the host is told.
    fn finish(&mut self, direction: Direction, action: Action) -> Action {
        if self.ctx.local_response_sent && direction == Direction::Request {
            return Action::Pause;
        }
        match action {
            Action::Pause if !self.ctx.pending.is_empty() => {
                self.ctx.paused = Some(direction);
                Action::Pause
            }
            Action::Pause if self.ctx.local_response_sent => Action::Pause,
            Action::Pause => {
                log::debug!("handler paused with no callout pending; continuing");
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn on_headers(&mut self, direction: Direction, end_of_stream: bool) -> Action {
        self.ctx.body_state(direction).present = !end_of_stream;
        let config = match direction {
            Direction::Request => {
                self.ctx.phase = Phase::RequestHeaders;
                let config = self.select_config();
                self.config = config.clone();
                config
            }
            Direction::Response => {
                self.ctx.phase = Phase::ResponseHeaders;
                self.config.clone()
            }
        };
        let Some(config) = config else {
            return Action::Continue;
        };
        let action = match direction {
            Direction::Request => self.plugin.on_request_headers(&mut self.ctx, &config),
            Direction::Response => self.plugin.on_response_headers(&mut self.ctx, &config),
        };
        self.finish(direction, action)
    }

    fn on_body(&mut self, direction: Direction, size: usize, end_of_stream: bool) -> Action {
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
            Direction::Request => Phase::RequestBody,
            Direction::Response => Phase::ResponseBody,
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
    fn on_trailers(&mut self, direction: Direction) -> Action {
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

    fn run_buffered(&mut self, direction: Direction, config: &P::Config) -> Action {
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

    /// After a callout's callback ran: resume what it asked for, or what nothing holds any more.
    fn after_callout(&mut self) {
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

    fn on_callout_done(&mut self, token: u32, num_headers: usize, body_size: usize) {
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
                done(&mut self.ctx, Err(crate::Error::Callout { cluster, reason: "unexpected HTTP answer".into() }));
            }
        }
        self.after_callout();
    }
}

#[cfg(feature = "redis")]
impl<P: HttpPlugin> crate::pending::RedisSink for RefCell<Inner<P>> {
    fn on_redis_reply(&self, token: u32, reply: Result<crate::resp::RedisReply, String>) {
        let Ok(mut inner) = self.try_borrow_mut() else {
            return;
        };
        let _ = hostcalls::set_effective_context(inner.ctx.id);
        let Some(callback) = inner.ctx.pending.take(token) else {
            return;
        };
        if let Callback::Redis { cluster, done } = callback {
            done(&mut inner.ctx, reply.map_err(|reason| crate::Error::Callout { cluster, reason }));
        }
        inner.after_callout();
    }
}

impl<P: HttpPlugin> Context for Stream<P> {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize, _num_trailers: usize) {
        self.with((), |inner| inner.on_callout_done(token_id, num_headers, body_size));
    }
}

impl<P: HttpPlugin> HostHttpContext for Stream<P> {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.with(Action::Continue, |inner| inner.on_headers(Direction::Request, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(Action::Continue, |inner| inner.on_body(Direction::Request, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.with(Action::Continue, |inner| inner.on_trailers(Direction::Request))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.with(Action::Continue, |inner| inner.on_headers(Direction::Response, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with(Action::Continue, |inner| inner.on_body(Direction::Response, body_size, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.with(Action::Continue, |inner| inner.on_trailers(Direction::Response))
    }

    fn on_log(&mut self) {
        self.with((), |inner| {
            inner.ctx.phase = Phase::Done;
            if let Some(config) = inner.config.clone() {
                inner.plugin.on_done(&mut inner.ctx, &config);
            }
        });
    }
}
