//! The rendered Higress and Istio WasmPlugins: applied with server-side apply, owned by the
//! WasmPlugin they came from, deleted when it goes or stops targeting them.

use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::crd::{Target, WasmPlugin};
use crate::error::{Error, Result};

/// The field manager of everything the controller applies.
pub const FIELD_MANAGER: &str = "wasmplug-controller";

/// The API resource a target renders to; `None` for Envoy (delivered over xDS, not applied).
pub fn api_resource(target: Target) -> Option<ApiResource> {
    let group = match target {
        Target::Envoy => return None,
        Target::Higress => "extensions.higress.io",
        Target::Istio => "extensions.istio.io",
    };
    Some(ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1alpha1", "WasmPlugin"), "wasmplugins"))
}

fn describe(ar: &ApiResource) -> String {
    format!("{}/{} {}", ar.group, ar.version, ar.kind)
}

fn kube_error(ar: &ApiResource, verb: &'static str, source: kube::Error) -> Error {
    match &source {
        kube::Error::Api(s) if s.code == 404 => Error::TargetUnavailable { resource: describe(ar), verb, source },
        _ => Error::Kube { what: format!("{verb} {}", describe(ar)), source },
    }
}

/// Applies `object` (a rendered WasmPlugin of `target`) with an owner reference to `owner`.
pub async fn apply(client: &Client, owner: &WasmPlugin, target: Target, mut object: Value) -> Result<()> {
    let Some(ar) = api_resource(target) else { return Ok(()) };
    let ns = owner.namespace().unwrap_or_default();
    let name = owner.name_any();
    object["metadata"]["ownerReferences"] = json!([{
        "apiVersion": format!("{}/v1alpha1", crate::crd::GROUP),
        "kind": "WasmPlugin",
        "name": name,
        "uid": owner.uid().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
        .await
        .map_err(|e| kube_error(&ar, "apply", e))?;
    Ok(())
}

/// Deletes the object `target` rendered for `owner`, if it is there and `owner` owns it. A
/// missing object or a missing CRD is not an error.
pub async fn delete(client: &Client, owner: &WasmPlugin, target: Target) -> Result<()> {
    let Some(ar) = api_resource(target) else { return Ok(()) };
    let ns = owner.namespace().unwrap_or_default();
    let name = owner.name_any();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let existing = match api.get_opt(&name).await {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(()),
        Err(e) => {
            return match kube_error(&ar, "get", e) {
                Error::TargetUnavailable { .. } => Ok(()),
                other => Err(other),
            };
        }
    };
    let owned = existing.owner_references().iter().any(|r| Some(&r.uid) == owner.uid().as_ref());
    if !owned {
        return Ok(());
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(kube_error(&ar, "delete", e)),
    }
}
