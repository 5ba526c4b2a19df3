//! `wasmplug validate`: reads a config file and checks it with `wasmplug-validate` (shared with
//! the controller).

use anyhow::{Context, Result, bail};
use serde_json::Value;
pub use wasmplug_validate::Violation;
use wasmplug_validate::{Outcome, validate_against as check};

/// Reads a config file: JSON, or YAML (serde-saphyr: maintained, what kube 5 uses, and it bounds
/// alias expansion; serde_yaml is deprecated upstream).
pub fn read_config(path: &std::path::Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Ok(v) = serde_json::from_str(&text) {
        return Ok(v);
    }
    serde_saphyr::from_str(&text).with_context(|| format!("{} is neither JSON nor YAML", path.display()))
}

/// Validates, or fails when there is no schema (never a silent pass).
pub fn validate_against(schema: Option<&Value>, source: &str, config: &Value) -> Result<Vec<Violation>> {
    match check(schema, config)? {
        Outcome::Checked(violations) => Ok(violations),
        Outcome::NoSchema => bail!(
            "{source} has no config schema (no spec.yaml configSchema, no `wasmplug.plugin` section): cannot validate"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_schema_is_a_failure() {
        assert!(validate_against(None, "x.wasm", &json!({})).unwrap_err().to_string().contains("no config schema"));
    }

    #[test]
    fn violations_come_from_the_shared_validator() {
        let schema = json!({"type": "object", "properties": {"code": {"type": "integer"}}});
        let v = validate_against(Some(&schema), "x.wasm", &json!({"code": "x"})).unwrap();
        assert_eq!(v[0].pointer, "/code");
    }
}
