//! One reconcile of one WasmPlugin: resolve the image with the plugin's own credentials,
//! validate its configs, apply what it renders, keep the last good rendering when a new
//! generation is refused, and write status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use wasmplug_oci::cache::Served;
use wasmplug_oci::{Digest, ImageRef, fetch_image_manifest};

use super::metrics::ResultLabel;
use super::{Context, Serving, pull_secret, targets};
use crate::crd::{ServingRecord, Target, WasmPlugin, WasmPluginSpec, WasmPluginStatus, condition};
use crate::error::{Error, Result};
use crate::pipeline;
use crate::render::{self, Plugin};
use crate::resolve::{self, Access, Resolved};
use crate::status::{self, Facts};

/// Held until the rendered objects are cleaned up.
pub const FINALIZER: &str = "wasmplug.io/cleanup";

/// Retry delay after `failures` failed attempts in a row: 5 s doubling up to 5 min.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << failures.min(6)).min(300))
}

fn key(o: &WasmPlugin) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// One reconcile, in a span naming the object (`plugin = namespace/name`).
#[tracing::instrument(skip_all, fields(plugin = %key(&obj)))]
pub async fn reconcile(
    obj: Arc<WasmPlugin>,
    ctx: Arc<Context>,
) -> Result<Action, kube::runtime::finalizer::Error<Error>> {
    let started = Instant::now();
    let api: Api<WasmPlugin> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Event::Apply(o) => apply(&o, &ctx).await,
            Event::Cleanup(o) => cleanup(&o, &ctx).await,
        }
    })
    .await;
    // A second cleanup of an object already released (gateway feedback can ask for one): done.
    let result = match result {
        Err(kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s))) if s.code == 404 => {
            Ok(Action::await_change())
        }
        other => other,
    };
    ctx.metrics.duration.observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        ctx.metrics.reconciles.get_or_create(&ResultLabel { result: "error" }).inc();
        ctx.metrics.error("ApiError");
    }
    result
}

#[tracing::instrument(skip_all, fields(plugin = %key(&obj)))]
pub fn error_policy(obj: Arc<WasmPlugin>, error: &kube::runtime::finalizer::Error<Error>, ctx: Arc<Context>) -> Action {
    let failures = bump_failures(&ctx, &key(&obj));
    tracing::warn!(%error, failures, "reconcile failed, retrying");
    Action::requeue(backoff(failures))
}

fn bump_failures(ctx: &Context, key: &str) -> u32 {
    ctx.failures
        .lock()
        .map(|mut m| {
            let n = m.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n - 1
        })
        .unwrap_or(0)
}

/// One pass: the checks, then a plugin that passed goes in place, then the status from all of it.
async fn apply(o: &WasmPlugin, ctx: &Context) -> Result<Action> {
    let id = key(o);
    let ns = o.namespace().unwrap_or_default();
    let generation = o.metadata.generation;
    let refused = (o.spec.url.starts_with("file://") && !ctx.options.allow_file_urls)
        .then(|| "url: file:// urls read the controller's own disk and are off in clusters".to_string());
    let checked = pipeline::check(o, refused, || resolve_module(o, &ns, ctx), &ctx.preflight).await;
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let in_place = ctx.serving.borrow().get(&id).cloned();
    // A new process serves what `status.serving` recorded while the current generation is refused.
    let previous = match in_place {
        None if checked.module().is_none() => restore(o, &id, &ns, ctx).await,
        other => other,
    };
    let (serving, apply_error) = match checked.module() {
        Some(r) => (Some(generation), put_in_place(o, &id, r, previous.as_ref(), ctx).await.err()),
        None => (previous.map(|p| p.generation), None),
    };
    ctx.metrics.serving.set(i64::try_from(ctx.serving.borrow().len()).unwrap_or(i64::MAX));
    let programmed = ctx
        .delivery
        .as_ref()
        .filter(|_| o.spec.effective_targets().contains(&Target::Envoy))
        .map(|d| d.programmed(o, serving.flatten(), &now));
    let serving_record = ctx.serving.borrow().get(&id).and_then(record);
    let facts = Facts {
        apply_error: apply_error.as_ref(),
        serving,
        programmed,
        serving_record,
        previous: o.status.as_ref(),
        ..checked.facts()
    };
    let st = status::build(facts, &now);
    let ready = status::is_ready(&st);
    if o.status.as_ref() != Some(&st) {
        publish_event(o, &st, ctx).await;
        let api: Api<WasmPlugin> = Api::namespaced(ctx.client.clone(), &ns);
        // The whole status, replaced: one writer, and a JSON patch costs the API server less
        // than server-side apply.
        let body: json_patch::Patch = serde_json::from_value(json!([{ "op": "add", "path": "/status", "value": st }]))
            .map_err(|source| Error::Json { what: format!("the status of {id}"), source })?;
        api.patch_status(&o.name_any(), &PatchParams::default(), &Patch::<()>::Json(body))
            .await
            .map_err(|source| Error::Kube { what: format!("writing the status of {id}"), source })?;
    }
    // Feedback that came in while this status was built is written on top of it.
    if st.conditions.iter().any(|c| c.type_ == condition::PROGRAMMED) {
        let _ = ctx.programmed.send(kube::runtime::reflector::ObjectRef::from(o));
    }
    if let Ok(mut r) = ctx.reconciled.lock() {
        r.insert(id.clone());
    }
    let result = if ready { "ready" } else { "refused" };
    tracing::debug!(generation, result, "reconciled");
    ctx.metrics.reconciles.get_or_create(&ResultLabel { result }).inc();
    if ready {
        if let Ok(mut m) = ctx.failures.lock() {
            m.remove(&id);
        }
        Ok(Action::requeue(ctx.options.resync))
    } else {
        if let Some(reason) = st.conditions.iter().find(|c| c.type_ == condition::READY).map(|c| c.reason.clone()) {
            ctx.metrics.error(&reason);
        }
        Ok(Action::requeue(backoff(bump_failures(ctx, &id))))
    }
}

/// The record of what serves, for `status.serving`.
fn record(s: &Serving) -> Option<ServingRecord> {
    Some(ServingRecord {
        generation: s.generation?,
        image_digest: s.resolved.module.image_digest.clone(),
        module_sha256: s.resolved.module.module_sha256.clone(),
        spec: serde_json::to_value(&s.object.spec).ok()?,
    })
}

/// Puts the generation `status.serving` records back in place: its spec, its module fetched by
/// digest (the cache may be empty) and checked against the recorded sha256. None when there is
/// no record or it cannot be served (logged).
async fn restore(o: &WasmPlugin, id: &str, ns: &str, ctx: &Context) -> Option<Serving> {
    let record = o.status.as_ref()?.serving.clone()?;
    let spec: WasmPluginSpec = match serde_json::from_value(record.spec.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "status.serving.spec is not a WasmPlugin spec; nothing to restore");
            return None;
        }
    };
    let mut saved = o.clone();
    saved.spec = spec;
    saved.metadata.generation = Some(record.generation);
    // Resolve exactly that module: the image by its manifest digest (what `sha256` means for an
    // image), a file by the module's sha256; then the module's sha256 is checked either way.
    let mut pinned = saved.clone();
    pinned.spec.sha256 = match &record.image_digest {
        Some(d) => d.strip_prefix("sha256:").unwrap_or(d).to_string(),
        None => record.module_sha256.clone(),
    };
    if let Some(digest) = &record.image_digest {
        match ImageRef::parse(&saved.spec.url).and_then(|i| Ok(i.with_digest(&Digest::parse(digest)?))) {
            Ok(image) => pinned.spec.url = format!("oci://{image}"),
            Err(e) => {
                tracing::warn!(error = %e, "status.serving: the recorded image cannot be pinned; nothing to restore");
                return None;
            }
        }
    }
    let resolved = match resolve_module(&pinned, ns, ctx).await {
        Ok(r) if r.module.module_sha256 == record.module_sha256 => r,
        Ok(r) => {
            let e = Error::DigestMismatch { expected: record.module_sha256.clone(), actual: r.module.module_sha256 };
            tracing::warn!(generation = record.generation, error = %e, "the last good generation cannot be restored");
            return None;
        }
        Err(e) => {
            tracing::warn!(generation = record.generation, error = %e, "the last good generation cannot be restored");
            return None;
        }
    };
    if let Err(e) = put_in_place(&saved, id, &resolved, None, ctx).await {
        tracing::warn!(generation = record.generation, error = %e, "the last good generation is restored, not everywhere");
    }
    tracing::info!(generation = record.generation, "restored the last good generation from status.serving");
    ctx.serving.borrow().get(id).cloned()
}

/// Puts a plugin that passed its checks in place: what it renders for Higress and Istio is
/// applied, and it is published to the gateways. The error says why a data plane could not take it.
async fn put_in_place(o: &WasmPlugin, id: &str, r: &Resolved, previous: Option<&Serving>, ctx: &Context) -> Result<()> {
    let applied = apply_targets(o, r, previous, ctx).await;
    if let Err(e) = &applied
        && let Error::TargetUnavailable { resource, .. } = e
    {
        ctx.say_once(resource, &format!("{e}; plugins that target it stay not Ready"));
    }
    // The schema is not needed once validated; dropping it keeps 1,000s of entries small.
    let resolved = Resolved { schema: None, ..r.clone() };
    let serving = Serving { generation: o.metadata.generation, object: o.clone(), resolved };
    ctx.serving.send_if_modified(|m| {
        let same = m.get(id).is_some_and(|p| {
            p.generation == serving.generation && p.object.spec == serving.object.spec && p.resolved == serving.resolved
        });
        if !same {
            m.insert(id.to_string(), serving);
        }
        !same
    });
    applied
}

/// Applies the Higress/Istio objects the plugin targets and deletes the ones it no longer targets.
async fn apply_targets(o: &WasmPlugin, r: &Resolved, previous: Option<&Serving>, ctx: &Context) -> Result<()> {
    let wanted = o.spec.effective_targets();
    let plugin = Plugin { object: o, module: &r.module };
    let mut first_error = None;
    for target in [Target::Higress, Target::Istio] {
        let applied_key = (target, o.uid().unwrap_or_default());
        let result = if wanted.contains(&target) {
            let object = match target {
                Target::Higress => render::higress_wasmplugin(&plugin),
                _ => render::istio_wasmplugin(&plugin),
            };
            // The same rendering as last applied by this process: nothing to write.
            let text = object.to_string();
            let unchanged = ctx.applied.lock().is_ok_and(|m| m.get(&applied_key) == Some(&text));
            if unchanged {
                Ok(())
            } else {
                let r = targets::apply(&ctx.client, o, target, object).await;
                if let Ok(mut m) = ctx.applied.lock() {
                    match &r {
                        Ok(()) => m.insert(applied_key, text),
                        Err(_) => m.remove(&applied_key),
                    };
                }
                r
            }
        } else if previous.is_some_and(|p| p.object.spec.effective_targets().contains(&target)) {
            if let Ok(mut m) = ctx.applied.lock() {
                m.remove(&applied_key);
            }
            targets::delete(&ctx.client, o, target).await
        } else {
            Ok(())
        };
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn cleanup(o: &WasmPlugin, ctx: &Context) -> Result<Action> {
    for target in [Target::Higress, Target::Istio] {
        if let Ok(mut m) = ctx.applied.lock() {
            m.remove(&(target, o.uid().unwrap_or_default()));
        }
        targets::delete(&ctx.client, o, target).await?;
    }
    let id = key(o);
    ctx.serving.send_modify(|m| {
        m.remove(&id);
    });
    if let Ok(mut r) = ctx.reconciled.lock() {
        r.insert(id.clone());
    }
    ctx.metrics.serving.set(i64::try_from(ctx.serving.borrow().len()).unwrap_or(i64::MAX));
    if let Ok(mut m) = ctx.failures.lock() {
        m.remove(&id);
    }
    tracing::info!("deleted: rendered objects removed");
    Ok(Action::await_change())
}

/// Resolves the plugin's module with its own pull secret. A cached image another tenant pulled
/// is served only after the registry confirms this tenant can read the same manifest.
async fn resolve_module(o: &WasmPlugin, ns: &str, ctx: &Context) -> Result<Resolved> {
    let spec = &o.spec;
    let url = spec.url.as_str();
    if let Some(path) = url.strip_prefix("file://") {
        return resolve::resolve_file(spec, std::path::Path::new(path));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(Error::Unsupported { what: "http(s):// module urls (use an oci:// image)" });
    }
    let access = access(o, ns, ctx).await?;
    let resolved = resolve::resolve_image(spec, &ctx.cache, Some(&access)).await;
    match &resolved {
        Ok((_, Served::FromCache)) => ctx.metrics.cache_hits.inc(),
        Ok((_, Served::FromRegistry)) => ctx.metrics.pulls.get_or_create(&ResultLabel { result: "ok" }).inc(),
        Err(_) => ctx.metrics.pulls.get_or_create(&ResultLabel { result: "error" }).inc(),
    };
    let (resolved, served) = resolved?;
    confirm(o, &access, &resolved, served, ctx).await?;
    Ok(resolved)
}

/// The registry client and tenant of the plugin's pull secret; anonymous without one.
async fn access(o: &WasmPlugin, ns: &str, ctx: &Context) -> Result<Access> {
    if o.spec.image_pull_secret.is_empty() {
        return Ok(Access { registry: ctx.registry.clone(), tenant: "anonymous".into() });
    }
    let creds = pull_secret::read(&ctx.client, ns, &o.spec.image_pull_secret).await?;
    let registry = ctx.registry.with_credentials(Some(creds.docker_config))?;
    Ok(Access { registry, tenant: creds.tenant })
}

/// Checks, once per tenant and manifest digest, that the tenant's credentials can read an image
/// the cache served without asking the registry.
async fn confirm(o: &WasmPlugin, access: &Access, resolved: &Resolved, served: Served, ctx: &Context) -> Result<()> {
    let Some(digest) = &resolved.module.image_digest else { return Ok(()) };
    let pair = (access.tenant.clone(), digest.clone());
    let known = ctx.verified.lock().map(|v| v.contains(&pair)).unwrap_or(false);
    if served == Served::FromCache && !known {
        let image = ImageRef::parse(&o.spec.url)?;
        let manifest = Digest::parse(digest)?;
        fetch_image_manifest(&access.registry, &image, Some(&manifest)).await.map_err(Error::NotConfirmed)?;
    }
    if let Ok(mut v) = ctx.verified.lock() {
        v.insert(pair);
    }
    Ok(())
}

/// An Event when Ready changes; said once and then skipped when the API server has no Events.
async fn publish_event(o: &WasmPlugin, st: &WasmPluginStatus, ctx: &Context) {
    use std::sync::atomic::Ordering;
    let ready = |s: Option<&WasmPluginStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == condition::READY)).map(|c| c.status.clone())
    };
    let (before, now) = (ready(o.status.as_ref()), ready(Some(st)));
    if before == now || !ctx.events.load(Ordering::Relaxed) {
        return;
    }
    let Some(cond) = st.conditions.iter().find(|c| c.type_ == condition::READY) else { return };
    let event = KubeEvent {
        type_: if cond.status == "True" { EventType::Normal } else { EventType::Warning },
        reason: cond.reason.clone(),
        note: Some(cond.message.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &o.object_ref(&())).await {
        if matches!(&e, kube::Error::Api(s) if s.code == 404) {
            ctx.events.store(false, Ordering::Relaxed);
            ctx.say_once(
                "events",
                "the API server has no events.k8s.io Events: status carries everything, no Events are written",
            );
        } else {
            tracing::debug!(error = %e, "publishing an event");
        }
    }
}
