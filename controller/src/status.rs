//! Status: conditions with observedGeneration, digests, schema source and config violations.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::config::ConfigCheck;
use crate::crd::{WasmPluginSpec, WasmPluginStatus, condition};
use crate::error::Error;
use crate::resolve::Resolved;

/// What the API server's CEL rules refuse, checked again where there is no API server
/// (standalone mode reads manifests from disk).
pub fn static_problems(spec: &WasmPluginSpec) -> Vec<String> {
    let mut out = Vec::new();
    let url = spec.url.as_str();
    let scheme_ok = ["oci://", "https://", "http://", "file://"].iter().any(|s| url.starts_with(s))
        || (!url.contains("://") && !url.is_empty());
    if !scheme_ok || url.chars().any(char::is_whitespace) {
        out.push(format!("url `{url}` must be oci://, https://, http:// or file:// (no scheme means oci://)"));
    }
    let sha = spec.sha256.as_str();
    if !(sha.is_empty() || (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))) {
        out.push("sha256 must be 64 lowercase hex digits (no sha256: prefix), or empty".into());
    }
    for (i, r) in spec.match_rules.iter().enumerate() {
        if r.ingress.is_empty() && r.domain.is_empty() && r.service.is_empty() {
            out.push(format!("matchRules[{i}]: a match rule needs at least one of ingress, domain or service"));
        }
    }
    out
}

fn condition(
    kind: &str,
    ok: Option<bool>,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = match ok {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    };
    Condition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// The status for one reconcile. `resolved` is None when the spec was refused before resolving.
pub fn build(
    generation: Option<i64>,
    problems: &[String],
    resolved: Option<&Result<Resolved, Error>>,
    check: Option<&Result<ConfigCheck, Error>>,
    now: &Time,
) -> WasmPluginStatus {
    let c = |kind: &str, ok: Option<bool>, reason: &str, message: String| {
        condition(kind, ok, reason, message, generation, now)
    };
    let mut s = WasmPluginStatus { observed_generation: generation, ..Default::default() };
    let accepted = if problems.is_empty() {
        c(condition::ACCEPTED, Some(true), "Accepted", String::new())
    } else {
        c(condition::ACCEPTED, Some(false), "InvalidSpec", problems.join("; "))
    };
    let refs = match resolved {
        None => c(condition::RESOLVED_REFS, None, "NotResolved", "the spec was not accepted".into()),
        Some(Ok(r)) => {
            s.image_digest = r.module.image_digest.clone();
            s.module_sha256 = Some(format!("sha256:{}", r.module.module_sha256));
            s.module_size = Some(r.size);
            s.schema_source = r.schema_source.clone();
            let what = r.module.image_digest.as_deref().unwrap_or("module");
            c(condition::RESOLVED_REFS, Some(true), "Resolved", format!("{what}: {} bytes", r.size))
        }
        Some(Err(e)) => c(condition::RESOLVED_REFS, Some(false), e.reason(), e.to_string()),
    };
    let valid = match check {
        None => c(condition::CONFIG_VALID, None, "NotChecked", "the module was not resolved".into()),
        Some(Ok(ConfigCheck::Valid)) => c(condition::CONFIG_VALID, Some(true), "Valid", String::new()),
        Some(Ok(ConfigCheck::NoSchema)) => c(
            condition::CONFIG_VALID,
            Some(false),
            "NoSchema",
            "the module carries no config schema (no `wasmplug.plugin` section, no spec.yaml): the config cannot be checked".into(),
        ),
        Some(Ok(ConfigCheck::Invalid(v))) => {
            s.config_violations = v.clone();
            let first = v.first().map(|x| format!(": {} at {}", x.message, x.pointer)).unwrap_or_default();
            c(condition::CONFIG_VALID, Some(false), "SchemaViolation", format!("{} violation(s){first}", v.len()))
        }
        Some(Err(e)) => c(condition::CONFIG_VALID, Some(false), e.reason(), e.to_string()),
    };
    let failing = [&accepted, &refs, &valid].into_iter().find(|x| x.status != "True").cloned();
    let ready = match failing {
        None => c(condition::READY, Some(true), "Ready", String::new()),
        Some(f) => c(condition::READY, Some(false), &f.reason, format!("{}: {}", f.type_, f.message)),
    };
    s.conditions = vec![accepted, refs, valid, ready];
    s
}

/// Whether the Ready condition is True.
pub fn is_ready(s: &WasmPluginStatus) -> bool {
    s.conditions.iter().any(|c| c.type_ == condition::READY && c.status == "True")
}

fn ready_condition(s: &mut WasmPluginStatus) -> Option<&mut Condition> {
    s.conditions.iter_mut().find(|c| c.type_ == condition::READY)
}

/// The plugin is valid, but a data plane it targets could not take it.
pub fn target_failed(s: &mut WasmPluginStatus, error: &Error, now: &Time) {
    if let Some(c) = ready_condition(s) {
        *c = condition(condition::READY, Some(false), error.reason(), error.to_string(), c.observed_generation, now);
    }
}

/// A refused generation while an earlier one keeps serving: say so in Ready.
pub fn keep_serving(s: &mut WasmPluginStatus, generation: Option<i64>) {
    s.serving_generation = generation;
    let which = generation.map_or_else(|| "the previous generation".to_string(), |g| format!("generation {g}"));
    if let Some(c) = ready_condition(s) {
        c.message = format!("{}; {which} keeps serving", c.message);
    }
}

/// Keeps `lastTransitionTime` of conditions whose status did not change, so an unchanged
/// result writes nothing.
pub fn carry_transition_times(old: Option<&WasmPluginStatus>, new: &mut WasmPluginStatus) {
    let Some(old) = old else { return };
    for c in &mut new.conditions {
        if let Some(prev) = old.conditions.iter().find(|p| p.type_ == c.type_ && p.status == c.status) {
            c.last_transition_time = prev.last_transition_time.clone();
        }
    }
}
