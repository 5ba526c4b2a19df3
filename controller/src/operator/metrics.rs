//! Prometheus metrics. Label values are bounded: results and condition reasons, never names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `xds` or `modules`.
    pub server: &'static str,
    /// `handshake`, `node_id` or `module`.
    pub reason: &'static str,
}

/// The controller's metrics, registered once.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    /// Reconciles by result: `ready`, `refused` (status says why) or `error` (retried).
    pub reconciles: Family<ResultLabel, Counter>,
    /// Refusals and errors by reason (the condition reason, or `ApiError`).
    pub errors: Family<ReasonLabel, Counter>,
    pub duration: Histogram,
    /// Image resolves that contacted the registry, by result.
    pub pulls: Family<ResultLabel, Counter>,
    /// Image resolves answered from the module cache.
    pub cache_hits: Counter,
    /// Plugins whose rendering is in place.
    pub serving: Gauge,
    /// Gateway connections and requests refused by the xDS and module servers.
    pub gateway_refusals: Family<RefusalLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wasmplug");
        let reconciles = Family::<ResultLabel, Counter>::default();
        let errors = Family::<ReasonLabel, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let pulls = Family::<ResultLabel, Counter>::default();
        let cache_hits = Counter::default();
        let serving = Gauge::default();
        let gateway_refusals = Family::<RefusalLabels, Counter>::default();
        registry.register("reconciles", "WasmPlugin reconciles by result", reconciles.clone());
        registry.register("reconcile_errors", "Refused or failed reconciles by reason", errors.clone());
        registry.register("reconcile_duration_seconds", "Time per reconcile", duration.clone());
        registry.register("image_pulls", "Image resolves that contacted the registry", pulls.clone());
        registry.register("module_cache_hits", "Image resolves answered from the module cache", cache_hits.clone());
        registry.register("serving_plugins", "WasmPlugins whose rendering is in place", serving.clone());
        registry.register(
            "gateway_refusals",
            "Gateway connections and requests refused by the xDS and module servers, by reason",
            gateway_refusals.clone(),
        );
        Metrics { registry, reconciles, errors, duration, pulls, cache_hits, serving, gateway_refusals }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn gateway_refused(&self, server: &'static str, reason: &'static str) {
        self.gateway_refusals.get_or_create(&RefusalLabels { server, reason }).inc();
    }

    pub fn error(&self, reason: &str) {
        self.errors.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }
}
