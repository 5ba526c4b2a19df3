//! Validates plugin configurations against the plugin's JSON Schema, the way the SDK reads them:
//! the global config, then each `_rules_` entry's effective config (the global object overlaid
//! with the rule's own fields). Used by the `wasmplug validate` CLI and by the controller.
//!
//! A plugin without a schema gives [`Outcome::NoSchema`], never a pass.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use serde::Serialize;
use serde_json::{Map, Value};

pub use wasmplug_contract::rules::{MATCHERS, RULES};

/// The schema itself cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the plugin's schema is invalid: {0}")]
pub struct InvalidSchema(pub String);

/// One violation, at its JSON pointer in the document that was validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

/// The result of validating against what may or may not be a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The plugin has a schema; these are its violations (empty: valid).
    Checked(Vec<Violation>),
    /// The plugin carries no schema: nothing could be checked.
    NoSchema,
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn check(validator: &jsonschema::Validator, doc: &Value, out: &mut Vec<Violation>, locate: &dyn Fn(&str) -> String) {
    for e in validator.iter_errors(doc) {
        let path = e.instance_path().to_string();
        let v = Violation { pointer: locate(&path), message: e.to_string() };
        if !out.contains(&v) {
            out.push(v);
        }
    }
}

/// Compiled validators by schema text: a controller checks many objects against a few schemas.
static COMPILED: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = LazyLock::new(Default::default);

/// Schemas kept compiled at most; the cache starts over when full.
const MAX_COMPILED: usize = 64;

fn compiled(schema: &Value) -> Result<Arc<jsonschema::Validator>, InvalidSchema> {
    let key = schema.to_string();
    if let Some(v) = COMPILED.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(v);
    }
    let validator = Arc::new(jsonschema::validator_for(schema).map_err(|e| InvalidSchema(e.to_string()))?);
    if let Ok(mut m) = COMPILED.lock() {
        if m.len() >= MAX_COMPILED {
            m.clear();
        }
        m.insert(key, validator.clone());
    }
    Ok(validator)
}

/// Validates a Higress-format document: the global config and each rule's effective config
/// (global overlaid with the rule's fields, `_match_*` removed). Pointers name where the
/// offending value is written: `/_rules_/1/allow/0` for a rule's own field, `/allow/0` for an
/// inherited one (reported once).
pub fn validate(schema: &Value, config: &Value) -> Result<Vec<Violation>, InvalidSchema> {
    let validator = compiled(schema)?;
    let mut out = Vec::new();
    let Some(obj) = config.as_object() else {
        check(&validator, config, &mut out, &|p| p.to_string());
        return Ok(out);
    };
    let mut global: Map<String, Value> = obj.clone();
    let rules = global.remove(RULES);
    // As in the SDK: a document holding only `_rules_` leaves unmatched requests untouched.
    if !global.is_empty() || rules.is_none() {
        check(&validator, &Value::Object(global.clone()), &mut out, &|p| p.to_string());
    }
    let Some(rules) = rules else { return Ok(out) };
    let Some(rules) = rules.as_array() else {
        out.push(Violation { pointer: format!("/{RULES}"), message: "`_rules_` must be an array".into() });
        return Ok(out);
    };
    for (i, rule) in rules.iter().enumerate() {
        let base = format!("/{RULES}/{i}");
        let Some(rule) = rule.as_object() else {
            out.push(Violation { pointer: base, message: "a rule must be an object".into() });
            continue;
        };
        let mut matched = false;
        for m in MATCHERS {
            if let Some(v) = rule.get(m) {
                matched = true;
                let ok = v.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
                if !ok {
                    out.push(Violation {
                        pointer: format!("{base}/{m}"),
                        message: format!("`{m}` must be a non-empty array of strings"),
                    });
                }
            }
        }
        if !matched {
            out.push(Violation {
                pointer: base.clone(),
                message: format!("a rule needs one of {}", MATCHERS.join(", ")),
            });
        }
        let mut effective = global.clone();
        for (k, v) in rule {
            if !MATCHERS.contains(&k.as_str()) {
                effective.insert(k.clone(), v.clone());
            }
        }
        let locate = |p: &str| {
            let first = p.trim_start_matches('/').split('/').next().unwrap_or("");
            let own = !first.is_empty() && rule.keys().any(|k| escape(k) == first);
            if own || first.is_empty() { format!("{base}{p}") } else { p.to_string() }
        };
        check(&validator, &Value::Object(effective), &mut out, &locate);
    }
    Ok(out)
}

/// Validates when there is a schema; [`Outcome::NoSchema`] when there is none.
pub fn validate_against(schema: Option<&Value>, config: &Value) -> Result<Outcome, InvalidSchema> {
    match schema {
        Some(s) => validate(s, config).map(Outcome::Checked),
        None => Ok(Outcome::NoSchema),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "allow": {"type": "array", "items": {"type": "string", "minLength": 2}},
                "code": {"type": "integer", "minimum": 200}
            },
            "required": ["allow"]
        })
    }

    #[test]
    fn reports_global_and_rule_violations_with_pointers() {
        let config = json!({
            "allow": ["ok"],
            "code": 100,
            "_rules_": [
                {"_match_route_": ["r1"], "allow": ["fine"]},
                {"_match_domain_": ["*.x.com"], "allow": ["ok", "x"], "extra": 1},
                {"allow": ["ok"]},
                {"_match_service_": "svc"}
            ]
        });
        let v = validate(&schema(), &config).unwrap();
        let pointers: Vec<_> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/code"), "{v:#?}");
        assert!(pointers.contains(&"/_rules_/1/allow/1"), "{v:#?}");
        assert!(pointers.contains(&"/_rules_/1"), "additionalProperties on the rule: {v:#?}");
        assert!(pointers.contains(&"/_rules_/2"), "missing matcher: {v:#?}");
        assert!(pointers.contains(&"/_rules_/3/_match_service_"), "{v:#?}");
        assert_eq!(pointers.iter().filter(|p| **p == "/code").count(), 1, "inherited errors reported once: {v:#?}");
    }

    #[test]
    fn valid_configs_and_rules_only_documents_pass() {
        assert!(validate(&schema(), &json!({"allow": ["ab"]})).unwrap().is_empty());
        let rules_only = json!({"_rules_": [{"_match_route_": ["r"], "allow": ["ab"]}]});
        assert!(validate(&schema(), &rules_only).unwrap().is_empty());
        let missing = validate(&schema(), &json!({"_rules_": [{"_match_route_": ["r"]}]})).unwrap();
        assert_eq!(missing[0].pointer, "/_rules_/0", "{missing:#?}");
    }

    #[test]
    fn no_schema_is_its_own_outcome() {
        assert_eq!(validate_against(None, &json!({})), Ok(Outcome::NoSchema));
        assert_eq!(validate_against(Some(&schema()), &json!({"allow": []})), Ok(Outcome::Checked(vec![])));
    }

    #[test]
    fn a_broken_schema_is_an_error() {
        assert!(validate(&json!({"type": 12}), &json!({})).is_err());
    }
}
