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

/// Everything one pass found out about an object: the status is built from these at once.
#[derive(Debug, Default)]
pub struct Facts<'a> {
    /// The generation checked.
    pub generation: Option<i64>,
    /// What the spec's checks refused; none: Accepted.
    pub problems: &'a [String],
    /// The module; None when the spec was refused before resolving.
    pub resolved: Option<&'a Result<Resolved, Error>>,
    /// The configs against the module's schema; None when the module was not resolved.
    pub check: Option<&'a Result<ConfigCheck, Error>>,
    /// Why a data plane the valid plugin targets could not take it.
    pub apply_error: Option<&'a Error>,
    /// The generation whose rendering is in place, where the mode keeps track: this one when it
    /// passed, else an earlier one that keeps serving.
    pub serving: Option<Option<i64>>,
    /// Delivery to gateways, when they are served.
    pub programmed: Option<Condition>,
    /// What the pre-flight said of a valid config (none: not run).
    pub preflight: Option<&'a crate::preflight::Verdict>,
    /// What serves (for `status.serving`).
    pub serving_record: Option<crate::crd::ServingRecord>,
    /// The status written before: conditions whose status did not change keep their
    /// `lastTransitionTime`, so an unchanged result writes nothing.
    pub previous: Option<&'a WasmPluginStatus>,
}

/// The status for one pass over an object.
pub fn build(facts: Facts<'_>, now: &Time) -> WasmPluginStatus {
    let generation = facts.generation;
    let c = |kind: &str, ok: Option<bool>, reason: &str, message: String| {
        condition(kind, ok, reason, message, generation, now)
    };
    let mut s = WasmPluginStatus { observed_generation: generation, ..Default::default() };
    let accepted = if facts.problems.is_empty() {
        c(condition::ACCEPTED, Some(true), "Accepted", String::new())
    } else {
        c(condition::ACCEPTED, Some(false), "InvalidSpec", facts.problems.join("; "))
    };
    let refs = match facts.resolved {
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
    let valid = match facts.check {
        None => c(condition::CONFIG_VALID, None, "NotChecked", "the module was not resolved".into()),
        Some(Ok(ConfigCheck::Valid)) => {
            let message = match facts.preflight {
                Some(crate::preflight::Verdict::Passed) => "schema and pre-flight passed".into(),
                Some(crate::preflight::Verdict::NotRun(why)) => format!("schema passed; {why}"),
                None => String::new(),
            };
            c(condition::CONFIG_VALID, Some(true), "Valid", message)
        }
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
    let failing = [&accepted, &refs, &valid].into_iter().find(|x| x.status != "True");
    let mut ready = match (failing, facts.apply_error) {
        (Some(f), _) => c(condition::READY, Some(false), &f.reason, format!("{}: {}", f.type_, f.message)),
        (None, Some(e)) => c(condition::READY, Some(false), e.reason(), e.to_string()),
        (None, None) => c(condition::READY, Some(true), "Ready", String::new()),
    };
    if let Some(serving) = facts.serving {
        s.serving_generation = serving;
        // Refused, while an earlier generation keeps serving: Ready says so.
        if failing.is_some() {
            let which = serving.map_or_else(|| "the previous generation".to_string(), |g| format!("generation {g}"));
            ready.message = format!("{}; {which} keeps serving", ready.message);
        }
    }
    s.serving = facts.serving_record;
    s.conditions = vec![accepted, refs, valid, ready];
    s.conditions.extend(facts.programmed);
    carry_transition_times(facts.previous, &mut s);
    s
}

/// Whether the Ready condition is True.
pub fn is_ready(s: &WasmPluginStatus) -> bool {
    s.conditions.iter().any(|c| c.type_ == condition::READY && c.status == "True")
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
fn carry_transition_times(old: Option<&WasmPluginStatus>, new: &mut WasmPluginStatus) {
    let Some(old) = old else { return };
    for c in &mut new.conditions {
        if let Some(prev) = old.conditions.iter().find(|p| p.type_ == c.type_ && p.status == c.status) {
            c.last_transition_time = prev.last_transition_time.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::ResolvedModule;

    fn resolved() -> Result<Resolved, Error> {
        Ok(Resolved {
            module: ResolvedModule { image_digest: None, module_sha256: "ab".repeat(32) },
            path: "/m.wasm".into(),
            size: 3,
            schema: None,
            schema_source: None,
            abi: None,
        })
    }

    fn ready(s: &WasmPluginStatus) -> &Condition {
        s.conditions.iter().find(|c| c.type_ == condition::READY).unwrap()
    }

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn a_refused_generation_says_which_keeps_serving() {
        let (r, check) = (resolved(), Ok(ConfigCheck::NoSchema));
        let facts = Facts {
            generation: Some(3),
            resolved: Some(&r),
            check: Some(&check),
            serving: Some(Some(2)),
            ..Facts::default()
        };
        let s = build(facts, &now());
        assert_eq!(s.serving_generation, Some(2));
        assert_eq!(ready(&s).reason, "NoSchema");
        assert!(ready(&s).message.ends_with("; generation 2 keeps serving"), "{:?}", ready(&s));
    }

    #[test]
    fn a_data_plane_that_cannot_take_a_valid_plugin_fails_ready_only() {
        let (r, check) = (resolved(), Ok(ConfigCheck::Valid));
        let e = Error::Unsupported { what: "this target" };
        let facts = Facts {
            generation: Some(1),
            resolved: Some(&r),
            check: Some(&check),
            apply_error: Some(&e),
            serving: Some(Some(1)),
            ..Facts::default()
        };
        let s = build(facts, &now());
        assert_eq!(s.serving_generation, Some(1));
        assert_eq!((ready(&s).status.as_str(), ready(&s).reason.as_str()), ("False", "Unsupported"));
        assert_eq!(ready(&s).message, "not supported: this target");
        assert!(s.conditions.iter().filter(|c| c.type_ != condition::READY).all(|c| c.status == "True"));
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let (r, check) = (resolved(), Ok(ConfigCheck::Valid));
        let facts = || Facts { resolved: Some(&r), check: Some(&check), ..Facts::default() };
        let before = build(facts(), &now());
        let later = Time(k8s_openapi::jiff::Timestamp::from_second(60).unwrap());
        assert_eq!(build(Facts { previous: Some(&before), ..facts() }, &later), before);
        assert!(is_ready(&before));
    }
}
