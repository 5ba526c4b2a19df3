//! The thread that owns the plugin VMs, as an Envoy worker does: requests are interleaved on
//! it (each a task of a `LocalSet`), so while one waits for its upstream or a callout, the
//! others go on. Plugins whose files change are reloaded here.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot};
use wasmplug_host::{CalloutHandler, Compilation, CompileCache, HttpResponse, Request};

use super::chain::{self, PluginSpec, Stage};
use super::network::{AnswerBoard, ClusterCallouts, Target, Upstream};
use super::{Stamp, read_configuration, say, stamp};

/// How often plugin files are checked for changes (also before each request).
const RELOAD_CHECK: Duration = Duration::from_millis(500);

/// A request for the chain, and where its response goes.
pub struct Job {
    pub request: Request,
    pub reply: oneshot::Sender<HttpResponse>,
}

pub struct Worker {
    pub specs: Vec<PluginSpec>,
    pub clusters: Arc<HashMap<String, Target>>,
    pub upstream: Upstream,
    pub compile_cache: Option<CompileCache>,
    pub explain: bool,
}

impl Worker {
    /// Starts the VMs (reporting how to `ready`), then serves `jobs` until they end.
    pub fn run(self, jobs: mpsc::UnboundedReceiver<Job>, ready: oneshot::Sender<Result<Vec<Compilation>>>) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready.send(Err(e).context("cannot start the plugin chain's runtime"));
                return;
            }
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, self.serve(jobs, ready));
    }

    async fn serve(self, mut jobs: mpsc::UnboundedReceiver<Job>, ready: oneshot::Sender<Result<Vec<Compilation>>>) {
        let Worker { specs, clusters, upstream, compile_cache, explain } = self;
        let network = upstream.network.clone();
        let callouts = move |answers: AnswerBoard| -> Box<dyn CalloutHandler> {
            Box::new(ClusterCallouts::new(Arc::clone(&clusters), network.clone(), answers))
        };
        let starter = chain::Starter { callouts: &callouts, cache: compile_cache.as_ref() };
        let mut stages = match chain::start(&specs, &starter) {
            Ok(stages) => {
                let _ = ready.send(Ok(stages.iter().map(|s| s.compilation).collect()));
                stages
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut stamps: Vec<Stamp> = specs.iter().map(stamp).collect();
        let upstream = Rc::new(upstream);
        let mut check = tokio::time::interval(RELOAD_CHECK);
        loop {
            let job = tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => Some(job),
                    None => break,
                },
                _ = check.tick() => None,
            };
            reload_changed(&mut stages, &mut stamps, &starter);
            let Some(job) = job else { continue };
            let hops = chain::hops(&stages);
            let upstream = Rc::clone(&upstream);
            tokio::task::spawn_local(async move {
                let (response, reports) = chain::run(&hops, &job.request, upstream.as_ref()).await;
                if explain {
                    say(chain::explain(&job.request, &response, &reports).trim_end());
                }
                let _ = job.reply.send(response);
            });
        }
    }
}

/// Restarts the plugins whose module or configuration file changed; a plugin whose new version
/// does not start keeps running the old one.
fn reload_changed(stages: &mut [Stage], stamps: &mut [Stamp], starter: &chain::Starter) {
    for (stage, seen) in stages.iter_mut().zip(stamps.iter_mut()) {
        let now = stamp(&stage.spec);
        if now == *seen {
            continue;
        }
        *seen = now;
        let mut spec = stage.spec.clone();
        let result = read_configuration(spec.config_path.as_deref()).and_then(|configuration| {
            spec.configuration = configuration;
            stage.reload(spec, starter)
        });
        match result {
            Ok(()) => say(&format!("reloaded {} ({})", stage.spec.name, chain::describe(&stage.compilation))),
            Err(e) => say(&format!("reload of {} failed, the previous version keeps running: {e:#}", stage.spec.name)),
        }
    }
}
