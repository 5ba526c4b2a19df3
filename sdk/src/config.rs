//! Parsing of the plugin configuration: a global config plus Higress-style `_rules_`.
//!
//! ```json
//! { "mockEnable": false,
//!   "_rules_": [ { "_match_route_": ["r1"], "mockEnable": true } ] }
//! ```
//! Each rule's config is the global object overlaid with the rule's own fields, so a rule
//! only states what it changes. When the document holds nothing but `_rules_`, there is no
//! global config and requests that match no rule pass through untouched (as in Higress).
//! An empty document (or none at all) is the same as `{}`: a config type whose fields all
//! have defaults runs without any configuration.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::json_path;
use crate::matcher::{DomainPattern, Matcher, RequestFacts, ServicePattern};

use wasmplug_contract::rules::{MATCH_DOMAIN, MATCH_ROUTE, MATCH_ROUTE_PREFIX, MATCH_SERVICE, RULES as RULES_KEY};

/// Top-level fields of a JSON object, kept as unparsed text. Configs are deserialized from
/// text, never through `serde_json::Value`, which keeps modules small.
type Fields<'a> = BTreeMap<String, &'a RawValue>;

/// The parsed configuration of one plugin instance.
#[derive(Debug)]
pub struct RuleSet<C> {
    global: Option<Rc<C>>,
    rules: Vec<(Matcher, Rc<C>)>,
    needs_route: bool,
    needs_host: bool,
    needs_cluster: bool,
}

impl<C> RuleSet<C> {
    /// The config applied to requests that match no rule, if any.
    pub fn global(&self) -> Option<&Rc<C>> {
        self.global.as_ref()
    }

    /// Number of `_rules_` entries.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub(crate) fn needs_route(&self) -> bool {
        self.needs_route
    }
    pub(crate) fn needs_host(&self) -> bool {
        self.needs_host
    }
    pub(crate) fn needs_cluster(&self) -> bool {
        self.needs_cluster
    }

    /// First matching rule wins; otherwise the global config (if there is one).
    /// With the index of the rule that matched (`None` for the global config).
    pub(crate) fn select(&self, facts: &RequestFacts<'_>) -> Option<(Option<usize>, &Rc<C>)> {
        match self.rules.iter().position(|(m, _)| m.matches(facts)) {
            Some(i) => self.rules.get(i).map(|(_, c)| (Some(i), c)),
            None => self.global.as_ref().map(|c| (None, c)),
        }
    }
}

/// Parses a plugin configuration document. `prepare` validates (and may complete) each
/// parsed config; its error refuses the whole document.
pub fn parse<C, F>(raw: &[u8], prepare: F) -> Result<RuleSet<C>>
where
    C: DeserializeOwned,
    F: Fn(&mut C) -> Result<(), String>,
{
    let text = std::str::from_utf8(raw).map_err(|e| Error::config(".", format!("not UTF-8 text: {e}")))?;
    let mut doc = parse_object(text, ".")?;
    let rules: Vec<&RawValue> = match doc.remove(RULES_KEY) {
        None => Vec::new(),
        Some(raw) => parse_at::<Option<Vec<&RawValue>>>(raw.get(), RULES_KEY, "an array of rules")?.unwrap_or_default(),
    };
    let has_global = !doc.is_empty() || rules.is_empty();
    let global = if has_global { Some(Rc::new(parse_one(&doc, &prepare, "")?)) } else { None };

    let mut set = RuleSet { global, rules: Vec::new(), needs_route: false, needs_host: false, needs_cluster: false };
    for (i, rule) in rules.into_iter().enumerate() {
        let at = format!("{RULES_KEY}[{i}]");
        let mut fields = parse_object(rule.get(), &at)?;
        let matcher = take_matcher(&mut fields, &at)?;
        let mut merged = doc.clone();
        merged.extend(fields);
        let config = parse_one(&merged, &prepare, &at)?;
        set.needs_route |= matcher.needs_route();
        set.needs_host |= matcher.needs_host();
        set.needs_cluster |= matcher.needs_cluster();
        set.rules.push((matcher, Rc::new(config)));
    }
    Ok(set)
}

/// An object's fields; empty text and `null` count as `{}`.
fn parse_object<'a>(text: &'a str, at: &str) -> Result<Fields<'a>> {
    if text.trim().is_empty() {
        return Ok(Fields::new());
    }
    Ok(parse_at::<Option<Fields<'a>>>(text, at, "a JSON object")?.unwrap_or_default())
}

fn parse_at<'a, T: serde::Deserialize<'a>>(text: &'a str, at: &str, expected: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        let reason = if e.is_syntax() || e.is_eof() {
            format!("not valid JSON: {e}")
        } else {
            format!("expected {expected}: {e}")
        };
        Error::config(at, reason)
    })
}

fn parse_one<C, F>(fields: &Fields<'_>, prepare: &F, at: &str) -> Result<C>
where
    C: DeserializeOwned,
    F: Fn(&mut C) -> Result<(), String>,
{
    let text = to_object_text(fields);
    let mut config: C = serde_json::from_str(&text).map_err(|e| {
        let inner = json_path::path_at(&text, json_path::offset_of(&text, e.line(), e.column()));
        Error::config(join_path(at, &inner), strip_position(&e.to_string()))
    })?;
    prepare(&mut config).map_err(|message| {
        let (field, reason) = split_field(&message);
        Error::config(join_path(at, field), reason)
    })?;
    Ok(config)
}

fn to_object_text(fields: &Fields<'_>) -> String {
    let mut out = String::with_capacity(2 + fields.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>());
    out.push('{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key).unwrap_or_default());
        out.push(':');
        out.push_str(value.get());
    }
    out.push('}');
    out
}

/// serde_json appends " at line L column C", which points into the re-assembled text.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// `"consumers[1].name: duplicate name"` → (`consumers[1].name`, `duplicate name`); a message
/// without such a field prefix belongs to the whole config (`.`).
fn split_field(message: &str) -> (&str, &str) {
    let is_path = |p: &str| {
        !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
    };
    match message.split_once(": ") {
        Some((field, reason)) if is_path(field) => (field, reason),
        _ => (".", message),
    }
}

fn join_path(at: &str, inner: &str) -> String {
    match (at.is_empty(), inner == ".") {
        (true, _) => inner.to_string(),
        (false, true) => at.to_string(),
        (false, false) if inner.starts_with('[') => format!("{at}{inner}"),
        (false, false) => format!("{at}.{inner}"),
    }
}

fn take_matcher(fields: &mut Fields<'_>, at: &str) -> Result<Matcher> {
    let mut m = Matcher {
        routes: take_strings(fields, MATCH_ROUTE, at)?,
        route_prefixes: take_strings(fields, MATCH_ROUTE_PREFIX, at)?,
        domains: take_strings(fields, MATCH_DOMAIN, at)?.iter().map(|d| DomainPattern::parse(d)).collect(),
        services: Vec::new(),
    };
    for s in take_strings(fields, MATCH_SERVICE, at)? {
        m.services.push(ServicePattern::parse(&s).map_err(|r| Error::config(format!("{at}.{MATCH_SERVICE}"), r))?);
    }
    if m.is_empty() {
        return Err(Error::config(
            at,
            format!(
                "a rule needs at least one non-empty {MATCH_ROUTE}, {MATCH_ROUTE_PREFIX}, {MATCH_DOMAIN} or {MATCH_SERVICE}"
            ),
        ));
    }
    Ok(m)
}

fn take_strings(fields: &mut Fields<'_>, key: &str, at: &str) -> Result<Vec<String>> {
    let Some(raw) = fields.remove(key) else {
        return Ok(Vec::new());
    };
    let path = format!("{at}.{key}");
    let Ok(items) = serde_json::from_str::<Vec<String>>(raw.get()) else {
        return Err(Error::config(path, "expected a list of strings"));
    };
    if let Some(i) = items.iter().position(|s| s.trim().is_empty()) {
        return Err(Error::config(format!("{path}[{i}]"), "expected a non-empty string"));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Cfg {
        #[serde(default)]
        mock_enable: bool,
        #[serde(default)]
        names: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    struct Required {
        #[allow(dead_code)]
        token: String,
    }

    fn ok(_: &mut Cfg) -> Result<(), String> {
        Ok(())
    }

    fn facts<'a>(route: &'a str, host: &'a str) -> RequestFacts<'a> {
        RequestFacts { route_name: Some(route), host: Some(host), cluster_name: None }
    }

    #[test]
    fn empty_config_uses_defaults() {
        for raw in [&b""[..], b"  ", b"{}", b"null"] {
            let set = parse::<Cfg, _>(raw, ok).unwrap();
            assert_eq!(**set.global().unwrap(), Cfg { mock_enable: false, names: vec![] });
        }
    }

    #[test]
    fn rules_overlay_global_and_first_match_wins() {
        let raw = br#"{"names":["g"],"_rules_":[
            {"_match_route_":["r1"],"mockEnable":true},
            {"_match_domain_":["*.example.com"],"names":["d"]},
            {"_match_route_":["r1"],"names":["never"]}]}"#;
        let set = parse::<Cfg, _>(raw, ok).unwrap();
        assert_eq!(set.rule_count(), 3);
        let (index, r1) = set.select(&facts("r1", "x")).unwrap();
        assert_eq!(index, Some(0));
        assert_eq!(**r1, Cfg { mock_enable: true, names: vec!["g".into()] });
        let (_, dom) = set.select(&facts("r9", "a.example.com:80")).unwrap();
        assert_eq!(dom.names, vec!["d".to_string()]);
        let (index, global) = set.select(&facts("r9", "other")).unwrap();
        assert_eq!(index, None);
        assert_eq!(global.names, vec!["g".to_string()]);
        assert!(set.needs_route() && set.needs_host() && !set.needs_cluster());
    }

    #[test]
    fn rules_only_means_no_global() {
        let set = parse::<Cfg, _>(br#"{"_rules_":[{"_match_route_":["r1"],"mockEnable":true}]}"#, ok).unwrap();
        assert!(set.global().is_none());
        assert!(set.select(&facts("r2", "h")).is_none());
        assert!(set.select(&facts("r1", "h")).is_some());
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<Cfg, _>(br#"{"mockEnable":"yes"}"#, ok).unwrap_err();
        assert!(
            matches!(&e, Error::Config { path, reason } if path == "mockEnable" && reason.contains("boolean")),
            "{e}"
        );
        let e = parse::<Cfg, _>(br#"{"_rules_":[{"_match_route_":["a"]},{"_match_route_":["b"],"names":[1]}]}"#, ok)
            .unwrap_err();
        assert!(matches!(&e, Error::Config { path, .. } if path == "_rules_[1].names[0]"), "{e}");
        let e = parse::<Required, _>(br#"{"other":1}"#, |_| Ok(())).unwrap_err();
        assert!(
            matches!(&e, Error::Config { path, reason } if path == "." && reason.contains("missing field `token`")),
            "{e}"
        );
        let e = parse::<Cfg, _>(br#"{"_rules_":[{"mockEnable":true}]}"#, ok).unwrap_err();
        assert!(matches!(&e, Error::Config { path, .. } if path == "_rules_[0]"), "{e}");
        let e = parse::<Cfg, _>(br#"{"_rules_":[{"_match_domain_":["a"],"typo":1}]}"#, ok).unwrap_err();
        assert!(
            matches!(&e, Error::Config { path, reason } if path == "_rules_[0].typo" && reason.contains("unknown field")),
            "{e}"
        );
        let e = parse::<Cfg, _>(b"[1]", ok).unwrap_err();
        assert!(e.to_string().contains("expected a JSON object"), "{e}");
        let e = parse::<Cfg, _>(b"{", ok).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }

    #[test]
    fn prepare_errors_refuse_with_rule_path() {
        let refuse = |c: &mut Cfg| {
            if c.mock_enable { Err("mock not allowed".to_string()) } else { Ok(()) }
        };
        let e = parse::<Cfg, _>(br#"{"_rules_":[{"_match_route_":["a"],"mockEnable":true}]}"#, refuse).unwrap_err();
        assert_eq!(e, Error::config("_rules_[0]", "mock not allowed"));
        let by_field = |_: &mut Cfg| Err("names[1]: duplicate name".to_string());
        let e = parse::<Cfg, _>(br#"{"_rules_":[{"_match_route_":["a"]}]}"#, by_field).unwrap_err();
        assert_eq!(e, Error::config("_rules_[0].names[1]", "duplicate name"));
        let plain = |_: &mut Cfg| Err("two things are wrong: a and b".to_string());
        assert_eq!(parse::<Cfg, _>(b"{}", plain).unwrap_err(), Error::config(".", "two things are wrong: a and b"));
    }
}
