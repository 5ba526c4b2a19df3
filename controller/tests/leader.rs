//! Leader election against the real API server. apiextensions-apiserver has no built-in
//! `coordination.k8s.io`, so the test serves Leases through a CRD of the same group, version and
//! kind: same paths, same resourceVersion compare-and-swap on update.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use wasmplug_controller::operator::leader::Election;
use wasmplug_testenv::TestCluster;

fn election(identity: &str, secs: u64) -> Election {
    Election {
        namespace: "wasmplug-system".into(),
        name: "wasmplug-controller".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(secs),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_takeover_after_expiry() {
    let cluster = TestCluster::start().await.expect("API server (run `make apiserver-tools`)");
    cluster.install_crds(&wasmplug_testenv::stand_in_crd("coordination.k8s.io", "Lease", "leases")).await.unwrap();
    let client = cluster.client();
    // Generous durations: on a busy machine one API call can take a good part of a second.
    let (a, b) = (election("replica-a", 6), election("replica-b", 6));

    assert!(a.try_acquire(&client).await.unwrap(), "a free Lease is taken");
    assert!(!b.try_acquire(&client).await.unwrap(), "a held Lease is not");
    assert!(a.try_acquire(&client).await.unwrap(), "the holder renews");

    // b waits while a renews, and takes over once a stops renewing.
    let b2 = b.clone();
    let c2 = client.clone();
    let waiter = tokio::spawn(async move { b2.acquire(&c2).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let renewed = Instant::now();
    assert!(a.try_acquire(&client).await.unwrap());
    assert!(!waiter.is_finished(), "b must not lead while a renews");
    tokio::time::timeout(Duration::from_secs(20), waiter).await.expect("b takes the expired Lease").unwrap();
    assert!(renewed.elapsed() >= Duration::from_secs(5), "not before a's renewal expired");
    let lease = Api::<Lease>::namespaced(client.clone(), "wasmplug-system").get("wasmplug-controller").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(!a.try_acquire(&client).await.unwrap(), "a lost it");

    // The holder steps down when someone else holds the Lease.
    let hold = tokio::spawn({
        let (b, client) = (b.clone(), client.clone());
        async move { b.hold(&client).await }
    });
    let leases: Api<Lease> = Api::namespaced(client.clone(), "wasmplug-system");
    let patch = json!({ "spec": { "holderIdentity": "replica-c", "renewTime": "2099-01-01T00:00:00.000000Z" } });
    leases.patch("wasmplug-controller", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), hold).await.expect("hold returns when the Lease is taken").unwrap();
}
