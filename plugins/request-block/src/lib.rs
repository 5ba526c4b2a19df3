//! Higress's `request-block`: refuse requests whose path, headers or body contain configured
//! strings (or whose path matches configured regular expressions).
//!
//! Regexes are compiled once per worker: `configure` compiles (and so validates) every pattern
//! into a pending cache, `on_start` makes it the active cache when the configuration is accepted,
//! and requests look their patterns up there (compiling on a miss, which does not happen with
//! the current SDK). The config itself stays plain data, as its schema is generated from it.

mod config;

use regex_lite::{Regex, RegexBuilder};
use wasmplug_sdk::prelude::*;

pub use config::Config;

#[derive(Default)]
pub struct RequestBlock;

impl HttpPlugin for RequestBlock {
    type Config = Config;

    /// Buffered only when the selected config has `block_bodies` (see `on_request_headers`).
    const REQUEST_BODY: BodyMode = BodyMode::Buffered;

    fn configure(config: &mut Config) -> Result<(), String> {
        prepare(config)
    }

    fn on_start(_start: &mut PluginStart<'_, Config>) {
        regex_cache::activate_pending();
    }

    fn on_request_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        if let Some(kind) = url_block(config, ctx.path()) {
            return block(ctx, config, kind);
        }
        if !config.block_headers.is_empty() && headers_block(config, &ctx.request_headers()) {
            return block(ctx, config, "header");
        }
        if config.block_bodies.is_empty() {
            ctx.dont_read_request_body();
        }
        Action::Continue
    }

    fn on_request_body(&mut self, ctx: &mut HttpContext, config: &Config, body: &[u8]) -> Action {
        if body_block(config, body) {
            return block(ctx, config, "body");
        }
        Action::Continue
    }
}

wasmplug_sdk::plugin!(RequestBlock);

fn block(ctx: &mut HttpContext, config: &Config, kind: &str) -> Action {
    log::debug!("request-block: {} {} blocked by {kind}", ctx.method(), ctx.path());
    let headers: &[(&str, &str)] =
        if config.blocked_message.is_empty() { &[] } else { &[("content-type", "text/plain; charset=utf-8")] };
    ctx.send_response(config.blocked_code, headers, &config.blocked_message);
    Action::Pause
}

const LISTS: &str =
    "at least one of block_urls, block_exact_urls, block_regexp_urls, block_headers, block_bodies is required";

/// Validates a config, lowercases its strings when matching ignores case, and compiles its regexes.
pub fn prepare(config: &mut Config) -> Result<(), String> {
    if !(200..=599).contains(&config.blocked_code) {
        return Err("blocked_code: must be between 200 and 599".into());
    }
    let lists = [
        ("block_urls", &mut config.block_urls),
        ("block_exact_urls", &mut config.block_exact_urls),
        ("block_headers", &mut config.block_headers),
        ("block_bodies", &mut config.block_bodies),
    ];
    let mut any = !config.block_regexp_urls.is_empty();
    for (field, list) in lists {
        any |= !list.is_empty();
        if let Some(i) = list.iter().position(String::is_empty) {
            return Err(format!("{field}[{i}]: must not be empty"));
        }
        if !config.case_sensitive {
            list.iter_mut().for_each(|s| *s = s.to_lowercase());
        }
    }
    if !any {
        return Err(LISTS.into());
    }
    for (i, pattern) in config.block_regexp_urls.iter().enumerate() {
        if pattern.is_empty() {
            return Err(format!("block_regexp_urls[{i}]: must not be empty"));
        }
        let regex = compile(pattern, config.case_sensitive).map_err(|e| format!("block_regexp_urls[{i}]: {e}"))?;
        regex_cache::add_pending(pattern, config.case_sensitive, regex);
    }
    Ok(())
}

fn compile(pattern: &str, case_sensitive: bool) -> Result<Regex, regex_lite::Error> {
    RegexBuilder::new(pattern).case_insensitive(!case_sensitive).build()
}

fn fold<'a>(config: &Config, text: &'a str) -> std::borrow::Cow<'a, str> {
    if config.case_sensitive { text.into() } else { text.to_lowercase().into() }
}

/// Which kind of URL rule blocks `path`, if any.
pub fn url_block(config: &Config, path: &str) -> Option<&'static str> {
    if config.block_urls.is_empty() && config.block_exact_urls.is_empty() && config.block_regexp_urls.is_empty() {
        return None;
    }
    let folded = fold(config, path);
    if config.block_exact_urls.iter().any(|u| *u == folded) {
        return Some("exact url");
    }
    if config.block_urls.iter().any(|u| folded.contains(u.as_str())) {
        return Some("url");
    }
    let cs = config.case_sensitive;
    if config.block_regexp_urls.iter().any(|p| regex_cache::is_match(p, cs, path)) {
        return Some("regexp url");
    }
    None
}

/// Whether the name or value of a header contains one of `block_headers`.
pub fn headers_block(config: &Config, headers: &[(String, String)]) -> bool {
    headers.iter().any(|(name, value)| {
        let (name, value) = (fold(config, name), fold(config, value));
        config.block_headers.iter().any(|b| name.contains(b.as_str()) || value.contains(b.as_str()))
    })
}

/// Whether the body contains one of `block_bodies`.
pub fn body_block(config: &Config, body: &[u8]) -> bool {
    if config.block_bodies.is_empty() {
        return false;
    }
    if config.case_sensitive {
        return config.block_bodies.iter().any(|b| contains_bytes(body, b.as_bytes()));
    }
    let text = String::from_utf8_lossy(body).to_lowercase();
    config.block_bodies.iter().any(|b| text.contains(b.as_str()))
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Compiled regexes, per worker (a Wasm VM is single-threaded).
mod regex_cache {
    use std::cell::RefCell;

    use super::{Regex, compile};

    type Entries = Vec<(String, bool, Regex)>;

    thread_local! {
        /// Compiled by `configure` for the configuration being parsed.
        static PENDING: RefCell<Entries> = const { RefCell::new(Vec::new()) };
        /// The regexes of the accepted configuration.
        static ACTIVE: RefCell<Entries> = const { RefCell::new(Vec::new()) };
    }

    fn find<'a>(entries: &'a Entries, pattern: &str, case_sensitive: bool) -> Option<&'a Regex> {
        entries.iter().find(|(p, cs, _)| p == pattern && *cs == case_sensitive).map(|(_, _, r)| r)
    }

    pub fn add_pending(pattern: &str, case_sensitive: bool, regex: Regex) {
        PENDING.with_borrow_mut(|pending| {
            if find(pending, pattern, case_sensitive).is_none() {
                pending.push((pattern.to_string(), case_sensitive, regex));
            }
        });
    }

    /// The configuration was accepted: its regexes replace the previous configuration's.
    pub fn activate_pending() {
        let pending = PENDING.with_borrow_mut(std::mem::take);
        ACTIVE.with_borrow_mut(|active| *active = pending);
    }

    pub fn is_match(pattern: &str, case_sensitive: bool, text: &str) -> bool {
        ACTIVE.with_borrow_mut(|active| {
            if let Some(regex) = find(active, pattern, case_sensitive) {
                return regex.is_match(text);
            }
            match compile(pattern, case_sensitive) {
                Ok(regex) => {
                    let matched = regex.is_match(text);
                    active.push((pattern.to_string(), case_sensitive, regex));
                    matched
                }
                Err(e) => {
                    log::warn!("request-block: cannot compile `{pattern}`: {e}");
                    false
                }
            }
        })
    }

    #[cfg(test)]
    pub fn active_len() -> usize {
        ACTIVE.with_borrow(Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, String> {
        let mut c: Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
        prepare(&mut c).map(|_| c)
    }

    fn headers(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_and_refusals() {
        let c = parse(r#"{"block_urls":["x"]}"#).unwrap();
        assert_eq!((c.blocked_code, c.blocked_message.as_str(), c.case_sensitive), (403, "", true));
        assert_eq!(parse("{}").unwrap_err(), LISTS);
        assert_eq!(parse(r#"{"block_urls":[],"block_bodies":[]}"#).unwrap_err(), LISTS);
        assert_eq!(parse(r#"{"block_headers":["a",""]}"#).unwrap_err(), "block_headers[1]: must not be empty");
        assert!(parse(r#"{"block_urls":["x"],"blocked_code":100}"#).unwrap_err().starts_with("blocked_code:"));
        assert!(parse(r#"{"block_bodys":["x"]}"#).is_err());
        let e = parse(r#"{"block_regexp_urls":["^/ok$","(unclosed"]}"#).unwrap_err();
        assert!(e.starts_with("block_regexp_urls[1]: "), "{e}");
    }

    #[test]
    fn urls() {
        let c = parse(
            r#"{"block_urls":["swagger.html","foo=bar"],"block_exact_urls":["/admin"],
            "block_regexp_urls":["^/v[0-9]+/internal"]}"#,
        )
        .unwrap();
        regex_cache::activate_pending();
        assert_eq!(url_block(&c, "/docs/swagger.html"), Some("url"));
        assert_eq!(url_block(&c, "/?a=1&foo=bar"), Some("url"));
        assert_eq!(url_block(&c, "/?foo=Bar"), None);
        assert_eq!(url_block(&c, "/admin"), Some("exact url"));
        assert_eq!(url_block(&c, "/admin/x"), None);
        assert_eq!(url_block(&c, "/v2/internal/x"), Some("regexp url"));
        assert_eq!(url_block(&c, "/V2/internal/x"), None);
        assert_eq!(url_block(&c, "/api/v2/internal"), None);
    }

    #[test]
    fn case_insensitive_matching() {
        let c = parse(
            r#"{"block_urls":["Swagger.HTML"],"block_exact_urls":["/Admin"],"block_regexp_urls":["^/v[0-9]/Internal"],
            "block_headers":["Evil"],"block_bodies":["Hello World"],"case_sensitive":false}"#,
        )
        .unwrap();
        assert_eq!(url_block(&c, "/SWAGGER.html"), Some("url"));
        assert_eq!(url_block(&c, "/ADMIN"), Some("exact url"));
        assert_eq!(url_block(&c, "/V2/INTERNAL"), Some("regexp url"));
        assert!(headers_block(&c, &headers(&[("x-agent", "EVIL bot")])));
        assert!(body_block(&c, b"say hello world"));
        assert!(!body_block(&c, b"say hello"));
    }

    #[test]
    fn headers_match_names_and_values() {
        let c = parse(r#"{"block_headers":["example-key","example-value"]}"#).unwrap();
        assert!(headers_block(&c, &headers(&[("example-key", "123")])));
        assert!(headers_block(&c, &headers(&[("my-header", "an example-value here")])));
        assert!(!headers_block(&c, &headers(&[("my-header", "Example-Value")])));
        assert!(!headers_block(&c, &headers(&[(":path", "/"), ("accept", "*/*")])));
    }

    #[test]
    fn bodies() {
        let c = parse(r#"{"block_bodies":["hello world"]}"#).unwrap();
        assert!(body_block(&c, b"{\"msg\":\"hello world\"}"));
        assert!(!body_block(&c, b"Hello World"));
        assert!(!body_block(&c, b"hello"));
        assert!(body_block(&c, &[0xff, b'h', b'e', b'l', b'l', b'o', b' ', b'w', b'o', b'r', b'l', b'd']));
        let none = parse(r#"{"block_urls":["x"]}"#).unwrap();
        assert!(!body_block(&none, b"hello world"));
    }

    #[test]
    fn regex_cache_follows_the_accepted_configuration() {
        parse(r#"{"block_regexp_urls":["a+","b+"]}"#).unwrap();
        parse(r#"{"block_regexp_urls":["a+"]}"#).unwrap();
        regex_cache::activate_pending();
        assert_eq!(regex_cache::active_len(), 2);
        parse(r#"{"block_regexp_urls":["c+"]}"#).unwrap();
        regex_cache::activate_pending();
        assert_eq!(regex_cache::active_len(), 1);
        // A pattern missing from the cache is compiled on first use.
        assert!(regex_cache::is_match("d+", true, "xdd"));
        assert_eq!(regex_cache::active_len(), 2);
    }
}
