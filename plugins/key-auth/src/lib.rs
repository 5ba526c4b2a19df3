//! API key authentication in the manner of Higress's `key-auth`: the key is read from the
//! request headers and/or query parameters named in `keys`, matched against the configured
//! consumers, the consumer must be in the `allow` list of the rule that matched (if any), and
//! the request goes upstream with `X-Mse-Consumer: <name>`.

mod config;

use wasmplug_auth_consumers::{self as auth, Rejection};
use wasmplug_sdk::prelude::*;

pub use config::{Config, Consumer};
pub use wasmplug_auth_consumers::CONSUMER_HEADER;

/// The challenge sent with every 401.
pub const CHALLENGE: &str = "Key realm=MSE Gateway";

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No API key in the configured headers/query parameters.
    NoKey,
    /// More than one distinct API key.
    MultipleKeys,
    /// No consumer has this API key.
    InvalidKey,
    /// A valid consumer that the matched rule's `allow` does not list.
    UnauthorizedConsumer,
}

impl Rejection for Denial {
    fn status(self) -> u16 {
        match self {
            Denial::NoKey | Denial::MultipleKeys | Denial::InvalidKey => 401,
            Denial::UnauthorizedConsumer => 403,
        }
    }

    fn body(self) -> &'static str {
        match self {
            Denial::NoKey => "Request denied by Key Auth check. No API key found in request.",
            Denial::MultipleKeys => "Request denied by Key Auth check. Multiple API keys found in request.",
            Denial::InvalidKey => "Request denied by Key Auth check. Invalid API key.",
            Denial::UnauthorizedConsumer => "Request denied by Key Auth check. Unauthorized consumer.",
        }
    }
}

impl From<auth::AuthError> for Denial {
    fn from(error: auth::AuthError) -> Self {
        match error {
            auth::AuthError::InvalidCredential => Denial::InvalidKey,
            auth::AuthError::UnauthorizedConsumer => Denial::UnauthorizedConsumer,
        }
    }
}

/// The decision for one request.
pub type Outcome<'a> = auth::Outcome<'a, Denial>;

impl auth::Consumer for Consumer {
    fn name(&self) -> &str {
        &self.name
    }

    fn credential(&self) -> &str {
        &self.credential
    }
}

/// Whether requests under this config must authenticate (see [`auth::requires_auth`]);
/// `has_rules` is [`HttpContext::has_rules`].
pub fn requires_auth(config: &Config, has_rules: bool) -> bool {
    auth::requires_auth(config.global_auth, config.allow.is_some(), has_rules)
}

/// Decides a request from its headers and `:path` (with the query string); `has_rules` tells
/// whether the plugin configuration has any `_rules_` (see [`requires_auth`]).
pub fn check<'a>(config: &'a Config, has_rules: bool, headers: &[(String, String)], path: &str) -> Outcome<'a> {
    if !requires_auth(config, has_rules) {
        return Outcome::Pass;
    }
    let keys = presented_keys(config, headers, path);
    let key = match keys.as_slice() {
        [] => return Outcome::Denied(Denial::NoKey),
        [key] => key,
        _ => return Outcome::Denied(Denial::MultipleKeys),
    };
    match auth::authenticate(&config.consumers, config.allow.as_deref(), key.as_bytes()) {
        Ok(name) => Outcome::Authenticated(name),
        Err(error) => Outcome::Denied(error.into()),
    }
}

/// The distinct non-empty API keys the request presents where the config looks for them.
pub fn presented_keys(config: &Config, headers: &[(String, String)], path: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |value: String| {
        if !value.is_empty() && !found.contains(&value) {
            found.push(value);
        }
    };
    if config.in_header {
        for (name, value) in headers {
            if config.keys.iter().any(|key| name.eq_ignore_ascii_case(key)) {
                add(value.clone());
            }
        }
    }
    if config.in_query {
        let query = path.split_once('?').map_or("", |(_, query)| query);
        let query = query.split_once('#').map_or(query, |(query, _)| query);
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name);
            if config.keys.contains(&name) {
                add(percent_decode(value));
            }
        }
    }
    found
}

/// Decodes a query component (`%XX` escapes, `+` as space); bad escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|c| char::from(*c).to_digit(16));
                if let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Semantic checks of a (global or rule) config; errors name the field.
pub fn validate(config: &Config) -> Result<(), String> {
    if config.keys.is_empty() {
        return Err("keys: must not be empty".into());
    }
    if let Some(i) = config.keys.iter().position(|k| k.is_empty()) {
        return Err(format!("keys[{i}]: must not be empty"));
    }
    if !config.in_header && !config.in_query {
        return Err("in_header: at least one of in_header and in_query must be true".into());
    }
    auth::validate(&config.consumers, config.global_auth, config.allow.as_deref(), |credential| {
        if credential.is_empty() { Err("must not be empty") } else { Ok(()) }
    })
}

#[derive(Default)]
pub struct KeyAuth;

impl HttpPlugin for KeyAuth {
    type Config = Config;

    fn configure(config: &mut Config) -> Result<(), String> {
        validate(config)
    }

    fn on_request_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        let has_rules = ctx.has_rules();
        if !requires_auth(config, has_rules) {
            return Action::Continue;
        }
        let headers = if config.in_header { ctx.request_headers() } else { Vec::new() };
        let path = if config.in_query { ctx.path() } else { "" };
        let outcome = check(config, has_rules, &headers, path);
        auth::respond(ctx, "key-auth", CHALLENGE, outcome)
    }
}

wasmplug_sdk::plugin!(KeyAuth);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Config {
        let c: Config = serde_json::from_str(json).unwrap();
        validate(&c).unwrap();
        c
    }

    const BASE: &str = r#""consumers":[{"name":"consumer1","credential":"key-1"},{"name":"consumer2","credential":"key 2/é"}],
        "keys":["x-api-key","apikey"]"#;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults() {
        let c = config(r#"{"keys":["k"]}"#);
        assert!(c.in_header && !c.in_query && c.global_auth.is_none() && c.allow.is_none() && c.consumers.is_empty());
        assert!(serde_json::from_str::<Config>("{}").unwrap_err().to_string().contains("missing field `keys`"));
    }

    #[test]
    fn keys_from_headers() {
        let c = config(&format!(r#"{{{BASE},"global_auth":true}}"#));
        let ok = h(&[(":path", "/"), ("X-Api-Key", "key-1")]);
        assert_eq!(check(&c, true, &ok, "/?apikey=key-1"), Outcome::Authenticated("consumer1"));
        assert_eq!(check(&c, true, &h(&[("apikey", "key 2/é")]), "/"), Outcome::Authenticated("consumer2"));
        // The query is not looked at by default.
        assert_eq!(check(&c, true, &h(&[]), "/?apikey=key-1"), Outcome::Denied(Denial::NoKey));
        assert_eq!(check(&c, true, &h(&[("x-api-key", "")]), "/"), Outcome::Denied(Denial::NoKey));
        assert_eq!(check(&c, true, &h(&[("x-api-key", "nope")]), "/"), Outcome::Denied(Denial::InvalidKey));
        let two = h(&[("x-api-key", "key-1"), ("apikey", "key 2/é")]);
        assert_eq!(check(&c, true, &two, "/"), Outcome::Denied(Denial::MultipleKeys));
        let same_twice = h(&[("x-api-key", "key-1"), ("apikey", "key-1")]);
        assert_eq!(check(&c, true, &same_twice, "/"), Outcome::Authenticated("consumer1"));
    }

    #[test]
    fn keys_from_query() {
        let c = config(&format!(r#"{{{BASE},"global_auth":true,"in_header":false,"in_query":true}}"#));
        assert_eq!(check(&c, true, &h(&[("x-api-key", "key-1")]), "/"), Outcome::Denied(Denial::NoKey));
        assert_eq!(check(&c, true, &[], "/p?a=1&apikey=key-1#frag"), Outcome::Authenticated("consumer1"));
        assert_eq!(check(&c, true, &[], "/p?apikey=key+2%2F%C3%A9"), Outcome::Authenticated("consumer2"));
        assert_eq!(check(&c, true, &[], "/p?APIKEY=key-1"), Outcome::Denied(Denial::NoKey));
        assert_eq!(check(&c, true, &[], "/p?apikey=key-1&x-api-key=key-2"), Outcome::Denied(Denial::MultipleKeys));
        assert_eq!(check(&c, true, &[], "/p?apikey=key-1&apikey=key-1"), Outcome::Authenticated("consumer1"));
        assert_eq!(check(&c, true, &[], "/p?apikey="), Outcome::Denied(Denial::NoKey));

        let both = config(&format!(r#"{{{BASE},"global_auth":true,"in_query":true}}"#));
        let header = h(&[("x-api-key", "key-1")]);
        assert_eq!(check(&both, true, &header, "/?apikey=key-1"), Outcome::Authenticated("consumer1"));
        assert_eq!(check(&both, true, &header, "/?apikey=other"), Outcome::Denied(Denial::MultipleKeys));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2b"), "a b c+");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn unset_global_auth_depends_on_rules() {
        // Unset global_auth and no rules at all: every request must authenticate (Higress).
        let unset = config(&format!("{{{BASE}}}"));
        assert!(requires_auth(&unset, false));
        assert_eq!(check(&unset, false, &[], "/"), Outcome::Denied(Denial::NoKey));
        assert_eq!(check(&unset, false, &h(&[("x-api-key", "key-1")]), "/"), Outcome::Authenticated("consumer1"));
        assert_eq!(check(&unset, false, &h(&[("x-api-key", "bad")]), "/"), Outcome::Denied(Denial::InvalidKey));
        // Unset global_auth with rules, and this request matched none of them: pass.
        assert!(!requires_auth(&unset, true));
        assert_eq!(check(&unset, true, &[], "/"), Outcome::Pass);
        assert_eq!(check(&unset, true, &h(&[("x-api-key", "bad")]), "/"), Outcome::Pass);
        // Unset global_auth, a rule with allow matched: authenticate.
        let rule = config(&format!(r#"{{{BASE},"allow":["consumer1"]}}"#));
        assert!(requires_auth(&rule, true) && requires_auth(&rule, false));
    }

    #[test]
    fn global_auth_false_passes_without_allow() {
        let off = config(&format!(r#"{{{BASE},"global_auth":false}}"#));
        assert_eq!(off.global_auth, Some(false));
        for has_rules in [false, true] {
            assert!(!requires_auth(&off, has_rules));
            assert_eq!(check(&off, has_rules, &[], "/"), Outcome::Pass);
            assert_eq!(check(&off, has_rules, &h(&[("x-api-key", "bad")]), "/"), Outcome::Pass);
        }
        // ...but allow still requires authentication.
        let rule = config(&format!(r#"{{{BASE},"global_auth":false,"allow":["consumer2"]}}"#));
        assert_eq!(check(&rule, true, &[], "/"), Outcome::Denied(Denial::NoKey));
        assert_eq!(check(&rule, true, &h(&[("apikey", "key 2/é")]), "/"), Outcome::Authenticated("consumer2"));
    }

    #[test]
    fn required_auth_without_consumers_is_denied() {
        // Accepted by configure (it may be a global config whose rules hold allow), but without
        // rules it requires authentication, and nobody can authenticate.
        let empty = config(r#"{"keys":["x-api-key"]}"#);
        assert_eq!(check(&empty, false, &[], "/"), Outcome::Denied(Denial::NoKey));
        assert_eq!(check(&empty, false, &h(&[("x-api-key", "key-1")]), "/"), Outcome::Denied(Denial::InvalidKey));
        assert_eq!(check(&empty, true, &[], "/"), Outcome::Pass);
    }

    #[test]
    fn allow_lists() {
        let rule = config(&format!(r#"{{{BASE},"allow":["consumer1"]}}"#));
        assert_eq!(check(&rule, true, &h(&[("x-api-key", "key-1")]), "/"), Outcome::Authenticated("consumer1"));
        assert_eq!(
            check(&rule, true, &h(&[("x-api-key", "key 2/é")]), "/"),
            Outcome::Denied(Denial::UnauthorizedConsumer)
        );
        assert_eq!(check(&rule, true, &h(&[("x-api-key", "bad")]), "/"), Outcome::Denied(Denial::InvalidKey));
        assert_eq!(check(&rule, true, &[], "/"), Outcome::Denied(Denial::NoKey));
    }

    #[test]
    fn denials() {
        for d in [Denial::NoKey, Denial::MultipleKeys, Denial::InvalidKey] {
            assert_eq!(d.status(), 401);
        }
        assert_eq!(Denial::UnauthorizedConsumer.status(), 403);
    }

    fn refusal(json: &str) -> String {
        validate(&serde_json::from_str(json).unwrap()).unwrap_err()
    }

    #[test]
    fn refused_configs_name_the_field() {
        assert!(refusal(r#"{"keys":[]}"#).starts_with("keys:"));
        assert!(refusal(r#"{"keys":["a",""]}"#).starts_with("keys[1]:"));
        assert!(refusal(r#"{"keys":["a"],"in_header":false}"#).starts_with("in_header:"));
        assert!(refusal(r#"{"keys":["a"],"global_auth":true}"#).starts_with("consumers:"));
        assert!(refusal(r#"{"keys":["a"],"allow":["a"]}"#).starts_with("consumers:"));
        // configure cannot know whether there are rules: no consumers is fine otherwise.
        assert!(validate(&serde_json::from_str(r#"{"keys":["a"],"global_auth":false}"#).unwrap()).is_ok());
        let e =
            refusal(r#"{"keys":["a"],"consumers":[{"name":"a","credential":"k1"},{"name":"a","credential":"k2"}]}"#);
        assert!(e.starts_with("consumers[1].name: duplicate consumer name `a`"), "{e}");
        let e =
            refusal(r#"{"keys":["a"],"consumers":[{"name":"a","credential":"k1"},{"name":"b","credential":"k1"}]}"#);
        assert!(e.starts_with("consumers[1].credential:") && !e.contains("k1"), "{e}");
        let e = refusal(r#"{"keys":["a"],"consumers":[{"name":"a","credential":""}]}"#);
        assert!(e.starts_with("consumers[0].credential:"), "{e}");
        let e = refusal(r#"{"keys":["a"],"consumers":[{"name":"a","credential":"k"}],"allow":["a","zz"]}"#);
        assert_eq!(e, "allow[1]: unknown consumer `zz`");
        let e = refusal(r#"{"keys":["a"],"consumers":[{"name":"a","credential":"k"}],"allow":[]}"#);
        assert!(e.starts_with("allow:"), "{e}");
    }
}
