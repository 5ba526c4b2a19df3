//! The managed CA (`--tls-ca-secret`): the CA is created once and reused by every later start,
//! gateway Secrets are filled and re-issued only when they are not current, and a real Envoy
//! with the files of its Secret is served by the servers using the controller's certificate.
//!
//! The API server of the test environment serves no core/v1, so Secrets are an in-memory
//! stand-in for `/api/v1/namespaces/*/secrets` (GET, POST, PUT) that records every write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use serde_json::{Value, json};
use wasmplug_controller::operator::certificates::ManagedCa;
use wasmplug_envoy::bootstrap::GatewayTls;
use wasmplug_testenv::gateway::{ControlPlane, Gateway, TIMEOUT, labels, wait_for};
use wasmplug_xds::ca::CertificateAuthority;
use wasmplug_xds::tls::pem_certificate_facts;

type Store = Arc<Mutex<BTreeMap<String, Value>>>;

/// Secrets in memory; `writes` gets "POST name" / "PUT name".
fn secrets_api(store: Store, writes: Arc<Mutex<Vec<String>>>) -> Client {
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let (store, writes) = (store.clone(), writes.clone());
        async move {
            use http_body_util::BodyExt;
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let status = |code: u16, reason: &str| json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason });
            let (code, reply) = match method.as_str() {
                "GET" => match store.lock().unwrap().get(&path) {
                    Some(s) => (200, s.clone()),
                    None => (404, status(404, "NotFound")),
                },
                "POST" => {
                    let mut s: Value = serde_json::from_slice(&body).unwrap();
                    let name = s["metadata"]["name"].as_str().unwrap().to_string();
                    let key = format!("{path}/{name}");
                    let mut store = store.lock().unwrap();
                    match store.entry(key) {
                        std::collections::btree_map::Entry::Occupied(_) => (409, status(409, "AlreadyExists")),
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            s["metadata"]["resourceVersion"] = json!("1");
                            writes.lock().unwrap().push(format!("POST {name}"));
                            slot.insert(s.clone());
                            (201, s)
                        }
                    }
                }
                "PUT" => {
                    let mut s: Value = serde_json::from_slice(&body).unwrap();
                    let name = s["metadata"]["name"].as_str().unwrap().to_string();
                    let mut store = store.lock().unwrap();
                    let old = store.get(&path).map(|o| o["metadata"]["resourceVersion"].clone());
                    if old.as_ref() != Some(&s["metadata"]["resourceVersion"]) {
                        (409, status(409, "Conflict"))
                    } else {
                        let next = old.and_then(|v| v.as_str().and_then(|v| v.parse::<u64>().ok())).unwrap_or(0) + 1;
                        s["metadata"]["resourceVersion"] = json!(next.to_string());
                        writes.lock().unwrap().push(format!("PUT {name}"));
                        store.insert(path, s.clone());
                        (200, s)
                    }
                }
                _ => (405, status(405, "MethodNotAllowed")),
            };
            let response = http::Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(reply.to_string().into_bytes()))
                .unwrap();
            Ok::<_, kube::Error>(response)
        }
    });
    Client::new(service, "default")
}

fn managed() -> ManagedCa {
    ManagedCa {
        namespace: "wasmplug-system".into(),
        ca_secret: "wasmplug-ca".into(),
        server_names: vec!["127.0.0.1".into()],
        gateway_secrets: [("edge-tls".to_string(), "edge-*".to_string())].into(),
    }
}

fn secret(store: &Store, name: &str) -> Secret {
    let path = format!("/api/v1/namespaces/wasmplug-system/secrets/{name}");
    serde_json::from_value(store.lock().unwrap().get(&path).cloned().expect(name)).unwrap()
}

fn data(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[test]
fn the_ca_is_kept_and_gateway_secrets_serve_a_real_envoy() {
    let store: Store = Arc::default();
    let writes: Arc<Mutex<Vec<String>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = rt.block_on(async { secrets_api(store.clone(), writes.clone()) });

    // First start: the CA Secret and the gateway Secret are created.
    let tls = rt.block_on(managed().start(client.clone())).unwrap();
    assert_eq!(*writes.lock().unwrap(), ["POST wasmplug-ca", "POST edge-tls"]);
    let ca = secret(&store, "wasmplug-ca");
    let gateway = secret(&store, "edge-tls");
    assert_eq!(gateway.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(data(&gateway, "ca.crt"), data(&ca, "ca.crt"));

    // A restart (or another replica): the same CA, nothing written.
    rt.block_on(managed().start(client.clone())).unwrap();
    assert_eq!(writes.lock().unwrap().len(), 2, "{:?}", writes.lock().unwrap());
    assert_eq!(data(&secret(&store, "wasmplug-ca"), "ca.crt"), data(&ca, "ca.crt"));

    // The gateway Secret asked for another node: re-issued in place.
    let mut other = managed();
    other.gateway_secrets = [("edge-tls".to_string(), "gw-9".to_string())].into();
    rt.block_on(other.start(client.clone())).unwrap();
    assert_eq!(writes.lock().unwrap().last().unwrap(), "PUT edge-tls");
    assert_ne!(data(&secret(&store, "edge-tls"), "tls.crt"), data(&gateway, "tls.crt"));
    // Back to edge-*, for the gateway below.
    rt.block_on(managed().start(client.clone())).unwrap();

    // A gateway certificate 30 days from its end (renewal starts 60 days before): re-issued by
    // the check the controller runs every hour.
    let authority = CertificateAuthority::from_pem(&data(&ca, "ca.crt"), &data(&ca, "ca.key")).unwrap();
    let month = Duration::from_secs(30 * 86_400);
    let short = authority.issue_gateway("edge-*", month).unwrap();
    {
        let mut store = store.lock().unwrap();
        let s = store.get_mut("/api/v1/namespaces/wasmplug-system/secrets/edge-tls").unwrap();
        s["data"]["tls.crt"] = serde_json::to_value(ByteString(short.cert_pem.into_bytes())).unwrap();
        s["data"]["tls.key"] = serde_json::to_value(ByteString(short.key_pem.into_bytes())).unwrap();
    }
    let before = writes.lock().unwrap().len();
    rt.block_on(managed().gateway_secrets(&client, &authority)).unwrap();
    assert_eq!(writes.lock().unwrap()[before..], ["PUT edge-tls".to_string()]);
    let gateway = secret(&store, "edge-tls");
    let (names, not_after) = pem_certificate_facts(data(&gateway, "tls.crt").as_bytes()).unwrap();
    assert_eq!(names, ["edge-*"]);
    assert!(not_after > SystemTime::now() + 10 * month, "a full year again");
    // Current now: the next check writes nothing.
    rt.block_on(managed().gateway_secrets(&client, &authority)).unwrap();
    assert_eq!(writes.lock().unwrap().len(), before + 1);
    drop(rt);

    // A real Envoy with the Secret's files, node id `edge-7f9c` (one of the Deployment's pods).
    let cp = ControlPlane::start_mtls_with(tls);
    let dir = tempfile::tempdir().unwrap();
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        std::fs::write(dir.path().join(key), data(&gateway, key)).unwrap();
    }
    let [hello] = <[String; 1]>::try_from(cp.allow(&["hello-world"])).unwrap();
    cp.update(vec![cp.plugin("hello", &hello, r#"{"mockEnable":true}"#)]);
    let files = GatewayTls::from_dir(dir.path().to_str().unwrap());
    let gw = Gateway::start(&cp.bootstrap_with("edge-7f9c", labels(&[]), 0, Some(files)));
    assert!(wait_for(TIMEOUT, || gw.get("/").text() == "hello world").is_some(), "{}", gw.logs());
    assert_eq!(cp.xds.plugin_status("hello").unwrap().acked(), ["edge-7f9c"]);
}
