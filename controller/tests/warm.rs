//! Warm before publish: the delivery publishes a plugin's filter only once the module server can
//! serve its module, and keeps the previous filter while a new one's module cannot be served.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use sha2::{Digest, Sha256};
use wasmplug_controller::WasmPlugin;
use wasmplug_controller::operator::Serving;
use wasmplug_controller::operator::delivery::{Delivery, DeliveryOptions, GatewayAuth};
use wasmplug_controller::operator::metrics::Metrics;
use wasmplug_controller::render::ModuleSource;
use wasmplug_controller::resolve::{Resolved, ResolvedModule};

fn serving(generation: i64, path: &Path, content: &[u8]) -> Serving {
    let object: WasmPlugin = serde_json::from_value(json!({
        "apiVersion": "wasmplug.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": { "name": "a", "namespace": "gw", "generation": generation },
        "spec": { "url": "oci://r.example/a:1" },
    }))
    .unwrap();
    let module = ResolvedModule { image_digest: None, module_sha256: hex::encode(Sha256::digest(content)) };
    let resolved = Resolved { module, path: path.to_path_buf(), size: 0, schema: None, schema_source: None, abi: None };
    Serving { generation: Some(generation), object, resolved }
}

#[tokio::test]
async fn a_filter_goes_out_once_its_module_can_be_served() {
    let dir = tempfile::tempdir().unwrap();
    let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    let options = DeliveryOptions {
        xds_listen: "127.0.0.1:0".parse().unwrap(),
        modules_listen: "127.0.0.1:0".parse().unwrap(),
        auth: GatewayAuth::Plaintext,
        ..Default::default()
    };
    let metrics = Arc::new(Metrics::default());
    let delivery = Delivery::start(&options, &ModuleSource::default(), &metrics, &client).await.unwrap();
    let (one, two) = (dir.path().join("one.wasm"), dir.path().join("two.wasm"));
    let first = serving(1, &one, b"module one");
    let sha_one = first.resolved.module.module_sha256.clone();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut state = BTreeMap::from([("gw/a".to_string(), first)]);

    // The module file is not there yet: nothing goes out.
    delivery.publish(&state).unwrap();
    assert!(delivery.owner("gw.a").is_none());
    assert!(delivery.modules.modules().is_empty());
    assert!(delivery.holding_back(), "the controller publishes again until it can serve it");
    // A file with other bytes than its sha256 says is not served either.
    std::fs::write(&one, b"something else").unwrap();
    delivery.publish(&state).unwrap();
    assert!(delivery.owner("gw.a").is_none());

    // Once it holds the module: the filter and the module go out.
    std::fs::write(&one, b"module one").unwrap();
    delivery.publish(&state).unwrap();
    assert!(delivery.owner("gw.a").is_some());
    assert_eq!(delivery.modules.modules(), std::slice::from_ref(&sha_one));
    assert!(!delivery.holding_back());

    // Generation 2's module cannot be served: generation 1's filter and module stay.
    let second = serving(2, &two, b"module two");
    let object = second.object.clone();
    state.insert("gw/a".into(), second);
    delivery.publish(&state).unwrap();
    assert_eq!(delivery.modules.modules(), [sha_one]);
    let programmed = delivery.programmed(&object, Some(2), &now);
    assert_eq!(programmed.reason, "Pending", "{programmed:?}");
    assert!(programmed.message.contains("generation 2 is being delivered"), "{programmed:?}");

    std::fs::write(&two, b"module two").unwrap();
    delivery.publish(&state).unwrap();
    assert_eq!(delivery.modules.modules(), [hex::encode(Sha256::digest(b"module two"))]);
}
