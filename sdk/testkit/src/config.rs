//! The Envoy bootstrap configuration: Wasm filters, virtual hosts, routes and clusters.
//!
//! Rendered as JSON (a subset of YAML, so Envoy reads it as a `.yaml` file); building it
//! with `serde_json` keeps names such as `outbound|8080||token.example.com` and raw plugin
//! configurations safely quoted.

use std::path::Path;

use serde_json::{Value, json};
pub use wasmplug_envoy::WasmFilter;
use wasmplug_envoy::filter::HTTP_FILTER;

/// The access log line. `%FILTER_STATE(wasm.custom_log:PLAIN)%` is what a plugin writes
/// with `set_property(["wasm", "custom_log"], ...)` (Higress convention).
pub const ACCESS_LOG_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% \
     %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% \
     route=%ROUTE_NAME% cluster=%UPSTREAM_CLUSTER% authority=%REQ(:AUTHORITY)% \
     custom_log=%FILTER_STATE(wasm.custom_log:PLAIN)%\n";

/// A route: requests whose path starts with `prefix` go to `cluster`. `name` is what
/// plugins see as the `route_name` property.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub prefix: String,
    pub cluster: String,
    /// Answer from Envoy itself (status, body) instead of forwarding to `cluster`.
    pub direct_response: Option<(u16, String)>,
}

impl Route {
    pub fn new(name: impl Into<String>, prefix: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self { name: name.into(), prefix: prefix.into(), cluster: cluster.into(), direct_response: None }
    }

    /// A route that Envoy answers itself (after the HTTP filters ran).
    pub fn direct(name: impl Into<String>, prefix: impl Into<String>, status: u16, body: impl Into<String>) -> Self {
        Self { direct_response: Some((status, body.into())), ..Self::new(name, prefix, "") }
    }

    fn render(&self) -> Value {
        match &self.direct_response {
            Some((status, body)) => json!({
                "name": self.name,
                "match": { "prefix": self.prefix },
                "direct_response": { "status": status, "body": { "inline_string": body } },
            }),
            None => json!({
                "name": self.name,
                "match": { "prefix": self.prefix },
                "route": { "cluster": self.cluster },
            }),
        }
    }
}

/// A virtual host, matched on the `Host`/`:authority` header against `domains`.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

impl VirtualHost {
    pub fn new<S: Into<String>>(name: impl Into<String>, domains: impl IntoIterator<Item = S>) -> Self {
        Self { name: name.into(), domains: domains.into_iter().map(Into::into).collect(), routes: Vec::new() }
    }

    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    fn render(&self) -> Value {
        json!({
            "name": self.name,
            "domains": self.domains,
            "routes": self.routes.iter().map(Route::render).collect::<Vec<_>>(),
        })
    }
}

/// A STATIC cluster with one endpoint, `127.0.0.1:port`: HTTP/1.1, or HTTP/2 (h2c, for gRPC).
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub port: u16,
    pub http2: bool,
}

impl Cluster {
    pub fn new(name: impl Into<String>, port: u16) -> Self {
        Self { name: name.into(), port, http2: false }
    }

    fn render(&self) -> Value {
        let mut cluster = json!({
            "name": self.name,
            "type": "STATIC",
            "connect_timeout": "2s",
            "load_assignment": {
                "cluster_name": self.name,
                "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                    "socket_address": { "address": "127.0.0.1", "port_value": self.port },
                } } }] }],
            },
        });
        if self.http2 {
            cluster["typed_extension_protocol_options"] = json!({
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": { "http2_protocol_options": {} },
                }
            });
        }
        cluster
    }
}

/// The whole Envoy setup under test: one HTTP listener on 127.0.0.1 (port chosen by the
/// OS), the Wasm filters in order, then the router.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    pub filters: Vec<WasmFilter>,
    pub virtual_hosts: Vec<VirtualHost>,
    pub clusters: Vec<Cluster>,
    /// Envoy's `-l` level (default `info`).
    pub log_level: String,
    /// Envoy's `--component-log-level`, e.g. `wasm:debug`.
    pub component_log_level: Option<String>,
    /// The HTTP listener's port; 0 (the default) lets the OS choose.
    pub listen_port: u16,
    /// Write an access log (default true).
    pub access_log: bool,
    /// Pin Envoy to these CPUs (`taskset -c`), e.g. `"0"` for benchmarks.
    pub cpu_list: Option<String>,
}

impl Default for EnvoyConfig {
    fn default() -> Self {
        Self {
            filters: Vec::new(),
            virtual_hosts: Vec::new(),
            clusters: Vec::new(),
            log_level: "info".to_owned(),
            component_log_level: None,
            listen_port: 0,
            access_log: true,
            cpu_list: None,
        }
    }
}

impl EnvoyConfig {
    /// An empty configuration (no filters, hosts or clusters).
    pub fn new() -> Self {
        Self::default()
    }

    /// The common case: virtual host `default` (all domains), route `default` (prefix `/`)
    /// to cluster `upstream` at `127.0.0.1:upstream_port`.
    pub fn proxy_to(upstream_port: u16) -> Self {
        Self::new()
            .virtual_host(VirtualHost::new("default", ["*"]).route(Route::new("default", "/", "upstream")))
            .cluster("upstream", upstream_port)
    }

    /// Appends a Wasm filter (filters run in the order added).
    pub fn filter(mut self, filter: WasmFilter) -> Self {
        self.filters.push(filter);
        self
    }

    pub fn virtual_host(mut self, virtual_host: VirtualHost) -> Self {
        self.virtual_hosts.push(virtual_host);
        self
    }

    /// Adds cluster `name` → `127.0.0.1:port`.
    pub fn cluster(mut self, name: impl Into<String>, port: u16) -> Self {
        self.clusters.push(Cluster::new(name, port));
        self
    }

    /// A cluster served over HTTP/2 cleartext, as gRPC services are.
    pub fn grpc_cluster(mut self, name: impl Into<String>, port: u16) -> Self {
        self.clusters.push(Cluster { http2: true, ..Cluster::new(name, port) });
        self
    }

    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = level.into();
        self
    }

    pub fn component_log_level(mut self, levels: impl Into<String>) -> Self {
        self.component_log_level = Some(levels.into());
        self
    }

    pub fn listen_port(mut self, port: u16) -> Self {
        self.listen_port = port;
        self
    }

    pub fn access_log(mut self, enabled: bool) -> Self {
        self.access_log = enabled;
        self
    }

    pub fn cpu_list(mut self, cpus: impl Into<String>) -> Self {
        self.cpu_list = Some(cpus.into());
        self
    }

    /// The bootstrap configuration, with the access log written to `access_log`.
    pub fn render(&self, access_log: &Path) -> String {
        let mut http_filters: Vec<Value> = self.filters.iter().map(|f| f.http_filter(HTTP_FILTER)).collect();
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            },
        }));
        let hcm = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "ingress_http",
            "codec_type": "AUTO",
            "access_log": if !self.access_log { json!([]) } else { json!([{
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": access_log.to_string_lossy(),
                    "log_format": { "text_format_source": { "inline_string": ACCESS_LOG_FORMAT } },
                },
            }]) },
            "route_config": {
                "name": "local_route",
                "virtual_hosts": self.virtual_hosts.iter().map(VirtualHost::render).collect::<Vec<_>>(),
            },
            "http_filters": http_filters,
        });
        let bootstrap = json!({
            "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
            "static_resources": {
                "listeners": [{
                    "name": "http",
                    "address": { "socket_address": { "address": "127.0.0.1", "port_value": self.listen_port } },
                    "filter_chains": [{ "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": hcm,
                    }] }],
                }],
                "clusters": self.clusters.iter().map(Cluster::render).collect::<Vec<_>>(),
            },
        });
        format!("{bootstrap:#}\n")
    }
}
