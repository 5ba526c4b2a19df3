//! The test cluster itself: it starts, serves CRDs, and several run side by side.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;
use wasmplug_testenv::TestCluster;

const WIDGET_CRD: &str = r#"
# a comment, then two documents: only the CRD is applied
apiVersion: v1
kind: ConfigMap
metadata:
  name: ignored
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.testenv.wasmplug.io
spec:
  group: testenv.wasmplug.io
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer, minimum: 1}
"#;

fn widgets(cluster: &TestCluster, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "testenv.wasmplug.io".into(),
        version: "v1".into(),
        api_version: "testenv.wasmplug.io/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    Api::namespaced_with(cluster.client(), ns, &ar)
}

async fn start_and_use(tag: &str) {
    let started = Instant::now();
    let cluster = TestCluster::start().await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{tag}: TestCluster::start took {:?} ({})", started.elapsed(), cluster.base_url());
    assert!(cluster.kubeconfig_path().is_file());
    assert_eq!(cluster.get_text("/readyz?exclude=informer-sync").await.unwrap().trim(), "ok");

    let installed = cluster.install_crds(WIDGET_CRD).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(installed, vec!["widgets.testenv.wasmplug.io".to_string()]);

    let api = widgets(&cluster, "no-such-namespace");
    let ok: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "testenv.wasmplug.io/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"size": 3}
    }))
    .unwrap();
    api.create(&PostParams::default(), &ok).await.unwrap();
    assert_eq!(api.get("w").await.unwrap().data["spec"]["size"], 3);

    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "testenv.wasmplug.io/v1", "kind": "Widget",
        "metadata": {"name": "bad"}, "spec": {"size": 0}
    }))
    .unwrap();
    let err = api.create(&PostParams::default(), &bad).await.unwrap_err().to_string();
    assert!(err.contains("spec.size"), "{err}");
}

#[tokio::test]
async fn starts_serves_crds_and_validates() {
    start_and_use("single").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_run_side_by_side() {
    tokio::join!(start_and_use("a"), start_and_use("b"), start_and_use("c"));
}

#[tokio::test]
async fn processes_stop_on_drop() {
    let cluster = TestCluster::start().await.unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.base_url().to_string();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    drop(cluster);
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "{url} still answers");
}
