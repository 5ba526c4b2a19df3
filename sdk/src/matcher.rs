//! Per-request selection of a rule, compatible with Higress's `_match_*_` keys.

/// What a rule can be matched against. Only the facts a rule set needs are fetched from the host.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RequestFacts<'a> {
    pub route_name: Option<&'a str>,
    pub host: Option<&'a str>,
    pub cluster_name: Option<&'a str>,
}

/// The matchers of one rule. A rule matches when every kind it lists matches
/// (any entry of a list is enough for that kind).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Matcher {
    pub routes: Vec<String>,
    pub route_prefixes: Vec<String>,
    pub domains: Vec<DomainPattern>,
    pub services: Vec<ServicePattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DomainPattern {
    Any,
    Exact(String),
    /// `*.example.com`, kept as `.example.com`.
    Suffix(String),
    /// `example.*`, kept as `example.`.
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServicePattern {
    pub fqdn: String,
    pub port: Option<u16>,
}

impl Matcher {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.route_prefixes.is_empty() && self.domains.is_empty() && self.services.is_empty()
    }

    pub fn needs_route(&self) -> bool {
        !self.routes.is_empty() || !self.route_prefixes.is_empty()
    }

    pub fn needs_host(&self) -> bool {
        !self.domains.is_empty()
    }

    pub fn needs_cluster(&self) -> bool {
        !self.services.is_empty()
    }

    pub fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        let route = facts.route_name.unwrap_or("");
        let routes_ok = (self.routes.is_empty() && self.route_prefixes.is_empty())
            || self.routes.iter().any(|r| r == route)
            || self.route_prefixes.iter().any(|p| route.starts_with(p.as_str()));
        routes_ok
            && (self.domains.is_empty() || self.matches_domain(facts.host.unwrap_or("")))
            && (self.services.is_empty() || self.matches_service(facts.cluster_name.unwrap_or("")))
    }

    fn matches_domain(&self, host: &str) -> bool {
        let host = strip_port(host).to_ascii_lowercase();
        self.domains.iter().any(|d| match d {
            DomainPattern::Any => true,
            DomainPattern::Exact(h) => *h == host,
            DomainPattern::Suffix(s) => host.ends_with(s.as_str()),
            DomainPattern::Prefix(p) => host.starts_with(p.as_str()),
        })
    }

    fn matches_service(&self, cluster_name: &str) -> bool {
        let (fqdn, port) = split_cluster_name(cluster_name);
        self.services.iter().any(|s| s.fqdn.eq_ignore_ascii_case(fqdn) && s.port.is_none_or(|p| Some(p) == port))
    }
}

impl DomainPattern {
    pub fn parse(raw: &str) -> Self {
        let raw = raw.trim().to_ascii_lowercase();
        if raw == "*" {
            DomainPattern::Any
        } else if let Some(rest) = raw.strip_prefix('*') {
            DomainPattern::Suffix(rest.to_string())
        } else if let Some(rest) = raw.strip_suffix('*') {
            DomainPattern::Prefix(rest.to_string())
        } else {
            DomainPattern::Exact(strip_port(&raw).to_string())
        }
    }
}

impl ServicePattern {
    /// `fqdn` or `fqdn:port`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        match raw.rsplit_once(':') {
            Some((fqdn, port)) if !fqdn.contains(']') || fqdn.ends_with(']') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("`{raw}`: the port after `:` must be a number from 0 to 65535"))?;
                Ok(ServicePattern { fqdn: fqdn.to_string(), port: Some(port) })
            }
            _ => Ok(ServicePattern { fqdn: raw.to_string(), port: None }),
        }
    }
}

/// `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`.
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Istio/Higress cluster names look like `outbound|80||svc.ns.svc.cluster.local`;
/// anything else is taken as a plain name without a port.
pub(crate) fn split_cluster_name(name: &str) -> (&str, Option<u16>) {
    let mut parts = name.split('|');
    match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_direction), Some(port), Some(_subset), Some(fqdn), None) => (fqdn, port.parse().ok()),
        _ => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(route: &'a str, host: &'a str, cluster: &'a str) -> RequestFacts<'a> {
        RequestFacts { route_name: Some(route), host: Some(host), cluster_name: Some(cluster) }
    }

    #[test]
    fn domain_wildcards_and_ports() {
        let m = Matcher {
            domains: vec![DomainPattern::parse("*.example.com"), DomainPattern::parse("api.*")],
            ..Default::default()
        };
        assert!(m.matches(&facts("", "foo.example.com:8080", "")));
        assert!(m.matches(&facts("", "API.internal", "")));
        assert!(!m.matches(&facts("", "example.com", "")));
        let exact = Matcher { domains: vec![DomainPattern::parse("a.test")], ..Default::default() };
        assert!(exact.matches(&facts("", "a.test:443", "")));
        assert!(!exact.matches(&facts("", "b.a.test", "")));
    }

    #[test]
    fn routes_and_prefixes() {
        let m = Matcher { routes: vec!["r1".into()], route_prefixes: vec!["ai-".into()], ..Default::default() };
        assert!(m.matches(&facts("r1", "", "")));
        assert!(m.matches(&facts("ai-chat", "", "")));
        assert!(!m.matches(&facts("r2", "", "")));
    }

    #[test]
    fn services_with_and_without_port() {
        let m = Matcher {
            services: vec![
                ServicePattern::parse("foo.default.svc.cluster.local:80").unwrap(),
                ServicePattern::parse("bar.static").unwrap(),
            ],
            ..Default::default()
        };
        assert!(m.matches(&facts("", "", "outbound|80||foo.default.svc.cluster.local")));
        assert!(!m.matches(&facts("", "", "outbound|81||foo.default.svc.cluster.local")));
        assert!(m.matches(&facts("", "", "outbound|9000||bar.static")));
        assert!(m.matches(&facts("", "", "bar.static")));
        assert!(ServicePattern::parse("x:notaport").is_err());
    }

    #[test]
    fn all_listed_kinds_must_match() {
        let m =
            Matcher { routes: vec!["r1".into()], domains: vec![DomainPattern::parse("a.test")], ..Default::default() };
        assert!(m.matches(&facts("r1", "a.test", "")));
        assert!(!m.matches(&facts("r1", "b.test", "")));
        assert!(!m.matches(&facts("r2", "a.test", "")));
    }

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("::1"), "::1");
    }
}
