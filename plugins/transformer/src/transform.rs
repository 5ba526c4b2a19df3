//! Runs the rules of one direction over headers and query parameters (headers phase), and
//! turns their body items into [`BodyOp`]s for the body phase.

use serde_json::Value;

use crate::config::{Item, MapSource, Operate, Rule};
use crate::headers::{self, Headers};
use crate::json_body::{self, BodyOp, parse_path};
use crate::query::Query;

/// The result of the headers phase.
#[derive(Debug, Default, PartialEq)]
pub struct HeadersPhase {
    /// The edited headers.
    pub headers: Headers,
    /// The new `:path`, when query parameters changed.
    pub path: Option<String>,
    /// Body edits, in rule order, for the body phase.
    pub body_ops: Vec<BodyOp>,
}

/// Applies `rules` in order. Within a rule, headers come first, then query parameters, then
/// body fields. `path` is the request `:path` (`None` for a response: no query parameters).
/// A `map` into the body reads its header/query source here, at its place in the rule order.
pub fn headers_phase(rules: &[Rule], original: &[(String, String)], path: Option<&str>) -> HeadersPhase {
    let mut hs: Headers = original.to_vec();
    let mut query = path.map(Query::parse);
    let mut body_ops = Vec::new();
    for rule in rules {
        for item in &rule.headers {
            header_item(rule, item, &mut hs, query.as_ref());
        }
        if let Some(q) = query.as_mut() {
            for item in &rule.querys {
                query_item(rule, item, q, &hs);
            }
        }
        for item in &rule.body {
            if let Some(op) = body_item(rule, item, &hs, query.as_ref()) {
                body_ops.push(op);
            }
        }
    }
    let new_path = match (path, query) {
        (Some(old), Some(q)) => Some(q.to_path()).filter(|new| new != old),
        _ => None,
    };
    HeadersPhase { headers: hs, path: new_path, body_ops }
}

fn text(value: Option<&crate::config::Scalar>) -> String {
    value.map(crate::config::Scalar::text).unwrap_or_default()
}

/// Values of `key` in the rule's map source (a body source yields nothing here).
fn source_values(rule: &Rule, key: &str, hs: &Headers, query: Option<&Query>) -> Vec<String> {
    match rule.map_source {
        Some(MapSource::Headers) => headers::values(hs, key),
        Some(MapSource::Querys) => query.map(|q| q.values(key)).unwrap_or_default(),
        Some(MapSource::Body) | None => Vec::new(),
    }
}

fn header_item(rule: &Rule, item: &Item, hs: &mut Headers, query: Option<&Query>) {
    let key = item.key.as_deref().unwrap_or_default();
    match rule.operate {
        Operate::Remove => headers::remove(hs, key),
        Operate::Rename => headers::rename(
            hs,
            item.old_key.as_deref().unwrap_or_default(),
            item.new_key.as_deref().unwrap_or_default(),
        ),
        Operate::Replace => headers::replace(hs, key, &text(item.new_value.as_ref())),
        Operate::Add => headers::add(hs, key, &text(item.value.as_ref())),
        Operate::Append => headers::append(hs, key, &text(item.append_value.as_ref())),
        Operate::Map => {
            let (from, to) = (item.from_key.as_deref().unwrap_or_default(), item.to_key.as_deref().unwrap_or_default());
            if rule.map_source == Some(MapSource::Headers) && from == to {
                return;
            }
            let values: Vec<String> =
                source_values(rule, from, hs, query).into_iter().filter(|v| headers::valid_value(v)).collect();
            if !values.is_empty() {
                headers::set(hs, to, &values);
            }
        }
    }
}

fn query_item(rule: &Rule, item: &Item, q: &mut Query, hs: &Headers) {
    let key = item.key.as_deref().unwrap_or_default();
    match rule.operate {
        Operate::Remove => q.remove(key),
        Operate::Rename => {
            q.rename(item.old_key.as_deref().unwrap_or_default(), item.new_key.as_deref().unwrap_or_default())
        }
        Operate::Replace => q.replace(key, &text(item.new_value.as_ref())),
        Operate::Add => q.add(key, &text(item.value.as_ref())),
        Operate::Append => q.append(key, &text(item.append_value.as_ref())),
        Operate::Map => {
            let (from, to) = (item.from_key.as_deref().unwrap_or_default(), item.to_key.as_deref().unwrap_or_default());
            if rule.map_source == Some(MapSource::Querys) && from == to {
                return;
            }
            let values = source_values(rule, from, hs, Some(q));
            if !values.is_empty() {
                q.set(to, &values);
            }
        }
    }
}

fn body_item(rule: &Rule, item: &Item, hs: &Headers, query: Option<&Query>) -> Option<BodyOp> {
    let path = || parse_path(item.key.as_deref().unwrap_or_default());
    let typed = |value: Option<&crate::config::Scalar>| {
        json_body::typed_value(&text(value), item.value_type)
            .map_err(|e| log::debug!("transformer: skipping a body item: {e}"))
            .ok()
    };
    Some(match rule.operate {
        Operate::Remove => BodyOp::Remove(path()),
        Operate::Rename => BodyOp::Rename(
            parse_path(item.old_key.as_deref().unwrap_or_default()),
            parse_path(item.new_key.as_deref().unwrap_or_default()),
        ),
        Operate::Replace => BodyOp::Replace(path(), typed(item.new_value.as_ref())?),
        Operate::Add => BodyOp::Add(path(), typed(item.value.as_ref())?),
        Operate::Append => BodyOp::Append(path(), typed(item.append_value.as_ref())?),
        Operate::Map => {
            let (from, to) = (item.from_key.as_deref().unwrap_or_default(), item.to_key.as_deref().unwrap_or_default());
            if rule.map_source == Some(MapSource::Body) {
                BodyOp::Copy(parse_path(from), parse_path(to))
            } else {
                let mut values = source_values(rule, from, hs, query);
                let value = match values.len() {
                    0 => return None,
                    1 => Value::String(values.pop().unwrap_or_default()),
                    _ => Value::Array(values.into_iter().map(Value::String).collect()),
                };
                BodyOp::Set(parse_path(to), value)
            }
        }
    })
}

/// Whether the headers announce a JSON body that is not compressed
/// (`application/json`, or any `+json` type).
pub fn is_json_body(hs: &[(String, String)]) -> bool {
    let encoding = headers::values(hs, "content-encoding");
    if encoding.iter().any(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity")) {
        return false;
    }
    let content_type = headers::values(hs, "content-type").into_iter().next().unwrap_or_default();
    let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn rules(json: &str) -> Vec<Rule> {
        let mut c: Config = serde_json::from_str(json).unwrap();
        crate::validate::validate(&mut c).unwrap();
        if c.req_rules.is_empty() { c.resp_rules } else { c.req_rules }
    }

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn brief_example_on_headers() {
        let rules = rules(
            r#"{"reqRules": [
            {"operate": "remove", "headers": [{"key": "X-Remove"}], "querys": [{"key": "debug"}], "body": [{"key": "password"}]},
            {"operate": "rename", "headers": [{"oldKey": "x-old", "newKey": "x-new"}]},
            {"operate": "replace", "headers": [{"key": "x-env", "newValue": "prod"}]},
            {"operate": "add", "headers": [{"key": "x-added", "value": 1}], "body": [{"key": "meta.source", "value": "gateway", "value_type": "string"}]},
            {"operate": "append", "headers": [{"key": "x-list", "appendValue": "b"}]},
            {"operate": "map", "mapSource": "headers", "headers": [{"fromKey": "x-user", "toKey": "x-user-copy"}]}
        ]}"#,
        );
        let original = h(&[
            (":path", "/p?debug=1&a=%2F"),
            ("x-remove", "1"),
            ("x-old", "o"),
            ("x-env", "dev"),
            ("x-list", "a"),
            ("x-user", "u1"),
        ]);
        let out = headers_phase(&rules, &original, Some("/p?debug=1&a=%2F"));
        assert_eq!(
            out.headers,
            h(&[
                (":path", "/p?debug=1&a=%2F"),
                ("x-new", "o"),
                ("x-list", "a"),
                ("x-user", "u1"),
                ("x-env", "prod"),
                ("x-added", "1"),
                ("x-list", "b"),
                ("x-user-copy", "u1"),
            ])
        );
        assert_eq!(out.path.as_deref(), Some("/p?a=%2F"));
        assert_eq!(
            out.body_ops,
            vec![
                BodyOp::Remove(vec!["password".into()]),
                BodyOp::Add(vec!["meta".into(), "source".into()], json!("gateway")),
            ]
        );
    }

    #[test]
    fn unchanged_query_keeps_the_path() {
        let rules = rules(r#"{"reqRules": [{"operate": "remove", "querys": [{"key": "x"}]}]}"#);
        assert_eq!(headers_phase(&rules, &[], Some("/p?a=1")).path, None);
        assert_eq!(headers_phase(&rules, &[], None).path, None);
    }

    #[test]
    fn rules_run_in_the_given_order() {
        // add then remove: gone; remove then add: present.
        let rules = rules(
            r#"{"reqRules": [
            {"operate": "add", "headers": [{"key": "a", "value": "1"}]},
            {"operate": "remove", "headers": [{"key": "a"}, {"key": "b"}]},
            {"operate": "add", "headers": [{"key": "b", "value": "2"}]}
        ]}"#,
        );
        let out = headers_phase(&rules, &h(&[("b", "0")]), None);
        assert_eq!(out.headers, h(&[("b", "2")]));
    }

    #[test]
    fn maps_between_sources() {
        let rules = rules(
            r#"{"reqRules": [
            {"operate": "map", "mapSource": "querys", "headers": [{"fromKey": "uid", "toKey": "x-uid"}],
             "body": [{"fromKey": "uid", "toKey": "user.id"}, {"fromKey": "tag", "toKey": "tags"}]},
            {"operate": "map", "mapSource": "headers", "querys": [{"fromKey": "X-Tenant", "toKey": "tenant"}],
             "body": [{"fromKey": "x-tenant", "toKey": "tenant"}, {"fromKey": "x-none", "toKey": "none"}]},
            {"operate": "remove", "headers": [{"key": "x-tenant"}]},
            {"operate": "map", "mapSource": "headers", "body": [{"fromKey": "x-tenant", "toKey": "late"}]},
            {"operate": "map", "mapSource": "body", "body": [{"fromKey": "a.b", "toKey": "c"}]}
        ]}"#,
        );
        let out = headers_phase(&rules, &h(&[("x-tenant", "t 1")]), Some("/p?uid=42&tag=a&tag=b"));
        assert_eq!(out.headers, h(&[("x-uid", "42")]));
        assert_eq!(out.path.as_deref(), Some("/p?uid=42&tag=a&tag=b&tenant=t%201"));
        let p = |s: &str| parse_path(s);
        assert_eq!(
            out.body_ops,
            vec![
                BodyOp::Set(p("user.id"), json!("42")),
                BodyOp::Set(p("tags"), json!(["a", "b"])),
                BodyOp::Set(p("tenant"), json!("t 1")),
                BodyOp::Copy(p("a.b"), p("c")),
            ]
        );
    }

    #[test]
    fn typed_body_values() {
        let rules = rules(
            r#"{"respRules": [
            {"operate": "replace", "body": [{"key": "n", "newValue": 5, "value_type": "number"}]},
            {"operate": "append", "body": [{"key": "l", "appendValue": "{\"a\":true}", "value_type": "object"}]}
        ]}"#,
        );
        let out = headers_phase(&rules, &[], None);
        assert_eq!(
            out.body_ops,
            vec![BodyOp::Replace(parse_path("n"), json!(5)), BodyOp::Append(parse_path("l"), json!({"a": true}))]
        );
    }

    #[test]
    fn json_detection() {
        assert!(is_json_body(&h(&[("content-type", "application/json")])));
        assert!(is_json_body(&h(&[("content-type", "Application/JSON; charset=utf-8")])));
        assert!(is_json_body(&h(&[("content-type", "application/problem+json")])));
        assert!(is_json_body(&h(&[("content-type", "application/json"), ("content-encoding", "identity")])));
        assert!(!is_json_body(&h(&[("content-type", "application/json"), ("content-encoding", "gzip")])));
        assert!(!is_json_body(&h(&[("content-type", "text/plain")])));
        assert!(!is_json_body(&h(&[("content-type", "application/x-www-form-urlencoded")])));
        assert!(!is_json_body(&[]));
    }
}
