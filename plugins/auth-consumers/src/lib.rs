//! Higress's consumer model, shared by the auth plugins (`basic-auth`, `key-auth`).
//!
//! A plugin configuration lists `consumers` (a unique name and a unique credential each),
//! may set `global_auth`, and its `_rules_` may set `allow` (the consumers allowed on the
//! routes/domains they match). This crate holds what does not depend on how the credential
//! is carried: the config checks ([`validate`]), whether a request must authenticate
//! ([`requires_auth`]), the consumer of a credential, found in constant time, and the allow
//! check ([`authenticate`]), and the answer to the request ([`respond`]: `X-Mse-Consumer`
//! upstream, or a 401/403 text/plain local response).
//!
//! Everything but [`respond`] works on plain data: the plugins implement [`Consumer`] for
//! their config's consumer type (it is also implemented for `(name, credential)` pairs).
//!
//! The functions are `#[inline]`: each is called from one or two places in a plugin, and the
//! hint keeps the size-optimised (`opt-level = "z"`) modules about as small as before.

mod http;

pub use http::respond;

/// The request header naming the authenticated consumer (Higress's name).
pub const CONSUMER_HEADER: &str = "X-Mse-Consumer";

/// A configured consumer: a unique name and a unique credential.
pub trait Consumer {
    /// The consumer's name; sent upstream as [`CONSUMER_HEADER`].
    fn name(&self) -> &str;
    /// The credential the consumer presents (`user:password`, an API key, ...).
    fn credential(&self) -> &str;
}

/// `(name, credential)` pairs.
impl<N: AsRef<str>, C: AsRef<str>> Consumer for (N, C) {
    fn name(&self) -> &str {
        self.0.as_ref()
    }

    fn credential(&self) -> &str {
        self.1.as_ref()
    }
}

/// Why a request is refused: the plugin's reasons, each with its status (401 unless the
/// consumer is not allowed: 403) and text/plain body.
pub trait Rejection: Copy {
    fn status(self) -> u16;
    fn body(self) -> &'static str;
}

/// The decision for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<'a, D> {
    /// Authentication is not required here: forward untouched.
    Pass,
    /// Forward with `X-Mse-Consumer: <name>`.
    Authenticated(&'a str),
    Denied(D),
}

/// Whether requests must authenticate, as in Higress: when `global_auth` is true, when the
/// config has `allow`, or when `global_auth` is unset and the plugin configuration has no
/// `_rules_` at all (`has_rules` is `HttpContext::has_rules`).
#[inline]
pub fn requires_auth(global_auth: Option<bool>, has_allow: bool, has_rules: bool) -> bool {
    match global_auth {
        Some(global_auth) => global_auth || has_allow,
        None => has_allow || !has_rules,
    }
}

/// Whether `consumers` must be non-empty, whatever the rules (`global_auth` true or `allow` set).
#[inline]
pub fn needs_consumers(global_auth: Option<bool>, has_allow: bool) -> bool {
    global_auth == Some(true) || has_allow
}

/// Semantic checks of the consumer part of a (global or rule) config; errors name the field.
///
/// `consumers` must be non-empty when [`needs_consumers`]; each consumer needs a non-empty
/// name, a credential that `check_credential` accepts (its error follows
/// `consumers[i].credential: `), a name and a credential no earlier consumer has; `allow`, if
/// set, must be non-empty and name only configured consumers. Credentials are never quoted.
#[inline]
pub fn validate<C: Consumer>(
    consumers: &[C],
    global_auth: Option<bool>,
    allow: Option<&[String]>,
    check_credential: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<(), String> {
    if needs_consumers(global_auth, allow.is_some()) && consumers.is_empty() {
        return Err("consumers: must not be empty when global_auth is true or allow is set".into());
    }
    for (i, consumer) in consumers.iter().enumerate() {
        if consumer.name().is_empty() {
            return Err(format!("consumers[{i}].name: must not be empty"));
        }
        if let Err(problem) = check_credential(consumer.credential()) {
            return Err(format!("consumers[{i}].credential: {problem}"));
        }
        let earlier = consumers.get(..i).unwrap_or_default();
        if let Some(j) = earlier.iter().position(|c| c.name() == consumer.name()) {
            return Err(format!(
                "consumers[{i}].name: duplicate consumer name `{}` (as consumers[{j}])",
                consumer.name()
            ));
        }
        if let Some(j) = earlier.iter().position(|c| c.credential() == consumer.credential()) {
            return Err(format!("consumers[{i}].credential: same credential as consumers[{j}]"));
        }
    }
    if let Some(allow) = allow {
        if allow.is_empty() {
            return Err("allow: must not be empty".into());
        }
        for (i, name) in allow.iter().enumerate() {
            if !consumers.iter().any(|c| c.name() == name) {
                return Err(format!("allow[{i}]: unknown consumer `{name}`"));
            }
        }
    }
    Ok(())
}

/// Why [`authenticate`] refused a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No consumer has this credential.
    InvalidCredential,
    /// A valid consumer that `allow` does not list (403).
    UnauthorizedConsumer,
}

/// The name of the consumer whose credential is `credential`, if `allow` (when set) lists it.
#[inline]
pub fn authenticate<'a, C: Consumer>(
    consumers: &'a [C],
    allow: Option<&[String]>,
    credential: &[u8],
) -> Result<&'a str, AuthError> {
    let consumer = find_consumer(consumers, credential).ok_or(AuthError::InvalidCredential)?;
    if is_allowed(allow, consumer.name()) { Ok(consumer.name()) } else { Err(AuthError::UnauthorizedConsumer) }
}

/// Whether `allow` (unset: everybody) lets consumer `name` in.
#[inline]
pub fn is_allowed(allow: Option<&[String]>, name: &str) -> bool {
    allow.is_none_or(|allow| allow.iter().any(|allowed| allowed == name))
}

/// The consumer whose credential is `credential`. Every consumer is compared, each in
/// constant time, so the answer time does not tell which one (or which bytes) matched.
#[inline]
pub fn find_consumer<'a, C: Consumer>(consumers: &'a [C], credential: &[u8]) -> Option<&'a C> {
    let mut found = None;
    for consumer in consumers {
        if constant_time_eq(consumer.credential().as_bytes(), credential) && found.is_none() {
            found = Some(consumer);
        }
    }
    found
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
#[inline]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The headers of a denial: `content-type: text/plain`, and for a 401 the challenge
/// (`WWW-Authenticate: <Scheme> realm=MSE Gateway`).
#[inline]
pub fn denial_headers(status: u16, challenge: &str) -> Vec<(&'static str, &str)> {
    let mut headers = vec![("content-type", "text/plain")];
    if status == 401 {
        headers.push(("www-authenticate", challenge));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSUMERS: [(&str, &str); 2] = [("consumer1", "admin:123456"), ("consumer2", "guest:abc:def")];

    fn allow(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn any_credential(_: &str) -> Result<(), &'static str> {
        Ok(())
    }

    fn non_empty(credential: &str) -> Result<(), &'static str> {
        if credential.is_empty() { Err("must not be empty") } else { Ok(()) }
    }

    #[test]
    fn requires_auth_as_higress() {
        for has_rules in [false, true] {
            assert!(requires_auth(Some(true), false, has_rules));
            assert!(requires_auth(Some(true), true, has_rules));
            assert!(!requires_auth(Some(false), false, has_rules));
            assert!(requires_auth(Some(false), true, has_rules));
            assert!(requires_auth(None, true, has_rules));
        }
        // Unset global_auth without allow: only when there are no rules at all.
        assert!(requires_auth(None, false, false));
        assert!(!requires_auth(None, false, true));
    }

    #[test]
    fn needs_consumers_when_global_auth_or_allow() {
        assert!(needs_consumers(Some(true), false));
        assert!(needs_consumers(None, true));
        assert!(needs_consumers(Some(false), true));
        assert!(!needs_consumers(None, false));
        assert!(!needs_consumers(Some(false), false));
    }

    #[test]
    fn authenticate_and_allow() {
        assert_eq!(authenticate(&CONSUMERS, None, b"admin:123456"), Ok("consumer1"));
        assert_eq!(authenticate(&CONSUMERS, None, b"guest:abc:def"), Ok("consumer2"));
        assert_eq!(authenticate(&CONSUMERS, None, b"admin:1234567"), Err(AuthError::InvalidCredential));
        assert_eq!(authenticate(&CONSUMERS, None, b""), Err(AuthError::InvalidCredential));
        let only1 = allow(&["consumer1"]);
        assert_eq!(authenticate(&CONSUMERS, Some(&only1), b"admin:123456"), Ok("consumer1"));
        assert_eq!(authenticate(&CONSUMERS, Some(&only1), b"guest:abc:def"), Err(AuthError::UnauthorizedConsumer));
        assert_eq!(authenticate(&CONSUMERS, Some(&only1), b"nope"), Err(AuthError::InvalidCredential));
        let none: [(&str, &str); 0] = [];
        assert_eq!(authenticate(&none, None, b"admin:123456"), Err(AuthError::InvalidCredential));
        assert!(is_allowed(None, "anyone"));
        assert!(!is_allowed(Some(&[]), "anyone"));
    }

    #[test]
    fn find_consumer_returns_the_first_match() {
        let owned = vec![("a".to_string(), "k".to_string()), ("b".to_string(), "k".to_string())];
        assert_eq!(find_consumer(&owned, b"k").map(Consumer::name), Some("a"));
        assert!(find_consumer(&owned, b"K").is_none());
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn denial_headers_challenge_only_401() {
        let challenge = "Basic realm=MSE Gateway";
        assert_eq!(
            denial_headers(401, challenge),
            [("content-type", "text/plain"), ("www-authenticate", "Basic realm=MSE Gateway")]
        );
        assert_eq!(denial_headers(403, challenge), [("content-type", "text/plain")]);
    }

    #[test]
    fn validation_errors_name_the_field() {
        let v = |consumers: &[(&str, &str)], global_auth, allow: Option<&[String]>| {
            validate(consumers, global_auth, allow, non_empty)
        };
        assert!(v(&CONSUMERS, Some(true), None).is_ok());
        assert!(v(&[], None, None).is_ok());
        assert!(v(&[], Some(false), None).is_ok());
        let needed = "consumers: must not be empty when global_auth is true or allow is set";
        assert_eq!(v(&[], Some(true), None).unwrap_err(), needed);
        assert_eq!(v(&[], None, Some(&allow(&["a"]))).unwrap_err(), needed);
        assert_eq!(v(&[("", "k")], None, None).unwrap_err(), "consumers[0].name: must not be empty");
        assert_eq!(v(&[("a", "")], None, None).unwrap_err(), "consumers[0].credential: must not be empty");
        assert_eq!(
            v(&[("a", "k1"), ("a", "k2")], None, None).unwrap_err(),
            "consumers[1].name: duplicate consumer name `a` (as consumers[0])"
        );
        let e = v(&[("a", "k1"), ("b", "k2"), ("c", "k1")], None, None).unwrap_err();
        assert_eq!(e, "consumers[2].credential: same credential as consumers[0]");
        assert_eq!(v(&[("a", "k")], None, Some(&[])).unwrap_err(), "allow: must not be empty");
        assert_eq!(v(&[("a", "k")], None, Some(&allow(&["a", "b"]))).unwrap_err(), "allow[1]: unknown consumer `b`");
        assert!(v(&[("a", "k")], Some(false), Some(&allow(&["a"]))).is_ok());
        // The credential rule is the plugin's; its message follows the field.
        let e = validate(&[("a", "x")], None, None, |_| Err("expected something")).unwrap_err();
        assert_eq!(e, "consumers[0].credential: expected something");
        assert!(validate(&[("a", "")], None, None, any_credential).is_ok());
    }
}
