//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one replica reconciles.
//! A replica takes the Lease when it is free or expired, renews it every third of its duration,
//! and steps down (the process exits, the pod restarts) when it cannot renew in time.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::error::{Error, Result};

/// Who competes for which Lease.
#[derive(Debug, Clone)]
pub struct Election {
    pub namespace: String,
    pub name: String,
    /// This replica (the pod name).
    pub identity: String,
    pub lease_duration: Duration,
}

impl Election {
    fn api(&self, client: &Client) -> Api<Lease> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    fn seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1)
    }

    /// One attempt: `Ok(true)` when this replica holds the Lease afterwards.
    pub async fn try_acquire(&self, client: &Client) -> Result<bool> {
        let api = self.api(client);
        let kube = |what: &str, source: kube::Error| Error::Kube {
            what: format!("{what} Lease {}/{}", self.namespace, self.name),
            source,
        };
        let now = MicroTime(Timestamp::now());
        let existing = api.get_opt(&self.name).await.map_err(|e| kube("reading", e))?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(kube("creating", e)),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(renewed), Some(secs)) => renewed.0 + SignedDuration::from_secs(i64::from(secs)) < now.0,
            _ => true,
        };
        if !mine && !expired {
            return Ok(false);
        }
        if !mine {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.lease_duration_seconds = Some(self.seconds());
        spec.renew_time = Some(now);
        // The resourceVersion read above makes this a compare-and-swap: a rival's write wins.
        match api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(kube("updating", e)),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self, client: &Client) {
        let retry = (self.lease_duration / 4).max(Duration::from_millis(100));
        loop {
            match self.try_acquire(client).await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "leading");
                    return;
                }
                Ok(false) => tracing::debug!(lease = %self.name, "another replica leads"),
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Renews until a renewal fails for longer than the lease duration; then returns (leadership
    /// is lost and another replica may take over).
    pub async fn hold(&self, client: &Client) {
        let period = (self.lease_duration / 3).max(Duration::from_millis(100));
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(period).await;
            match self.try_acquire(client).await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %self.name, "another replica took the Lease");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "renewing the Lease"),
            }
            if last_renewed.elapsed() > self.lease_duration {
                tracing::error!(lease = %self.name, "could not renew the Lease in time");
                return;
            }
        }
    }
}
