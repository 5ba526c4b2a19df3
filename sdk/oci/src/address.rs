//! Which addresses the registry client may contact. A URL is checked by its host (an IP literal
//! or a name); at dial time, every address a name resolves to is checked again, so a name that
//! resolves (or rebinds) to a link-local, cloud-metadata or unspecified address is never
//! connected to, whatever the URL said.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::http::Refused;

/// Why a target is refused.
pub(crate) const FORBIDDEN: &str = "link-local, metadata and unspecified addresses are never contacted";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HostKind {
    Public,
    Loopback,
    Private,
    /// Link-local (cloud metadata lives there), metadata names, unspecified: never a target.
    Forbidden,
}

pub(crate) fn kind_of_ip(ip: IpAddr) -> HostKind {
    match ip {
        IpAddr::V4(v4) => kind_of_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => kind_of_v4(v4),
            None => kind_of_v6(v6),
        },
    }
}

fn kind_of_v4(ip: Ipv4Addr) -> HostKind {
    let o = ip.octets();
    if ip.is_loopback() {
        HostKind::Loopback
    } else if ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        HostKind::Forbidden
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        // 100.64.0.0/10 (carrier-grade NAT) holds Alibaba Cloud's metadata service.
        if ip == Ipv4Addr::new(100, 100, 100, 200) { HostKind::Forbidden } else { HostKind::Private }
    } else {
        HostKind::Public
    }
}

fn kind_of_v6(ip: Ipv6Addr) -> HostKind {
    let s = ip.segments();
    if ip.is_loopback() {
        HostKind::Loopback
    } else if ip.is_unspecified() || ip.is_multicast() || (s[0] & 0xffc0) == 0xfe80 {
        HostKind::Forbidden
    } else if (s[0] & 0xfe00) == 0xfc00 {
        // Unique local; AWS's IPv6 metadata endpoint is fd00:ec2::254.
        if s[0] == 0xfd00 && s[1] == 0x0ec2 { HostKind::Forbidden } else { HostKind::Private }
    } else {
        HostKind::Public
    }
}

pub(crate) fn kind_of(url: &Url) -> HostKind {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => kind_of_v4(ip),
        Some(url::Host::Ipv6(ip)) => kind_of_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                HostKind::Loopback
            } else if d == "metadata" || d == "metadata.google.internal" || d.ends_with(".metadata.google.internal") {
                HostKind::Forbidden
            } else {
                HostKind::Public
            }
        }
        None => HostKind::Forbidden,
    }
}

/// Looks a name up: `(host, port 0)` to its socket addresses.
type Lookup = Arc<dyn Fn(String) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// The client's DNS resolver: the system's lookup, minus forbidden addresses.
#[derive(Clone)]
pub(crate) struct GuardedResolver {
    lookup: Lookup,
}

impl GuardedResolver {
    /// Resolves with the system resolver (getaddrinfo, as reqwest does by default).
    pub(crate) fn system() -> Self {
        Self::with_lookup(Arc::new(|host: String| {
            Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
        }))
    }

    pub(crate) fn with_lookup(lookup: Lookup) -> Self {
        GuardedResolver { lookup }
    }
}

/// The addresses of `host` that may be dialed; none left is a refusal naming what it resolved to.
pub(crate) fn dialable(host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
    let (forbidden, allowed): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.into_iter().partition(|a| kind_of_ip(a.ip()) == HostKind::Forbidden);
    if allowed.is_empty() && !forbidden.is_empty() {
        let ips: Vec<String> = forbidden.iter().map(|a| a.ip().to_string()).collect();
        return Err(Refused(format!("{host} resolves to {}: {FORBIDDEN}", ips.join(", "))));
    }
    Ok(allowed)
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let lookup = (self.lookup)(host.clone());
        Box::pin(async move {
            let allowed = dialable(&host, lookup.await?)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(ips: &[&str]) -> Vec<SocketAddr> {
        ips.iter().map(|ip| SocketAddr::new(ip.parse().unwrap(), 0)).collect()
    }

    #[test]
    fn forbidden_addresses_are_dropped_and_none_left_is_refused() {
        let mixed = dialable("r.example", addrs(&["169.254.169.254", "93.184.216.34"])).unwrap();
        assert_eq!(mixed, addrs(&["93.184.216.34"]));
        for bad in
            ["169.254.169.254", "0.0.0.0", "::ffff:169.254.169.254", "fd00:ec2::254", "fe80::1", "100.100.100.200"]
        {
            let e = dialable("rebound.example", addrs(&[bad])).unwrap_err();
            assert!(e.0.contains("rebound.example resolves to") && e.0.contains(FORBIDDEN), "{bad}: {}", e.0);
        }
        assert_eq!(dialable("localhost", addrs(&["127.0.0.1"])).unwrap(), addrs(&["127.0.0.1"]));
    }

    /// Through a real reqwest client: a name that resolves to a metadata address is refused
    /// before any connection (and not retried: it maps to `HttpError::Refused`), and the same
    /// name resolving to a listening loopback address is fetched.
    #[tokio::test]
    async fn the_client_dials_only_what_the_guard_lets_through() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = |ip: &'static str| {
            let lookup: Lookup =
                Arc::new(move |_| Box::pin(async move { Ok(vec![SocketAddr::new(ip.parse().unwrap(), 0)]) }));
            reqwest::Client::builder().dns_resolver(GuardedResolver::with_lookup(lookup)).build().unwrap()
        };
        let url = format!("http://registry.test:{port}/v2/");
        let err = client("169.254.169.254").get(&url).send().await.unwrap_err();
        match crate::http::HttpError::from(err) {
            crate::http::HttpError::Refused(why) => assert!(why.contains("registry.test resolves to 169.254.169.254")),
            other => panic!("not refused: {other:?}"),
        }
        let ok = client("127.0.0.1").get(&url).send().await.unwrap();
        assert_eq!(ok.text().await.unwrap(), "ok");
    }
}
