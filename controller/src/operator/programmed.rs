//! Gateway feedback to status. When a gateway ACKs, NACKs, connects or leaves, or what is
//! delivered changes, only the Programmed condition of the plugins concerned is rewritten: no
//! resolve, no registry request, no re-render. The pipeline runs on spec changes (and resyncs).

use std::sync::Arc;

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio::sync::mpsc;

use super::Context;
use crate::crd::{Target, WasmPlugin, condition};
use crate::error::{Error, Result};

/// Plugins whose Programmed condition may have changed.
pub type Due = mpsc::UnboundedSender<ObjectRef<WasmPlugin>>;

/// How many plugins' conditions are written at once: a write may wait for the watch cache, and
/// a burst of 1,000s (a gateway connecting) must not wait for each in turn.
const CONCURRENT_WRITES: usize = 32;

/// Writes the Programmed condition of each plugin that comes in. A burst (one publish to many
/// plugins, a gateway connecting) is taken together, each plugin once.
pub async fn run(ctx: Arc<Context>, store: Store<WasmPlugin>, mut due: mpsc::UnboundedReceiver<ObjectRef<WasmPlugin>>) {
    while let Some(first) = due.recv().await {
        let mut batch = vec![first];
        while let Ok(o) = due.try_recv() {
            if !batch.contains(&o) {
                batch.push(o);
            }
        }
        futures_util::stream::iter(batch)
            .for_each_concurrent(CONCURRENT_WRITES, |o| {
                let (ctx, store) = (&ctx, &store);
                async move {
                    if let Err(error) = write(ctx, store, &o).await {
                        tracing::debug!(plugin = %o, %error, "Programmed not written; the next feedback or reconcile writes it");
                    }
                }
            })
            .await;
    }
}

/// Whether two conditions say the same (the transition time aside).
fn same(a: &Condition, b: &Condition) -> bool {
    (&a.type_, &a.status, &a.reason, &a.message, a.observed_generation)
        == (&b.type_, &b.status, &b.reason, &b.message, b.observed_generation)
}

/// How often a patch computed from an object version that moved meanwhile is tried again, and
/// how long the watch cache gets to catch up in between.
const ATTEMPTS: usize = 5;
const CATCH_UP: Duration = Duration::from_millis(100);

/// Rewrites one plugin's Programmed condition from what the gateways report, if it changed. The
/// object comes from the watch cache (no API read); the patch holds only that condition and
/// applies only to the object version it was computed from, so a stale cache costs a retry,
/// never a wrong status.
async fn write(ctx: &Context, store: &Store<WasmPlugin>, o: &ObjectRef<WasmPlugin>) -> Result<()> {
    let Some(delivery) = &ctx.delivery else { return Ok(()) };
    let api: Api<WasmPlugin> = Api::namespaced(ctx.client.clone(), o.namespace.as_deref().unwrap_or_default());
    let kube = |what: &str| {
        let what = format!("{what} of {}/{}", o.namespace.as_deref().unwrap_or_default(), o.name);
        move |source| Error::Kube { what, source }
    };
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(CATCH_UP).await;
        }
        let Some(object) = store.get(o) else { return Ok(()) };
        // Not reconciled for this generation yet, or the cache has not seen that status write:
        // wait for it (the reconcile asks again after its write in any case).
        let Some(status) = object.status.as_ref().filter(|s| s.observed_generation == object.metadata.generation)
        else {
            continue;
        };
        if !object.spec.effective_targets().contains(&Target::Envoy) {
            return Ok(());
        }
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let mut programmed = delivery.programmed(&object, status.serving_generation, &now);
        let position = status.conditions.iter().position(|c| c.type_ == condition::PROGRAMMED);
        let change = match position.map(|i| (i, &status.conditions[i])) {
            Some((_, old)) if same(old, &programmed) => return Ok(()),
            Some((i, old)) => {
                if old.status == programmed.status {
                    programmed.last_transition_time = old.last_transition_time.clone();
                }
                json!({ "op": "replace", "path": format!("/status/conditions/{i}"), "value": programmed })
            }
            None => json!({ "op": "add", "path": "/status/conditions/-", "value": programmed }),
        };
        let version = object.metadata.resource_version.clone().unwrap_or_default();
        let ops = json!([{ "op": "test", "path": "/metadata/resourceVersion", "value": version }, change]);
        let body: json_patch::Patch = serde_json::from_value(ops)
            .map_err(|source| Error::Json { what: "the Programmed condition".into(), source })?;
        match api.patch_status(&o.name, &PatchParams::default(), &Patch::<()>::Json(body)).await {
            Ok(_) => return Ok(()),
            // The object moved since the cached version (the test failed): read it again.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => continue,
            Err(e) => return Err(kube("writing the Programmed condition")(e)),
        }
    }
    Ok(())
}
