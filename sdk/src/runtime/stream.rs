//! The HTTP context of one stream: config selection, the headers handlers and the host's
//! callbacks.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext as HostHttpContext};
use proxy_wasm::types::Action;

use crate::config::RuleSet;
use crate::context::{Direction, HttpContext, StreamPhase};
use crate::host::{cluster_name, route_name};
use crate::matcher::RequestFacts;
use crate::plugin::HttpPlugin;

/// The host's HTTP context of one stream. Its state is shared (with the Redis reply sink), and
/// a callback that finds it borrowed does nothing.
pub(super) struct Stream<P: HttpPlugin> {
    inner: Rc<RefCell<Inner<P>>>,
}

/// The state of one stream: the plugin value, its context and the config selected for it.
pub(super) struct Inner<P: HttpPlugin> {
    pub(super) plugin: P,
    pub(super) ctx: HttpContext,
    rules: Option<Rc<RuleSet<P::Config>>>,
    pub(super) config: Option<Rc<P::Config>>,
}

impl<P: HttpPlugin> Stream<P> {
    pub(super) fn new(id: u32, name: &'static str, rules: Option<Rc<RuleSet<P::Config>>>) -> Self {
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
    pub(super) fn finish(&mut self, direction: Direction, action: Action) -> Action {
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
                self.ctx.phase = StreamPhase::RequestHeaders;
                let config = self.select_config();
                self.config = config.clone();
                config
            }
            Direction::Response => {
                self.ctx.phase = StreamPhase::ResponseHeaders;
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
            inner.ctx.phase = StreamPhase::Done;
            if let Some(config) = inner.config.clone() {
                inner.plugin.on_done(&mut inner.ctx, &config);
            }
        });
    }
}
