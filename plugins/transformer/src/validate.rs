//! Semantic checks of a parsed config (what serde cannot express), and normalisation of
//! header names to lowercase. Errors start with the offending field (`reqRules[1].headers[0].newKey:
//! required ...`), which the SDK reports as ``invalid configuration at `<field>` ``.

use crate::config::{Config, Item, MapSource, Operate, Rule};
use crate::headers;
use crate::json_body::{parse_path, typed_value};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Headers,
    Querys,
    Body,
}

pub fn validate(config: &mut Config) -> Result<(), String> {
    if config.req_rules.is_empty() && config.resp_rules.is_empty() {
        return Err("at least one of `reqRules` and `respRules` must have a rule".into());
    }
    for (i, rule) in config.req_rules.iter_mut().enumerate() {
        check_rule(rule, &format!("reqRules[{i}]"), false)?;
    }
    for (i, rule) in config.resp_rules.iter_mut().enumerate() {
        check_rule(rule, &format!("respRules[{i}]"), true)?;
    }
    Ok(())
}

fn operate_name(operate: Operate) -> &'static str {
    match operate {
        Operate::Remove => "remove",
        Operate::Rename => "rename",
        Operate::Replace => "replace",
        Operate::Add => "add",
        Operate::Append => "append",
        Operate::Map => "map",
    }
}

fn check_rule(rule: &mut Rule, at: &str, response: bool) -> Result<(), String> {
    let op = operate_name(rule.operate);
    if response && !rule.querys.is_empty() {
        return Err(format!("{at}.querys: query parameters can only be changed in reqRules"));
    }
    match (rule.operate, rule.map_source) {
        (Operate::Map, None) => {
            return Err(format!("{at}.mapSource: required when operate is `map` (headers, querys or body)"));
        }
        (Operate::Map, Some(MapSource::Querys)) if response => {
            return Err(format!("{at}.mapSource: `querys` is only available in reqRules"));
        }
        (Operate::Map, Some(MapSource::Body)) if !rule.headers.is_empty() || !rule.querys.is_empty() => {
            return Err(format!(
                "{at}.mapSource: `body` can only be mapped into `body` (headers and query parameters \
                 are forwarded before the body is read)"
            ));
        }
        (Operate::Map, _) => {}
        (_, Some(_)) => return Err(format!("{at}.mapSource: only used when operate is `map`, not `{op}`")),
        (_, None) => {}
    }
    if rule.headers.is_empty() && rule.querys.is_empty() && rule.body.is_empty() {
        return Err(format!("{at}: a rule needs at least one item in `headers`, `querys` or `body`"));
    }
    let (operate, source) = (rule.operate, rule.map_source);
    let lists = [
        (Target::Headers, "headers", &mut rule.headers),
        (Target::Querys, "querys", &mut rule.querys),
        (Target::Body, "body", &mut rule.body),
    ];
    for (target, name, items) in lists {
        for (j, item) in items.iter_mut().enumerate() {
            check_item(item, &format!("{at}.{name}[{j}]"), operate, source, target)?;
        }
    }
    Ok(())
}

/// The item fields an operation requires (every other key/value field is refused).
fn required(operate: Operate) -> &'static [&'static str] {
    match operate {
        Operate::Remove => &["key"],
        Operate::Rename => &["oldKey", "newKey"],
        Operate::Replace => &["key", "newValue"],
        Operate::Add => &["key", "value"],
        Operate::Append => &["key", "appendValue"],
        Operate::Map => &["fromKey", "toKey"],
    }
}

fn check_item(
    item: &mut Item,
    at: &str,
    operate: Operate,
    source: Option<MapSource>,
    target: Target,
) -> Result<(), String> {
    let op = operate_name(operate);
    let wanted = required(operate);
    let present = [
        ("key", item.key.is_some()),
        ("oldKey", item.old_key.is_some()),
        ("newKey", item.new_key.is_some()),
        ("newValue", item.new_value.is_some()),
        ("value", item.value.is_some()),
        ("appendValue", item.append_value.is_some()),
        ("fromKey", item.from_key.is_some()),
        ("toKey", item.to_key.is_some()),
    ];
    for (field, is_set) in present {
        match (wanted.contains(&field), is_set) {
            (true, false) => return Err(format!("{at}.{field}: required when operate is `{op}`")),
            (false, true) => return Err(format!("{at}.{field}: not used when operate is `{op}`")),
            _ => {}
        }
    }
    // Names of the rule's target; `fromKey` names something of the map source.
    let from_target = match source {
        Some(MapSource::Headers) => Target::Headers,
        Some(MapSource::Querys) => Target::Querys,
        Some(MapSource::Body) => Target::Body,
        None => target,
    };
    for (field, key, kind) in [
        ("key", &mut item.key, target),
        ("oldKey", &mut item.old_key, target),
        ("newKey", &mut item.new_key, target),
        ("toKey", &mut item.to_key, target),
        ("fromKey", &mut item.from_key, from_target),
    ] {
        if let Some(key) = key {
            check_key(key, &format!("{at}.{field}"), kind)?;
        }
    }
    let values = [("newValue", &item.new_value), ("value", &item.value), ("appendValue", &item.append_value)];
    for (field, value) in values {
        let Some(value) = value else { continue };
        let text = value.text();
        match target {
            Target::Headers if !headers::valid_value(&text) => {
                return Err(format!("{at}.{field}: a header value cannot contain CR, LF or NUL"));
            }
            Target::Body => {
                typed_value(&text, item.value_type).map_err(|e| format!("{at}.{field}: {e}"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_key(key: &mut String, at: &str, kind: Target) -> Result<(), String> {
    match kind {
        Target::Headers => {
            *key = key.trim().to_ascii_lowercase();
            if key.starts_with(':') {
                return Err(format!("{at}: pseudo-headers such as `{key}` cannot be transformed"));
            }
            if !headers::valid_name(key) {
                return Err(format!("{at}: `{key}` is not a valid header name"));
            }
        }
        Target::Querys => {
            if key.is_empty() {
                return Err(format!("{at}: must not be empty"));
            }
        }
        Target::Body => {
            if parse_path(key).iter().any(String::is_empty) {
                return Err(format!("{at}: `{key}` is not a valid body path (empty segment)"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<Config, String> {
        let mut c: Config = serde_json::from_str(json).map_err(|e| format!("serde: {e}"))?;
        validate(&mut c).map(|()| c)
    }

    fn err(json: &str) -> String {
        check(json).unwrap_err()
    }

    #[test]
    fn accepts_the_documented_shape() {
        let c = check(
            r#"{"reqRules": [
            {"operate": "remove", "headers": [{"key": "X-Remove"}], "querys": [{"key": "debug"}], "body": [{"key": "password"}]},
            {"operate": "rename", "headers": [{"oldKey": "x-old", "newKey": "X-New"}]},
            {"operate": "replace", "headers": [{"key": "x-env", "newValue": "prod"}]},
            {"operate": "add", "headers": [{"key": "x-added", "value": "1"}], "body": [{"key": "meta.source", "value": "gateway", "value_type": "string"}]},
            {"operate": "append", "headers": [{"key": "x-list", "appendValue": "b"}]},
            {"operate": "map", "mapSource": "headers", "headers": [{"fromKey": "X-User", "toKey": "x-user-copy"}]}],
            "respRules": [{"operate": "add", "body": [{"key": "n", "value": 1, "value_type": "number"}]}]}"#,
        )
        .unwrap();
        assert_eq!(c.req_rules[0].headers[0].key.as_deref(), Some("x-remove"));
        assert_eq!(c.req_rules[1].headers[0].new_key.as_deref(), Some("x-new"));
        assert_eq!(c.req_rules[5].headers[0].from_key.as_deref(), Some("x-user"));
    }

    #[test]
    fn refusals_name_the_field() {
        assert!(err("{}").contains("at least one of `reqRules` and `respRules`"));
        let cases = [
            (
                r#"{"reqRules": [{"operate": "add", "headers": [{"key": "a", "value": "1"}]},
                    {"operate": "rename", "headers": [{"oldKey": "x-old"}]}]}"#,
                "reqRules[1].headers[0].newKey: required when operate is `rename`",
            ),
            (
                r#"{"reqRules": [{"operate": "remove", "headers": [{"key": "a", "value": "1"}]}]}"#,
                "reqRules[0].headers[0].value: not used when operate is `remove`",
            ),
            (
                r#"{"respRules": [{"operate": "remove", "querys": [{"key": "a"}]}]}"#,
                "respRules[0].querys: query parameters can only be changed in reqRules",
            ),
            (
                r#"{"reqRules": [{"operate": "map", "headers": [{"fromKey": "a", "toKey": "b"}]}]}"#,
                "reqRules[0].mapSource: required when operate is `map`",
            ),
            (
                r#"{"reqRules": [{"operate": "add", "mapSource": "headers", "headers": [{"key": "a", "value": "b"}]}]}"#,
                "reqRules[0].mapSource: only used when operate is `map`",
            ),
            (
                r#"{"respRules": [{"operate": "map", "mapSource": "querys", "headers": [{"fromKey": "a", "toKey": "b"}]}]}"#,
                "respRules[0].mapSource: `querys` is only available in reqRules",
            ),
            (
                r#"{"reqRules": [{"operate": "map", "mapSource": "body", "headers": [{"fromKey": "a", "toKey": "b"}]}]}"#,
                "reqRules[0].mapSource: `body` can only be mapped into `body`",
            ),
            (r#"{"reqRules": [{"operate": "remove"}]}"#, "reqRules[0]: a rule needs at least one item"),
            (
                r#"{"reqRules": [{"operate": "remove", "headers": [{"key": ":path"}]}]}"#,
                "reqRules[0].headers[0].key: pseudo-headers",
            ),
            (
                r#"{"reqRules": [{"operate": "remove", "headers": [{"key": "a b"}]}]}"#,
                "reqRules[0].headers[0].key: `a b` is not a valid header name",
            ),
            (
                r#"{"reqRules": [{"operate": "add", "headers": [{"key": "a", "value": "x\ny"}]}]}"#,
                "reqRules[0].headers[0].value: a header value cannot contain",
            ),
            (
                r#"{"reqRules": [{"operate": "remove", "querys": [{"key": ""}]}]}"#,
                "reqRules[0].querys[0].key: must not be empty",
            ),
            (
                r#"{"reqRules": [{"operate": "remove", "body": [{"key": "a..b"}]}]}"#,
                "reqRules[0].body[0].key: `a..b` is not a valid body path",
            ),
            (
                r#"{"reqRules": [{"operate": "add", "body": [{"key": "a", "value": "x", "value_type": "number"}]}]}"#,
                "reqRules[0].body[0].value: `x` is not a number",
            ),
            (
                r#"{"reqRules": [{"operate": "map", "mapSource": "headers", "body": [{"fromKey": "a b", "toKey": "x"}]}]}"#,
                "reqRules[0].body[0].fromKey: `a b` is not a valid header name",
            ),
        ];
        for (json, expected) in cases {
            let e = err(json);
            assert!(e.contains(expected), "{e} should contain {expected}");
        }
    }

    #[test]
    fn serde_refusals() {
        assert!(err(r#"{"reqRules": [{"operate": "dedupe", "headers": [{"key": "a"}]}]}"#).contains("unknown variant"));
        assert!(
            err(r#"{"reqRules": [{"operate": "add", "headers": [{"key": "a", "value": "1", "host_pattern": "x"}]}]}"#)
                .contains("unknown field")
        );
        assert!(err(r#"{"reqRules": [{"operate": "add", "headers": [{"key": 1, "value": "1"}]}]}"#).contains("serde"));
        assert!(err(r#"{"reqRules": [], "reroute": true}"#).contains("unknown field"));
    }

    #[test]
    fn scalar_values_are_text() {
        let c = check(r#"{"reqRules": [{"operate": "add", "headers": [{"key": "a", "value": true}, {"key": "b", "value": 1.5}]}]}"#)
            .unwrap();
        assert_eq!(c.req_rules[0].headers[0].value.as_ref().unwrap().text(), "true");
        assert_eq!(c.req_rules[0].headers[1].value.as_ref().unwrap().text(), "1.5");
    }
}
