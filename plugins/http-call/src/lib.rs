//! The Higress documentation's seed example: before a request is forwarded, GET `requestPath`
//! from a token service and copy the `tokenHeader` of its answer onto the request. A failed
//! callout (non-200 answer, timeout, refused connection, unknown cluster) answers 500.

mod config;

use std::time::Duration;

use wasmplug_sdk::prelude::*;

pub use config::{Config, ServiceSource};

/// Body of the 500 answered when the token service cannot be used.
pub const FAILURE_BODY: &str = "http call failed";

#[derive(Default)]
pub struct HttpCall;

impl HttpPlugin for HttpCall {
    type Config = Config;

    fn configure(config: &mut Config) -> Result<(), String> {
        validate(config)
    }

    fn on_request_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        let token_header = config.token_header.clone();
        let sent = HttpClient::new(cluster_for(config))
            .get(&config.request_path)
            .timeout(Duration::from_millis(config.timeout_ms))
            .send(ctx, move |ctx, result| match outcome(result, &token_header) {
                Outcome::SetHeader(value) => {
                    ctx.set_request_header(&token_header, &value);
                    ctx.resume_request();
                }
                Outcome::RemoveHeader => {
                    log::warn!("http-call: the token service answered 200 without `{token_header}`");
                    ctx.remove_request_header(&token_header);
                    ctx.resume_request();
                }
                Outcome::Fail(reason) => {
                    log::warn!("http-call: {reason}; answering 500");
                    fail(ctx);
                }
            });
        if let Err(e) = sent {
            log::warn!("http-call: {e}; answering 500");
            fail(ctx);
        }
        Action::Pause
    }
}

wasmplug_sdk::plugin!(HttpCall);

fn fail(ctx: &mut HttpContext) {
    ctx.send_response(500, &[("content-type", "text/plain; charset=utf-8")], FAILURE_BODY);
}

/// Semantic checks that the JSON Schema cannot express.
pub fn validate(config: &Config) -> Result<(), String> {
    if config.service_name.trim().is_empty() {
        return Err("serviceName: must not be empty".into());
    }
    if config.service_port == 0 {
        return Err("servicePort: must be between 1 and 65535".into());
    }
    if !config.request_path.starts_with('/') {
        return Err("requestPath: must start with `/`".into());
    }
    let header = config.token_header.as_str();
    if header.is_empty() || header.starts_with(':') || !header.bytes().all(is_header_name_byte) {
        return Err("tokenHeader: must be a valid HTTP header name".into());
    }
    if config.service_source == ServiceSource::Dns && config.domain.trim().is_empty() {
        return Err("domain: required when serviceSource is `dns`".into());
    }
    if config.timeout_ms == 0 {
        return Err("timeoutMs: must be at least 1".into());
    }
    Ok(())
}

fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The callout target described by the config.
pub fn cluster_for(config: &Config) -> Cluster {
    let service = config.service_name.clone();
    let port = config.service_port;
    match config.service_source {
        ServiceSource::K8s => Cluster::k8s(service, config.namespace.clone(), port),
        ServiceSource::Nacos => Cluster::Nacos {
            service,
            group: String::new(),
            namespace_id: config.namespace.clone(),
            port,
            version: String::new(),
            host: None,
        },
        ServiceSource::Ip => Cluster::StaticIp { service, port, host: None },
        ServiceSource::Dns => Cluster::Dns { service, port, domain: config.domain.clone() },
        ServiceSource::Fqdn => Cluster::fqdn(service, port),
    }
}

/// What to do with the request once the token service answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Set the token header to this value and forward the request.
    SetHeader(String),
    /// The service answered 200 without the header: forward without any client-sent value.
    RemoveHeader,
    /// Answer 500; the reason is logged.
    Fail(String),
}

pub fn outcome(result: wasmplug_sdk::Result<HttpResponse>, token_header: &str) -> Outcome {
    match result {
        Ok(resp) if resp.status == 200 => match resp.header(token_header) {
            Some(value) => Outcome::SetHeader(value.to_string()),
            None => Outcome::RemoveHeader,
        },
        Ok(resp) => Outcome::Fail(format!("the token service answered {}", resp.status)),
        Err(e) => Outcome::Fail(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, String> {
        let c: Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
        validate(&c).map(|_| c)
    }

    const BASE: &str = r#""serviceName":"token","servicePort":8080,"requestPath":"/t","tokenHeader":"x-token""#;

    #[test]
    fn defaults_and_required_fields() {
        let c = parse(&format!("{{{BASE}}}")).unwrap();
        assert_eq!((c.service_source, c.timeout_ms), (ServiceSource::Fqdn, 500));
        assert!(
            parse(r#"{"servicePort":80,"requestPath":"/","tokenHeader":"x"}"#).unwrap_err().contains("serviceName")
        );
        assert!(
            parse(r#"{"serviceName":"a","requestPath":"/","tokenHeader":"x"}"#).unwrap_err().contains("servicePort")
        );
        assert!(parse(&format!(r#"{{{BASE},"serviceSource":"eureka"}}"#)).is_err());
        assert!(parse(&format!(r#"{{{BASE},"extra":1}}"#)).is_err());
    }

    #[test]
    fn semantic_checks_name_the_field() {
        let bad = [
            (r#""serviceName":" ","servicePort":1,"requestPath":"/","tokenHeader":"x""#, "serviceName"),
            (r#""serviceName":"a","servicePort":0,"requestPath":"/","tokenHeader":"x""#, "servicePort"),
            (r#""serviceName":"a","servicePort":1,"requestPath":"t","tokenHeader":"x""#, "requestPath"),
            (r#""serviceName":"a","servicePort":1,"requestPath":"/","tokenHeader":":path""#, "tokenHeader"),
            (r#""serviceName":"a","servicePort":1,"requestPath":"/","tokenHeader":"a b""#, "tokenHeader"),
            (
                r#""serviceName":"a","servicePort":1,"requestPath":"/","tokenHeader":"x","serviceSource":"dns""#,
                "domain",
            ),
            (r#""serviceName":"a","servicePort":1,"requestPath":"/","tokenHeader":"x","timeoutMs":0"#, "timeoutMs"),
        ];
        for (fields, field) in bad {
            let err = parse(&format!("{{{fields}}}")).unwrap_err();
            assert!(err.starts_with(&format!("{field}:")), "{fields}: {err}");
        }
    }

    #[test]
    fn clusters_are_named_like_higress() {
        let name = |extra: &str| {
            let c = parse(&format!("{{{BASE}{extra}}}")).unwrap();
            let cluster = cluster_for(&c);
            (cluster.cluster_name(None), cluster.host_name(None))
        };
        assert_eq!(name(""), ("outbound|8080||token".into(), "token".into()));
        assert_eq!(name(r#","serviceSource":"ip""#).0, "outbound|8080||token.static");
        assert_eq!(
            name(r#","serviceSource":"k8s","namespace":"auth""#).0,
            "outbound|8080||token.auth.svc.cluster.local"
        );
        assert_eq!(
            name(r#","serviceSource":"nacos","namespace":"ns1""#).0,
            "outbound|8080||token.DEFAULT-GROUP.ns1.nacos"
        );
        assert_eq!(
            name(r#","serviceSource":"dns","domain":"token.example.com""#),
            ("outbound|8080||token.dns".into(), "token.example.com".into())
        );
    }

    #[test]
    fn outcomes() {
        let resp = |status, headers: &[(&str, &str)]| {
            Ok(HttpResponse {
                status,
                headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                body: Vec::new(),
            })
        };
        assert_eq!(outcome(resp(200, &[("X-Token", "abc")]), "x-token"), Outcome::SetHeader("abc".into()));
        assert_eq!(outcome(resp(200, &[]), "x-token"), Outcome::RemoveHeader);
        assert!(matches!(outcome(resp(503, &[("x-token", "abc")]), "x-token"), Outcome::Fail(r) if r.contains("503")));
        let err = wasmplug_sdk::Error::Callout { cluster: "c".into(), reason: "timeout".into() };
        assert!(matches!(outcome(Err(err), "x-token"), Outcome::Fail(r) if r.contains("timeout")));
    }
}
