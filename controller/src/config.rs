//! The plugin configuration a WasmPlugin stands for, in the form Higress's SDKs (and ours) read:
//! `defaultConfig` at top level plus `_rules_`, and its validation against the plugin's schema.

use serde_json::{Map, Value};
use wasmplug_validate::{MATCHERS, Outcome, RULES};

use crate::crd::{ConfigViolation, MatchRule, WasmPluginSpec};
use crate::error::Result;

/// At most this many violations are kept in status.
pub const MAX_VIOLATIONS: usize = 100;

/// The configuration document and, for each `_rules_` entry, the `matchRules` index it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub document: Value,
    pub rule_origin: Vec<usize>,
}

/// What validation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigCheck {
    Valid,
    Invalid(Vec<ConfigViolation>),
    /// The module and image carry no schema: the config could not be checked.
    NoSchema,
}

/// Higress's route name for an ingress entry: `namespace/name`, the plugin's namespace by default.
fn route_name(ingress: &str, namespace: &str) -> String {
    if ingress.contains('/') { ingress.to_string() } else { format!("{namespace}/{ingress}") }
}

fn rule_entry(rule: &MatchRule, namespace: &str) -> Map<String, Value> {
    let mut entry = rule.config.clone().unwrap_or_default();
    let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    if !rule.ingress.is_empty() {
        let routes = rule.ingress.iter().map(|i| route_name(i, namespace)).collect();
        entry.insert(wasmplug_contract::rules::MATCH_ROUTE.into(), strings(routes));
    }
    if !rule.domain.is_empty() {
        entry.insert("_match_domain_".into(), strings(rule.domain.clone()));
    }
    if !rule.service.is_empty() {
        entry.insert("_match_service_".into(), strings(rule.service.clone()));
    }
    entry
}

/// Folds `defaultConfig` and `matchRules` into one document, as Higress does: the default config
/// at top level (none with `defaultConfigDisable`), then `_rules_` in list order, without the
/// rules marked `configDisable`.
pub fn plugin_config(spec: &WasmPluginSpec, namespace: &str) -> PluginConfig {
    let mut doc =
        if spec.default_config_disable { Map::new() } else { spec.default_config.clone().unwrap_or_default() };
    let mut rules = Vec::new();
    let mut rule_origin = Vec::new();
    for (i, rule) in spec.match_rules.iter().enumerate().filter(|(_, r)| !r.config_disable) {
        rules.push(Value::Object(rule_entry(rule, namespace)));
        rule_origin.push(i);
    }
    // With the default disabled, `_rules_` (even empty) keeps unmatched requests untouched.
    if !rules.is_empty() || spec.default_config_disable {
        doc.insert(RULES.into(), Value::Array(rules));
    }
    PluginConfig { document: Value::Object(doc), rule_origin }
}

/// Maps a pointer in the document to the spec field the value was written in.
fn locate(pointer: &str, origin: &[usize]) -> (Option<u32>, String) {
    let Some(rest) = pointer.strip_prefix(&format!("/{RULES}/")) else {
        return (None, format!("/defaultConfig{pointer}"));
    };
    let (index, tail) = rest.split_once('/').map_or((rest, ""), |(i, t)| (i, t));
    let Some(&spec_index) = index.parse::<usize>().ok().and_then(|i| origin.get(i)) else {
        return (None, format!("/defaultConfig{pointer}"));
    };
    let rule = u32::try_from(spec_index).ok();
    let matcher = MATCHERS.iter().any(|m| tail == *m || tail.starts_with(&format!("{m}/")));
    if matcher {
        (rule, format!("/matchRules/{spec_index}"))
    } else if tail.is_empty() {
        (rule, format!("/matchRules/{spec_index}/config"))
    } else {
        (rule, format!("/matchRules/{spec_index}/config/{tail}"))
    }
}

/// Validates the default config and each rule's effective config against the plugin's schema.
/// Violations point into `spec` (`/defaultConfig/...`, `/matchRules/N/config/...`) and carry the
/// rule index; at most [`MAX_VIOLATIONS`] are returned.
pub fn check(spec: &WasmPluginSpec, namespace: &str, schema: Option<&Value>) -> Result<ConfigCheck> {
    let config = plugin_config(spec, namespace);
    let outcome = wasmplug_validate::validate_against(schema, &config.document)?;
    let found = match outcome {
        Outcome::NoSchema => return Ok(ConfigCheck::NoSchema),
        Outcome::Checked(v) if v.is_empty() => return Ok(ConfigCheck::Valid),
        Outcome::Checked(v) => v,
    };
    let mut out: Vec<ConfigViolation> = Vec::new();
    for v in found {
        let (rule_index, pointer) = locate(&v.pointer, &config.rule_origin);
        let item = ConfigViolation { rule_index, pointer, message: v.message };
        if !out.contains(&item) && out.len() < MAX_VIOLATIONS {
            out.push(item);
        }
    }
    Ok(ConfigCheck::Invalid(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn pointers_map_back_to_the_spec() {
        let origin = [0, 2];
        assert_eq!(locate("/code", &origin), (None, "/defaultConfig/code".into()));
        assert_eq!(locate("", &origin), (None, "/defaultConfig".into()));
        assert_eq!(locate("/_rules_/1/allow/0", &origin), (Some(2), "/matchRules/2/config/allow/0".into()));
        assert_eq!(locate("/_rules_/1", &origin), (Some(2), "/matchRules/2/config".into()));
        assert_eq!(locate("/_rules_/0/_match_route_", &origin), (Some(0), "/matchRules/0".into()));
    }
}
