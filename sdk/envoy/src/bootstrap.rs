//! The Envoy bootstrap that connects a gateway to the xDS server: node identity and labels,
//! ADS over gRPC, the listener over LDS, static clusters for the xDS server, the module server
//! and (optionally) one upstream. Pure function, no I/O: the CLI prints it as YAML.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

/// Static cluster of the xDS server (ADS over gRPC, HTTP/2).
pub const XDS_CLUSTER: &str = "wasmplug-xds";
/// Static cluster Envoy fetches modules through.
pub const MODULES_CLUSTER: &str = "wasmplug-modules";
/// Static cluster of `--upstream`; the served listener routes everything to it.
pub const UPSTREAM_CLUSTER: &str = "upstream";
/// `node.cluster` of every gateway.
pub const NODE_CLUSTER: &str = "wasmplug-gateway";
/// Node metadata key holding the workload labels (a Struct of strings, as Istio does).
pub const LABELS_KEY: &str = "LABELS";
/// Node metadata key holding the address the served listener binds (`host:port`).
pub const LISTENER_KEY: &str = "WASMPLUG_LISTENER";

/// The files of a mounted Kubernetes TLS Secret (cert-manager writes all three): the
/// certificate chain, its key, and the CA that the other side's certificate must chain to.
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";
pub const CA_FILE: &str = "ca.crt";

/// What [`envoy_bootstrap`] renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// The xDS server, `host:port` (an IP gives a STATIC cluster, a name a STRICT_DNS one).
    pub xds: String,
    /// `node.id`.
    pub node: String,
    /// `node.metadata.LABELS`: what the plugins' `match_labels` select on.
    pub labels: BTreeMap<String, String>,
    /// `http://host[:port]` or `https://host[:port]`: the upstream everything is routed to.
    pub upstream: Option<String>,
    /// The listener's bind address; `None`: 127.0.0.1 with an upstream, else 0.0.0.0.
    pub listen_address: Option<String>,
    /// The listener's port (0: any free port).
    pub listen_port: u16,
    /// The admin port, always on 127.0.0.1 (0: any free port).
    pub admin_port: u16,
    /// The module server, `host:port`.
    pub modules: String,
    /// Mutual TLS to the xDS and module servers; `None`: plaintext (only for a controller
    /// started with `--insecure-plaintext`).
    pub tls: Option<GatewayTls>,
}

/// The gateway's side of mutual TLS: files on the gateway (a Kubernetes TLS Secret mounted as a
/// directory has them as `tls.crt`, `tls.key` and `ca.crt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayTls {
    /// The gateway's certificate chain (PEM); one of its names is the node id.
    pub cert_chain: String,
    /// The gateway's private key (PEM).
    pub private_key: String,
    /// The CA the controller's certificate must chain to (PEM).
    pub ca: String,
    /// The name the controller's certificate must carry; `None`: the host of each server's
    /// address.
    pub server_name: Option<String>,
}

impl GatewayTls {
    /// The files of a mounted Kubernetes TLS Secret in `dir`.
    pub fn from_dir(dir: &str) -> GatewayTls {
        let dir = dir.trim_end_matches('/');
        GatewayTls {
            cert_chain: format!("{dir}/{CERT_FILE}"),
            private_key: format!("{dir}/{KEY_FILE}"),
            ca: format!("{dir}/{CA_FILE}"),
            server_name: None,
        }
    }

    /// The `transport_socket` of a cluster to `host`, speaking `alpn`.
    fn transport_socket(&self, host: &str, alpn: &str) -> Value {
        let name = self.server_name.as_deref().unwrap_or(host);
        let san_type = if is_ip(name) { "IP_ADDRESS" } else { "DNS" };
        let mut tls = json!({
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "alpn_protocols": [alpn],
                "tls_certificates": [{
                    "certificate_chain": { "filename": self.cert_chain },
                    "private_key": { "filename": self.private_key },
                }],
                "validation_context": {
                    "trusted_ca": { "filename": self.ca },
                    "match_typed_subject_alt_names": [{ "san_type": san_type, "matcher": { "exact": name } }],
                },
            },
        });
        if !is_ip(name) {
            tls["sni"] = json!(name);
        }
        json!({ "name": "envoy.transport_sockets.tls", "typed_config": tls })
    }
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            xds: "wasmplug-controller.wasmplug-system.svc:18000".into(),
            node: "gateway".into(),
            labels: BTreeMap::new(),
            upstream: None,
            listen_address: None,
            listen_port: 10000,
            admin_port: 9901,
            modules: "wasmplug-controller.wasmplug-system.svc:8081".into(),
            tls: None,
        }
    }
}

/// A `host:port` or URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapError(pub String);

impl fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BootstrapError {}

/// Splits `host:port` (`[v6]:port` too).
pub fn split_host_port(s: &str) -> Result<(String, u16), BootstrapError> {
    let bad = || BootstrapError(format!("`{s}` is not host:port"));
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// An upstream URL: (host, port, tls).
fn parse_upstream(url: &str) -> Result<(String, u16, bool), BootstrapError> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(BootstrapError(format!("upstream `{url}`: expected http:// or https://")));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(BootstrapError(format!("upstream `{url}`: expected scheme://host[:port]")));
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']').ok_or_else(|| BootstrapError(format!("upstream `{url}`: bad host")))?;
        match rest.strip_prefix(':') {
            Some(p) => {
                (host.to_string(), p.parse().map_err(|_| BootstrapError(format!("upstream `{url}`: bad port")))?)
            }
            None => (host.to_string(), default_port),
        }
    } else if authority.contains(':') {
        split_host_port(authority)?
    } else {
        (authority.to_string(), default_port)
    };
    Ok((host, port, tls))
}

fn is_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
}

/// A static cluster with one endpoint.
fn cluster(name: &str, host: &str, port: u16, http2: bool) -> Value {
    let mut c = json!({
        "name": name,
        "type": if is_ip(host) { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": { "socket_address": {
                "address": host, "port_value": port,
            }}}}]}],
        },
    });
    if http2 {
        c["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            }
        });
    }
    c
}

/// The bootstrap for one gateway (JSON; YAML is a superset).
pub fn envoy_bootstrap(opts: &BootstrapOptions) -> Result<Value, BootstrapError> {
    let (xds_host, xds_port) = split_host_port(&opts.xds)?;
    let (modules_host, modules_port) = split_host_port(&opts.modules)?;
    if opts.node.is_empty() {
        return Err(BootstrapError("the node name must not be empty".into()));
    }
    let mut clusters = vec![
        cluster(XDS_CLUSTER, &xds_host, xds_port, true),
        cluster(MODULES_CLUSTER, &modules_host, modules_port, false),
    ];
    if let Some(tls) = &opts.tls {
        clusters[0]["transport_socket"] = tls.transport_socket(&xds_host, "h2");
        clusters[1]["transport_socket"] = tls.transport_socket(&modules_host, "http/1.1");
    }
    if let Some(url) = &opts.upstream {
        let (host, port, tls) = parse_upstream(url)?;
        let mut c = cluster(UPSTREAM_CLUSTER, &host, port, false);
        if tls {
            c["transport_socket"] = json!({
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "sni": host,
                },
            });
        }
        clusters.push(c);
    }
    let listen_host = opts
        .listen_address
        .clone()
        .unwrap_or_else(|| if opts.upstream.is_some() { "127.0.0.1".into() } else { "0.0.0.0".into() });
    let listener = if listen_host.contains(':') {
        format!("[{listen_host}]:{}", opts.listen_port)
    } else {
        format!("{listen_host}:{}", opts.listen_port)
    };
    Ok(json!({
        "node": {
            "id": opts.node,
            "cluster": NODE_CLUSTER,
            "metadata": { LABELS_KEY: opts.labels, LISTENER_KEY: listener },
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{ "envoy_grpc": { "cluster_name": XDS_CLUSTER } }],
                "set_node_on_first_message_only": true,
            },
            "lds_config": { "ads": {}, "resource_api_version": "V3" },
        },
        "static_resources": { "clusters": clusters },
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": opts.admin_port } } },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_clusters_node_and_listener() {
        let opts = BootstrapOptions {
            xds: "127.0.0.1:18000".into(),
            node: "gw-1".into(),
            labels: [("app".to_string(), "edge".to_string())].into(),
            upstream: Some("http://localhost:8080/x".into()),
            modules: "127.0.0.1:8081".into(),
            ..BootstrapOptions::default()
        };
        let b = envoy_bootstrap(&opts).unwrap();
        assert_eq!(b["node"]["id"], "gw-1");
        assert_eq!(b["node"]["metadata"]["LABELS"]["app"], "edge");
        assert_eq!(b["node"]["metadata"]["WASMPLUG_LISTENER"], "127.0.0.1:10000");
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        let names: Vec<_> = clusters.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["wasmplug-xds", "wasmplug-modules", "upstream"]);
        assert_eq!(clusters[0]["type"], "STATIC");
        assert_eq!(clusters[2]["type"], "STRICT_DNS");
        assert_eq!(
            clusters[2]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                ["port_value"],
            8080
        );
        assert_eq!(b["admin"]["address"]["socket_address"]["address"], "127.0.0.1");
    }

    #[test]
    fn parses_upstreams() {
        assert_eq!(parse_upstream("http://a").unwrap(), ("a".into(), 80, false));
        assert_eq!(parse_upstream("https://a:8443/p").unwrap(), ("a".into(), 8443, true));
        assert_eq!(parse_upstream("http://[::1]:9").unwrap(), ("::1".into(), 9, false));
        assert_eq!(parse_upstream("http://[::1]").unwrap(), ("::1".into(), 80, false));
        assert!(parse_upstream("ftp://a").is_err());
        assert!(parse_upstream("http://").is_err());
        assert!(split_host_port("nope").is_err());
    }

    #[test]
    fn listens_everywhere_without_upstream() {
        let b = envoy_bootstrap(&BootstrapOptions::default()).unwrap();
        assert_eq!(b["node"]["metadata"]["WASMPLUG_LISTENER"], "0.0.0.0:10000");
        assert_eq!(b["static_resources"]["clusters"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn mutual_tls_to_both_servers() {
        let opts = BootstrapOptions {
            xds: "wasmplug-controller.wasmplug-system.svc:18000".into(),
            modules: "10.0.0.7:8081".into(),
            tls: Some(GatewayTls::from_dir("/etc/wasmplug/tls/")),
            ..BootstrapOptions::default()
        };
        let b = envoy_bootstrap(&opts).unwrap();
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        let xds = &clusters[0]["transport_socket"]["typed_config"];
        assert_eq!(xds["sni"], "wasmplug-controller.wasmplug-system.svc");
        let common = &xds["common_tls_context"];
        assert_eq!(common["alpn_protocols"][0], "h2");
        assert_eq!(common["tls_certificates"][0]["certificate_chain"]["filename"], "/etc/wasmplug/tls/tls.crt");
        assert_eq!(common["tls_certificates"][0]["private_key"]["filename"], "/etc/wasmplug/tls/tls.key");
        assert_eq!(common["validation_context"]["trusted_ca"]["filename"], "/etc/wasmplug/tls/ca.crt");
        let san = &common["validation_context"]["match_typed_subject_alt_names"][0];
        assert_eq!(
            (san["san_type"].as_str(), san["matcher"]["exact"].as_str()),
            (Some("DNS"), Some("wasmplug-controller.wasmplug-system.svc"))
        );
        let modules = &clusters[1]["transport_socket"]["typed_config"];
        assert!(modules.get("sni").is_none(), "no SNI for an IP address");
        assert_eq!(modules["common_tls_context"]["alpn_protocols"][0], "http/1.1");
        assert_eq!(
            modules["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["san_type"],
            "IP_ADDRESS"
        );
    }
}
