//! Every built module carries its metadata and config JSON Schema in the `wasmplug.plugin`
//! custom section, readable without running it, and the schema agrees with the config parser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use wasmplug_contract::PLUGIN_SECTION as SECTION;
use wasmplug_testkit::{Envoy, EnvoyConfig, WasmFilter, wasm};

const PLUGINS: [&str; 7] =
    ["hello-world", "http-call", "request-block", "basic-auth", "key-auth", "custom-response", "transformer"];

fn plugin_section(name: &str) -> Value {
    let bytes = std::fs::read(wasm::plugin_module(name)).unwrap();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        if let wasmparser::Payload::CustomSection(section) = payload.unwrap()
            && section.name() == SECTION
        {
            return serde_json::from_slice(section.data()).unwrap();
        }
    }
    panic!("{name}: no `{SECTION}` custom section");
}

#[test]
fn every_plugin_embeds_metadata_and_a_schema() {
    for name in PLUGINS {
        let info = plugin_section(name);
        assert_eq!(info["name"], name);
        assert_eq!(info["version"], env!("CARGO_PKG_VERSION"), "{name}");
        let description = info["description"].as_str().unwrap_or_default();
        assert!(description.len() > 10 && description != "TODO", "{name}: description {description:?}");
        assert!(["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"].contains(&info["phase"].as_str().unwrap()), "{name}");
        let schema = &info["configSchema"];
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
        assert_eq!(schema["type"], "object", "{name}");
        assert_eq!(schema["additionalProperties"], false, "{name}: unknown fields must be refused");
        assert!(schema["properties"].as_object().is_some_and(|p| !p.is_empty()), "{name}");
        jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{name}: invalid schema: {e}"));
    }
}

/// The schema and the plugin (in Envoy) accept and refuse the same configurations.
#[test]
fn schema_and_parser_agree() {
    let cases: [(&str, Value); 6] = [
        ("hello-world", json!({})),
        ("hello-world", json!({"mockEnable": true})),
        ("hello-world", json!({"mockEnable": "yes"})),
        ("hello-world", json!({"mock_enable": true})),
        ("custom-response", json!({"status_code": 418, "body": "teapot"})),
        ("custom-response", json!({"status_code": "418"})),
    ];
    for (name, config) in cases {
        let schema = plugin_section(name)["configSchema"].clone();
        let by_schema = jsonschema::is_valid(&schema, &config);
        let filter = WasmFilter::new(name, wasm::plugin_module(name)).configuration(config.to_string());
        let by_plugin = match Envoy::start(EnvoyConfig::proxy_to(1).filter(filter)) {
            Ok(_envoy) => true,
            Err(log) => {
                assert!(log.contains("invalid configuration at"), "{name} {config}: {log}");
                false
            }
        };
        assert_eq!(by_schema, by_plugin, "{name} {config}: schema says {by_schema}, plugin says {by_plugin}");
    }
}
