//! Higress's `custom-response`: answer requests with a fixed status, headers and body, either
//! always (at request headers) or in place of upstream responses whose status is listed in
//! `enable_on_status` (at response headers).

mod config;

use wasmplug_sdk::prelude::*;

pub use config::Config;

#[derive(Default)]
pub struct CustomResponse;

impl HttpPlugin for CustomResponse {
    type Config = Config;

    fn configure(config: &mut Config) -> Result<(), String> {
        validate_status("status_code", config.status_code)?;
        for (i, status) in config.enable_on_status.iter().enumerate() {
            if !(100..=599).contains(status) {
                return Err(format!("enable_on_status[{i}]: must be between 100 and 599"));
            }
        }
        config.resolved_headers = resolve_headers(&config.headers, &config.body)?;
        Ok(())
    }

    fn on_request_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        if !config.enable_on_status.is_empty() {
            return Action::Continue;
        }
        respond(ctx, config);
        Action::Pause
    }

    fn on_response_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        if config.enable_on_status.is_empty() {
            return Action::Continue;
        }
        let status = ctx.response_header(":status").and_then(|s| s.parse::<u16>().ok());
        if status.is_some_and(|s| config.enable_on_status.contains(&s)) {
            respond(ctx, config);
        }
        Action::Continue
    }
}

wasmplug_sdk::plugin!(CustomResponse);

fn respond(ctx: &mut HttpContext, config: &Config) {
    let headers: Vec<(&str, &str)> = config.resolved_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ctx.send_response(config.status_code, &headers, &config.body);
}

fn validate_status(field: &str, status: u16) -> Result<(), String> {
    if (200..=599).contains(&status) { Ok(()) } else { Err(format!("{field}: must be between 200 and 599")) }
}

/// Parses the `key=value` entries and adds a `content-type` when none is configured.
/// `content-length` entries are dropped: the proxy computes it from the body.
pub fn resolve_headers(entries: &[String], body: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::with_capacity(entries.len() + 1);
    for (i, entry) in entries.iter().enumerate() {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!("headers[{i}]: expected key=value"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || key.starts_with(':') || !key.bytes().all(is_header_name_byte) {
            return Err(format!("headers[{i}]: `{key}` is not a valid header name"));
        }
        if key.eq_ignore_ascii_case("content-length") {
            continue;
        }
        headers.push((key.to_ascii_lowercase(), value.to_string()));
    }
    if !headers.iter().any(|(k, _)| k == "content-type") {
        headers.push(("content-type".to_string(), default_content_type(body).to_string()));
    }
    Ok(headers)
}

fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `application/json` for a body that is a JSON object or array, else `text/plain`.
pub fn default_content_type(body: &str) -> &'static str {
    if looks_like_json(body) { "application/json; charset=utf-8" } else { "text/plain; charset=utf-8" }
}

/// A valid JSON document whose top level is an object or an array.
fn looks_like_json(body: &str) -> bool {
    let body = body.trim();
    (body.starts_with('{') || body.starts_with('[')) && serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, String> {
        let mut c: Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
        CustomResponse::configure(&mut c).map(|_| c)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults() {
        let c = parse("{}").unwrap();
        assert_eq!((c.status_code, c.body.as_str()), (200, ""));
        assert!(c.enable_on_status.is_empty());
        assert_eq!(c.resolved_headers, pairs(&[("content-type", "text/plain; charset=utf-8")]));
        assert!(parse(r#"{"statusCode":200}"#).is_err());
        assert!(parse(r#"{"resolved_headers":[]}"#).is_err());
    }

    #[test]
    fn headers_and_content_type() {
        let c = parse(r#"{"headers":["X-A = 1","b=x=y","Content-Length=9"],"body":"{\"ok\": true}"}"#).unwrap();
        assert_eq!(
            c.resolved_headers,
            pairs(&[("x-a", "1"), ("b", "x=y"), ("content-type", "application/json; charset=utf-8")])
        );
        let c = parse(r#"{"headers":["Content-Type=text/html"],"body":"{}"}"#).unwrap();
        assert_eq!(c.resolved_headers, pairs(&[("content-type", "text/html")]));
        assert_eq!(parse(r#"{"headers":["a=1","nope"]}"#).unwrap_err(), "headers[1]: expected key=value");
        assert!(parse(r#"{"headers":["=1"]}"#).unwrap_err().starts_with("headers[0]:"));
        assert!(parse(r#"{"headers":[":status=1"]}"#).unwrap_err().starts_with("headers[0]:"));
    }

    #[test]
    fn status_ranges() {
        assert!(parse(r#"{"status_code":99}"#).unwrap_err().starts_with("status_code:"));
        assert!(parse(r#"{"status_code":600}"#).unwrap_err().starts_with("status_code:"));
        assert!(parse(r#"{"status_code":70000}"#).is_err());
        assert_eq!(
            parse(r#"{"enable_on_status":[502,0]}"#).unwrap_err(),
            "enable_on_status[1]: must be between 100 and 599"
        );
    }

    #[test]
    fn json_detection() {
        for json in [r#"{"a":1}"#, " [1, 2] ", r#"{"s":"}{"}"#, r#"{"e":"\"}"}"#, "{}"] {
            assert!(looks_like_json(json), "{json}");
        }
        for text in ["hello", "", "{", "{} {}", "[1]]", "{\"a\":\"}", "123", "{]", "{\"a\":[}]"] {
            assert!(!looks_like_json(text), "{text}");
        }
    }
}
