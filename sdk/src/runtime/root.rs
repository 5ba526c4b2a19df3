//! The root context: configuration, plugin start and ticks.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext as HostHttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::PLUGIN_NAME;
use super::stream::Stream;
use crate::config::{self, RuleSet};
use crate::plugin::{HttpPlugin, PluginStart, Tick};

pub(super) fn new_root<P: HttpPlugin>(_context_id: u32) -> Box<dyn RootContext> {
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
