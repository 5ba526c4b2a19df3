//! HTTP Basic Auth (RFC 7617) in the manner of Higress's `basic-auth`: the `Authorization:
//! Basic <base64(user:password)>` header is checked against the configured consumers, the
//! consumer must be in the `allow` list of the rule that matched (if any), and the request
//! goes upstream with `X-Mse-Consumer: <name>`.

mod config;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use wasmplug_auth_consumers::{self as auth, Rejection};
use wasmplug_sdk::prelude::*;

pub use config::{Config, Consumer};
pub use wasmplug_auth_consumers::CONSUMER_HEADER;

/// The challenge sent with every 401.
pub const CHALLENGE: &str = "Basic realm=MSE Gateway";

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No `Authorization: Basic ...` header.
    NoCredentials,
    /// Undecodable, or no consumer has this `user:password`.
    InvalidCredentials,
    /// A valid consumer that the matched rule's `allow` does not list.
    UnauthorizedConsumer,
}

impl Rejection for Denial {
    fn status(self) -> u16 {
        match self {
            Denial::NoCredentials | Denial::InvalidCredentials => 401,
            Denial::UnauthorizedConsumer => 403,
        }
    }

    fn body(self) -> &'static str {
        match self {
            Denial::NoCredentials => "Request denied by Basic Auth check. No Basic Authentication information found.",
            Denial::InvalidCredentials => "Request denied by Basic Auth check. Invalid username and/or password.",
            Denial::UnauthorizedConsumer => "Request denied by Basic Auth check. Unauthorized consumer.",
        }
    }
}

impl From<auth::AuthError> for Denial {
    fn from(error: auth::AuthError) -> Self {
        match error {
            auth::AuthError::InvalidCredential => Denial::InvalidCredentials,
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

/// Decides a request from its `Authorization` header; `has_rules` tells whether the plugin
/// configuration has any `_rules_` (see [`requires_auth`]).
pub fn check<'a>(config: &'a Config, has_rules: bool, authorization: Option<&str>) -> Outcome<'a> {
    if !requires_auth(config, has_rules) {
        return Outcome::Pass;
    }
    let Some(token) = authorization.and_then(basic_token) else {
        return Outcome::Denied(Denial::NoCredentials);
    };
    let Ok(credential) = STANDARD.decode(token) else {
        return Outcome::Denied(Denial::InvalidCredentials);
    };
    match auth::authenticate(&config.consumers, config.allow.as_deref(), &credential) {
        Ok(name) => Outcome::Authenticated(name),
        Err(error) => Outcome::Denied(error.into()),
    }
}

/// The token of an `Authorization: Basic <token>` header (scheme case-insensitive).
fn basic_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("basic") && !token.is_empty()).then_some(token)
}

/// Semantic checks of a (global or rule) config; errors name the field.
pub fn validate(config: &Config) -> Result<(), String> {
    auth::validate(&config.consumers, config.global_auth, config.allow.as_deref(), |credential| {
        if credential.split_once(':').is_none_or(|(user, _)| user.is_empty()) {
            Err("expected `user:password` with a non-empty user")
        } else {
            Ok(())
        }
    })
}

#[derive(Default)]
pub struct BasicAuth;

impl HttpPlugin for BasicAuth {
    type Config = Config;

    fn configure(config: &mut Config) -> Result<(), String> {
        validate(config)
    }

    fn on_request_headers(&mut self, ctx: &mut HttpContext, config: &Config) -> Action {
        let has_rules = ctx.has_rules();
        if !requires_auth(config, has_rules) {
            return Action::Continue;
        }
        let authorization = ctx.request_header("authorization");
        let outcome = check(config, has_rules, authorization.as_deref());
        auth::respond(ctx, "basic-auth", CHALLENGE, outcome)
    }
}

wasmplug_sdk::plugin!(BasicAuth);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Config {
        let c: Config = serde_json::from_str(json).unwrap();
        validate(&c).unwrap();
        c
    }

    const CONSUMERS: &str = r#""consumers":[{"name":"consumer1","credential":"admin:123456"},
        {"name":"consumer2","credential":"guest:abc:def"}]"#;

    fn basic(credential: &str) -> String {
        format!("Basic {}", STANDARD.encode(credential))
    }

    #[test]
    fn global_auth_authenticates_every_request() {
        let c = config(&format!(r#"{{{CONSUMERS},"global_auth":true}}"#));
        assert_eq!(check(&c, true, Some(&basic("admin:123456"))), Outcome::Authenticated("consumer1"));
        assert_eq!(check(&c, true, Some(&basic("guest:abc:def"))), Outcome::Authenticated("consumer2"));
        let lower = format!("bAsIc   {}", STANDARD.encode("admin:123456"));
        assert_eq!(check(&c, true, Some(&lower)), Outcome::Authenticated("consumer1"));
        assert_eq!(check(&c, true, None), Outcome::Denied(Denial::NoCredentials));
        assert_eq!(check(&c, true, Some("Bearer abc")), Outcome::Denied(Denial::NoCredentials));
        assert_eq!(check(&c, true, Some("Basic")), Outcome::Denied(Denial::NoCredentials));
        assert_eq!(check(&c, true, Some("Basic !!!")), Outcome::Denied(Denial::InvalidCredentials));
        assert_eq!(check(&c, true, Some(&basic("admin:1234567"))), Outcome::Denied(Denial::InvalidCredentials));
        assert_eq!(check(&c, true, Some(&basic("admin"))), Outcome::Denied(Denial::InvalidCredentials));
    }

    #[test]
    fn unset_global_auth_depends_on_rules() {
        // Unset global_auth and no rules at all: every request must authenticate (Higress).
        let unset = config(&format!("{{{CONSUMERS}}}"));
        assert!(requires_auth(&unset, false));
        assert_eq!(check(&unset, false, None), Outcome::Denied(Denial::NoCredentials));
        assert_eq!(check(&unset, false, Some(&basic("admin:123456"))), Outcome::Authenticated("consumer1"));
        assert_eq!(check(&unset, false, Some(&basic("admin:x"))), Outcome::Denied(Denial::InvalidCredentials));
        // Unset global_auth with rules, and this request matched none of them: pass.
        assert!(!requires_auth(&unset, true));
        assert_eq!(check(&unset, true, None), Outcome::Pass);
        assert_eq!(check(&unset, true, Some("garbage")), Outcome::Pass);
        // Unset global_auth, a rule with allow matched: authenticate.
        let rule = config(&format!(r#"{{{CONSUMERS},"allow":["consumer1"]}}"#));
        assert!(requires_auth(&rule, true) && requires_auth(&rule, false));
    }

    #[test]
    fn global_auth_false_passes_without_allow() {
        let off = config(&format!(r#"{{{CONSUMERS},"global_auth":false}}"#));
        assert_eq!(off.global_auth, Some(false));
        for has_rules in [false, true] {
            assert!(!requires_auth(&off, has_rules));
            assert_eq!(check(&off, has_rules, None), Outcome::Pass);
            assert_eq!(check(&off, has_rules, Some("garbage")), Outcome::Pass);
        }
        // ...but allow still requires authentication.
        let rule = config(&format!(r#"{{{CONSUMERS},"global_auth":false,"allow":["consumer2"]}}"#));
        assert_eq!(check(&rule, true, None), Outcome::Denied(Denial::NoCredentials));
        assert_eq!(check(&rule, true, Some(&basic("guest:abc:def"))), Outcome::Authenticated("consumer2"));
    }

    #[test]
    fn required_auth_without_consumers_is_denied() {
        // `{}` is accepted by configure (it may be a global config whose rules hold allow), but
        // without rules it requires authentication, and nobody can authenticate.
        let empty = config("{}");
        assert_eq!(check(&empty, false, None), Outcome::Denied(Denial::NoCredentials));
        assert_eq!(check(&empty, false, Some(&basic("admin:123456"))), Outcome::Denied(Denial::InvalidCredentials));
        assert_eq!(check(&empty, true, None), Outcome::Pass);
    }

    #[test]
    fn allow_lists() {
        let rule = config(&format!(r#"{{{CONSUMERS},"allow":["consumer1"]}}"#));
        assert_eq!(check(&rule, true, Some(&basic("admin:123456"))), Outcome::Authenticated("consumer1"));
        assert_eq!(check(&rule, true, Some(&basic("guest:abc:def"))), Outcome::Denied(Denial::UnauthorizedConsumer));
        assert_eq!(check(&rule, true, None), Outcome::Denied(Denial::NoCredentials));

        let both = config(&format!(r#"{{{CONSUMERS},"global_auth":true,"allow":["consumer2"]}}"#));
        assert_eq!(check(&both, true, Some(&basic("admin:123456"))), Outcome::Denied(Denial::UnauthorizedConsumer));
        assert_eq!(check(&both, true, Some(&basic("guest:abc:def"))), Outcome::Authenticated("consumer2"));
    }

    #[test]
    fn denials() {
        assert_eq!(Denial::NoCredentials.status(), 401);
        assert_eq!(Denial::InvalidCredentials.status(), 401);
        assert_eq!(Denial::UnauthorizedConsumer.status(), 403);
        assert!(Denial::InvalidCredentials.body().ends_with("Invalid username and/or password."));
    }

    fn refusal(json: &str) -> String {
        validate(&serde_json::from_str(json).unwrap()).unwrap_err()
    }

    #[test]
    fn refused_configs_name_the_field() {
        assert!(refusal(r#"{"global_auth":true}"#).starts_with("consumers:"));
        assert!(refusal(r#"{"allow":["a"]}"#).starts_with("consumers:"));
        let e = refusal(r#"{"consumers":[{"name":"a","credential":"u:p"},{"name":"a","credential":"v:p"}]}"#);
        assert!(e.starts_with("consumers[1].name: duplicate consumer name `a`"), "{e}");
        let e = refusal(r#"{"consumers":[{"name":"a","credential":"u:p"},{"name":"b","credential":"u:p"}]}"#);
        assert!(e.starts_with("consumers[1].credential: same credential"), "{e}");
        assert!(!e.contains("u:p"), "the error must not leak the credential: {e}");
        let e = refusal(r#"{"consumers":[{"name":"a","credential":"nocolon"}]}"#);
        assert!(e.starts_with("consumers[0].credential:"), "{e}");
        let e = refusal(r#"{"consumers":[{"name":"a","credential":":p"}]}"#);
        assert!(e.starts_with("consumers[0].credential:"), "{e}");
        let e = refusal(r#"{"consumers":[{"name":"","credential":"u:p"}]}"#);
        assert!(e.starts_with("consumers[0].name:"), "{e}");
        let e = refusal(r#"{"consumers":[{"name":"a","credential":"u:p"}],"allow":["a","b"]}"#);
        assert_eq!(e, "allow[1]: unknown consumer `b`");
        let e = refusal(r#"{"consumers":[{"name":"a","credential":"u:p"}],"allow":[]}"#);
        assert!(e.starts_with("allow:"), "{e}");
        // Without global_auth true or allow, consumers may be absent (a global config whose
        // rules hold allow): configure cannot know whether there are rules.
        assert!(validate(&serde_json::from_str(r#"{}"#).unwrap()).is_ok());
        assert!(validate(&serde_json::from_str(r#"{"global_auth":false}"#).unwrap()).is_ok());
    }

    #[test]
    fn parser_refuses_unknown_and_mistyped_fields() {
        assert!(serde_json::from_str::<Config>(r#"{"globalAuth":true}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"global_auth":"yes"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"consumers":[{"name":"a"}]}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"consumers":[{"name":"a","credential":"u:p","x":1}]}"#).is_err());
    }
}
