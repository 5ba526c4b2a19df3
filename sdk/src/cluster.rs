//! Targets of HTTP and Redis callouts, named the way Higress/Istio name Envoy clusters.
//!
//! The naming needs no request; `Cluster::Route` is resolved against one in the context
//! (`Cluster::cluster_name` and `Cluster::host_name`).

/// Where a callout goes. Each kind maps to the Envoy cluster name Higress generates for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cluster {
    /// A Kubernetes service: `outbound|PORT|VERSION|NAME.NAMESPACE.svc.cluster.local`.
    K8s { service: String, namespace: String, port: u16, version: String, host: Option<String> },
    /// A Nacos service: `outbound|PORT|VERSION|NAME.GROUP.NAMESPACE_ID.nacos`.
    Nacos { service: String, group: String, namespace_id: String, port: u16, version: String, host: Option<String> },
    /// A static-IP service registered in Higress: `outbound|PORT||NAME.static`.
    StaticIp { service: String, port: u16, host: Option<String> },
    /// A DNS service registered in Higress: `outbound|PORT||NAME.dns`; `domain` is the `:authority`.
    Dns { service: String, port: u16, domain: String },
    /// A Consul service: `outbound|PORT||NAME.DATACENTER.consul`.
    Consul { service: String, datacenter: String, port: u16, host: Option<String> },
    /// Any service by its fully qualified name: `outbound|PORT||FQDN`.
    Fqdn { fqdn: String, port: u16, host: Option<String> },
    /// The cluster the current request is routed to.
    Route { host: Option<String> },
    /// An explicit Envoy cluster name.
    Target { cluster: String, host: String },
}

impl Cluster {
    /// A Kubernetes service in `namespace` (empty means `default`).
    pub fn k8s(service: impl Into<String>, namespace: impl Into<String>, port: u16) -> Self {
        Cluster::K8s { service: service.into(), namespace: namespace.into(), port, version: String::new(), host: None }
    }

    /// A service by FQDN and port.
    pub fn fqdn(fqdn: impl Into<String>, port: u16) -> Self {
        Cluster::Fqdn { fqdn: fqdn.into(), port, host: None }
    }

    /// An explicit Envoy cluster, with the `:authority` to send.
    pub fn target(cluster: impl Into<String>, host: impl Into<String>) -> Self {
        Cluster::Target { cluster: cluster.into(), host: host.into() }
    }

    /// The Envoy cluster name; `route_cluster` gives it for `Route`.
    pub(crate) fn resolve_name(&self, route_cluster: impl FnOnce() -> Option<String>) -> String {
        match self {
            Cluster::K8s { service, namespace, port, version, .. } => {
                format!("outbound|{port}|{version}|{service}.{}.svc.cluster.local", or_default(namespace))
            }
            Cluster::Nacos { service, group, namespace_id, port, version, .. } => {
                let group = if group.is_empty() { "DEFAULT-GROUP".to_string() } else { group.replace('_', "-") };
                let ns = if namespace_id.is_empty() { "public" } else { namespace_id.as_str() };
                format!("outbound|{port}|{version}|{service}.{group}.{ns}.nacos")
            }
            Cluster::StaticIp { service, port, .. } => {
                format!("outbound|{port}||{}.static", strip_suffix(service, ".static"))
            }
            Cluster::Dns { service, port, .. } => {
                format!("outbound|{port}||{}.dns", strip_suffix(service, ".dns"))
            }
            Cluster::Consul { service, datacenter, port, .. } => {
                format!("outbound|{port}||{service}.{datacenter}.consul")
            }
            Cluster::Fqdn { fqdn, port, .. } => format!("outbound|{port}||{fqdn}"),
            Cluster::Route { .. } => route_cluster().unwrap_or_default(),
            Cluster::Target { cluster, .. } => cluster.clone(),
        }
    }

    /// The `:authority` a callout to this cluster carries; `request_host` gives it for a
    /// `Route` without an explicit host.
    pub(crate) fn resolve_authority(&self, request_host: impl FnOnce() -> Option<String>) -> String {
        let explicit = |h: &Option<String>| h.as_ref().filter(|h| !h.is_empty()).cloned();
        match self {
            Cluster::K8s { service, namespace, host, .. } => {
                explicit(host).unwrap_or_else(|| format!("{service}.{}.svc.cluster.local", or_default(namespace)))
            }
            Cluster::Nacos { service, host, .. }
            | Cluster::StaticIp { service, host, .. }
            | Cluster::Consul { service, host, .. } => explicit(host).unwrap_or_else(|| service.clone()),
            Cluster::Dns { domain, .. } => domain.clone(),
            Cluster::Fqdn { fqdn, host, .. } => explicit(host).unwrap_or_else(|| fqdn.clone()),
            Cluster::Route { host } => explicit(host).unwrap_or_else(|| request_host().unwrap_or_default()),
            Cluster::Target { host, .. } => host.clone(),
        }
    }
}

fn or_default(namespace: &str) -> &str {
    if namespace.is_empty() { "default" } else { namespace }
}

fn strip_suffix<'a>(name: &'a str, suffix: &str) -> &'a str {
    name.strip_suffix(suffix).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(cluster: &Cluster) -> String {
        cluster.resolve_name(|| None)
    }

    fn authority(cluster: &Cluster) -> String {
        cluster.resolve_authority(|| None)
    }

    #[test]
    fn names_match_higress() {
        assert_eq!(name(&Cluster::k8s("foo", "bar", 8080)), "outbound|8080||foo.bar.svc.cluster.local");
        assert_eq!(authority(&Cluster::k8s("foo", "", 80)), "foo.default.svc.cluster.local");
        let nacos = Cluster::Nacos {
            service: "svc".into(),
            group: "MY_GROUP".into(),
            namespace_id: "ns1".into(),
            port: 80,
            version: "v1".into(),
            host: None,
        };
        assert_eq!(name(&nacos), "outbound|80|v1|svc.MY-GROUP.ns1.nacos");
        let s = Cluster::StaticIp { service: "auth.static".into(), port: 80, host: None };
        assert_eq!(name(&s), "outbound|80||auth.static");
        let d = Cluster::Dns { service: "api".into(), port: 443, domain: "api.example.com".into() };
        assert_eq!((name(&d), authority(&d)), ("outbound|443||api.dns".into(), "api.example.com".into()));
        let c = Cluster::Consul { service: "svc".into(), datacenter: "dc1".into(), port: 80, host: None };
        assert_eq!(name(&c), "outbound|80||svc.dc1.consul");
        assert_eq!(name(&Cluster::fqdn("token.example.com", 8080)), "outbound|8080||token.example.com");
        let t = Cluster::target("my_cluster", "h");
        assert_eq!((name(&t), authority(&t)), ("my_cluster".into(), "h".into()));
    }

    #[test]
    fn route_resolves_against_the_request() {
        let route = Cluster::Route { host: None };
        assert_eq!(route.resolve_name(|| Some("outbound|80||up".into())), "outbound|80||up");
        assert_eq!(route.resolve_authority(|| Some("example.com".into())), "example.com");
        assert_eq!((name(&route), authority(&route)), (String::new(), String::new()));
        let explicit = Cluster::Route { host: Some("api.internal".into()) };
        assert_eq!(explicit.resolve_authority(|| Some("example.com".into())), "api.internal");
    }
}
