//! Plugin metadata: the module's `wasmplug.plugin` custom section and Higress's `spec.yaml`.

use serde::Serialize;
use serde_json::{Value, json};
pub use wasmplug_contract::{AbiVersion, PLUGIN_SECTION, PluginMetadata};

use crate::error::{Error, Result};

/// Reads the `wasmplug.plugin` section without running the module. `Ok(None)` when the
/// module has no such section (not built with the SDK).
pub fn from_module(source_name: &str, wasm: &[u8]) -> Result<Option<PluginMetadata>> {
    let bad = |reason: String| Error::BadModule { source_name: source_name.to_string(), reason };
    crate::archive::check_wasm(source_name, wasm)?;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| bad(format!("cannot parse the module: {e}")))?;
        if let wasmparser::Payload::CustomSection(reader) = payload
            && reader.name() == PLUGIN_SECTION
        {
            let meta = serde_json::from_slice(reader.data()).map_err(|e| Error::BadMetadata {
                source_name: source_name.to_string(),
                reason: format!("section `{PLUGIN_SECTION}` is not the expected JSON: {e}"),
            })?;
            return Ok(Some(meta));
        }
    }
    Ok(None)
}

/// The proxy-wasm ABI version the module declares (its `proxy_abi_version_*` export), without
/// running it. `Ok(None)` when it declares none this project knows.
pub fn abi_version(source_name: &str, wasm: &[u8]) -> Result<Option<AbiVersion>> {
    let bad = |reason: String| Error::BadModule { source_name: source_name.to_string(), reason };
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::ExportSection(reader) =
            payload.map_err(|e| bad(format!("cannot parse the module: {e}")))?
        {
            for export in reader {
                let export = export.map_err(|e| bad(format!("cannot parse the module's exports: {e}")))?;
                if let Some(v) = AbiVersion::from_export(export.name) {
                    return Ok(Some(v));
                }
            }
        }
    }
    Ok(None)
}

/// Higress's `spec.yaml` (apiVersion 1.0.0): `info` + `spec.{phase,priority,configSchema.openAPIV3Schema}`.
pub fn to_spec_yaml(meta: &PluginMetadata) -> Result<String> {
    let mut info = json!({
        "category": meta.category.clone().unwrap_or_else(|| "custom".to_string()),
        "name": meta.name,
        "title": if meta.title.is_empty() { &meta.name } else { &meta.title },
        "description": meta.description,
        "version": meta.version,
    });
    if meta.description.is_empty()
        && let Some(o) = info.as_object_mut()
    {
        o.remove("description");
    }
    let mut spec = json!({ "phase": meta.phase, "priority": meta.priority });
    if let (Some(schema), Some(o)) = (&meta.config_schema, spec.as_object_mut()) {
        o.insert("configSchema".into(), json!({ "openAPIV3Schema": schema }));
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc {
        api_version: &'static str,
        info: Value,
        spec: Value,
    }
    serde_saphyr::to_string(&Doc { api_version: "1.0.0", info, spec })
        .map_err(|e| Error::BadMetadata { source_name: "spec.yaml".into(), reason: format!("cannot write YAML: {e}") })
}

/// Parses a `spec.yaml` (ours or Higress's). serde-saphyr's default budget bounds alias
/// expansion and nesting, so a hostile document cannot blow up memory.
pub fn from_spec_yaml(source_name: &str, text: &str) -> Result<PluginMetadata> {
    let bad = |reason: String| Error::BadMetadata { source_name: source_name.to_string(), reason };
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| bad(format!("not valid YAML: {e}")))?;
    let info = doc.get("info").cloned().unwrap_or(Value::Null);
    let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
    let text_of = |v: &Value, k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let priority = match spec.get("priority") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| bad("spec.priority is not an integer".into()))?,
        Some(Value::String(s)) => {
            s.trim().parse().map_err(|_| bad(format!("spec.priority `{s}` is not an integer")))?
        }
        Some(_) => return Err(bad("spec.priority is not an integer".into())),
    };
    let config_schema = spec.get("configSchema").and_then(|c| c.get("openAPIV3Schema")).cloned();
    Ok(PluginMetadata {
        name: text_of(&info, "name"),
        title: text_of(&info, "title"),
        version: text_of(&info, "version"),
        description: text_of(&info, "description"),
        phase: text_of(&spec, "phase"),
        priority,
        category: Some(text_of(&info, "category")).filter(|c| !c.is_empty()),
        config_schema: config_schema.filter(|s| !s.is_null()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PluginMetadata {
        PluginMetadata {
            name: "hello-world".into(),
            title: "Hello".into(),
            version: "0.1.0".into(),
            description: "says hello".into(),
            phase: "AUTHN".into(),
            priority: 320,
            category: None,
            config_schema: Some(json!({"type": "object", "properties": {"a": {"type": "string"}}})),
        }
    }

    #[test]
    fn spec_yaml_round_trip() {
        let yaml = to_spec_yaml(&sample()).unwrap();
        assert!(yaml.contains("apiVersion: 1.0.0"), "{yaml}");
        assert!(yaml.contains("openAPIV3Schema:"), "{yaml}");
        let back = from_spec_yaml("spec.yaml", &yaml).unwrap();
        assert_eq!(back, PluginMetadata { category: Some("custom".into()), ..sample() });
    }

    #[test]
    fn reads_higress_spec() {
        let text = "apiVersion: 1.0.0\ninfo:\n  category: auth\n  name: basic-auth\n  title: Basic Auth\n  version: 1.0.0\nspec:\n  phase: AUTHN\n  priority: '320'\n  configSchema:\n    openAPIV3Schema:\n      type: object\n      required: [allow]\n";
        let m = from_spec_yaml("spec.yaml", text).unwrap();
        assert_eq!((m.name.as_str(), m.priority, m.category.as_deref()), ("basic-auth", 320, Some("auth")));
        assert_eq!(m.config_schema.unwrap()["required"][0], "allow");
        let m = from_spec_yaml("spec.yaml", "apiVersion: 1.0.0\ninfo: {name: x}\n").unwrap();
        assert!(m.config_schema.is_none());
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 { "a".to_string() } else { format!("l{}", i - 1) };
            text.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(from_spec_yaml("spec.yaml", &text).is_err());
    }

    #[test]
    fn module_without_section() {
        assert_eq!(from_module("m", b"\0asm\x01\0\0\0").unwrap(), None);
        assert!(from_module("m", b"garbage!").is_err());
    }
}
