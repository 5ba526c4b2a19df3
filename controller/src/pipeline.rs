//! The checks both modes run on each object, in order: what the API server's rules refuse,
//! resolving the module (and refusing one a target cannot load), validating the configs
//! against the module's schema, then the pre-flight (the plugin started on its configuration,
//! [`crate::preflight`]). Each step runs
//! only when the one before passed. The mode says how a module is resolved, renders what
//! passed, and builds the status from [`Checked::facts`] plus what it knows besides.

use std::future::Future;
use std::sync::Arc;

use crate::config::{self, ConfigCheck};
use crate::crd::WasmPlugin;
use crate::error::Result;
use crate::preflight::{Preflight, Verdict};
use crate::resolve::Resolved;
use crate::status::{self, Facts};

/// What the checks found for one object.
#[derive(Debug)]
pub struct Checked {
    pub generation: Option<i64>,
    /// What the spec's checks refused.
    pub problems: Vec<String>,
    /// The module; None when the spec was refused.
    pub resolved: Option<Result<Resolved>>,
    /// The configs against the module's schema, then the pre-flight (a refusal is its error);
    /// None when the module was not resolved.
    pub check: Option<Result<ConfigCheck>>,
    /// What the pre-flight said of a valid config it did not refuse.
    pub preflight: Option<Verdict>,
}

impl Checked {
    /// The module, when every check passed: the object is ready to render.
    pub fn module(&self) -> Option<&Resolved> {
        match (&self.resolved, &self.check) {
            (Some(Ok(r)), Some(Ok(ConfigCheck::Valid))) => Some(r),
            _ => None,
        }
    }

    /// [`Checked::module`], taken.
    pub fn into_module(self) -> Option<Resolved> {
        match (self.resolved, self.check) {
            (Some(Ok(r)), Some(Ok(ConfigCheck::Valid))) => Some(r),
            _ => None,
        }
    }

    /// The facts the checks give the status.
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            generation: self.generation,
            problems: &self.problems,
            resolved: self.resolved.as_ref(),
            check: self.check.as_ref(),
            preflight: self.preflight.as_ref(),
            ..Facts::default()
        }
    }
}

/// Checks `object`. `refused` is what this mode refuses besides the API server's rules;
/// `resolve` gets the module of a spec that passed.
pub async fn check<F, Fut>(
    object: &WasmPlugin,
    refused: impl IntoIterator<Item = String>,
    resolve: F,
    preflight: &Arc<Preflight>,
) -> Checked
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Resolved>>,
{
    let mut problems = status::static_problems(&object.spec);
    problems.extend(refused);
    let (mut resolved, mut check, mut verdict) = (None, None, None);
    if problems.is_empty() {
        let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
        let r = resolve().await.and_then(|r| crate::resolve::check_loadable(&object.spec, r));
        if let Ok(m) = &r {
            let c = config::check(&object.spec, namespace, m.schema.as_ref());
            check = Some(match c {
                Ok(ConfigCheck::Valid) => match preflight.check(object, m).await {
                    Ok(v) => {
                        verdict = Some(v);
                        Ok(ConfigCheck::Valid)
                    }
                    Err(e) => Err(e),
                },
                other => other,
            });
        }
        resolved = Some(r);
    }
    Checked { generation: object.metadata.generation, problems, resolved, check, preflight: verdict }
}
