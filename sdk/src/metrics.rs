//! Counters, gauges and histograms, exported by Envoy as `wasmcustom.<name>`.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::error::{Error, Result};
use crate::host::host_ok;

fn define(kind: MetricType, name: &str) -> Result<u32> {
    hostcalls::define_metric(kind, name).map_err(|s| Error::host("define_metric", s))
}

/// A monotonically increasing count.
#[derive(Debug, Clone, Copy)]
pub struct Counter(u32);

impl Counter {
    /// Defines (or finds) the counter `name`. Define metrics once, in `configure` or at start.
    pub fn new(name: &str) -> Result<Self> {
        define(MetricType::Counter, name).map(Counter)
    }
    pub fn increment(&self, by: u64) {
        host_ok("increment_metric", hostcalls::increment_metric(self.0, i64::try_from(by).unwrap_or(i64::MAX)));
    }
    pub fn value(&self) -> Option<u64> {
        hostcalls::get_metric(self.0).ok()
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Copy)]
pub struct Gauge(u32);

impl Gauge {
    pub fn new(name: &str) -> Result<Self> {
        define(MetricType::Gauge, name).map(Gauge)
    }
    pub fn set(&self, value: u64) {
        host_ok("record_metric", hostcalls::record_metric(self.0, value));
    }
    pub fn add(&self, delta: i64) {
        host_ok("increment_metric", hostcalls::increment_metric(self.0, delta));
    }
    pub fn value(&self) -> Option<u64> {
        hostcalls::get_metric(self.0).ok()
    }
}

/// A distribution of recorded values.
#[derive(Debug, Clone, Copy)]
pub struct Histogram(u32);

impl Histogram {
    pub fn new(name: &str) -> Result<Self> {
        define(MetricType::Histogram, name).map(Histogram)
    }
    pub fn record(&self, value: u64) {
        host_ok("record_metric", hostcalls::record_metric(self.0, value));
    }
}
