//! A callout target resolved for the current request: `Cluster::Route` is the cluster the
//! request is routed to, and its `:authority` defaults to the request's.

use super::HttpContext;
use crate::cluster::Cluster;
use crate::host;

impl Cluster {
    /// The Envoy cluster name. `Route` needs the request's context to know it.
    pub fn cluster_name(&self, ctx: Option<&HttpContext>) -> String {
        self.resolve_name(|| ctx.and_then(|_| host::cluster_name()))
    }

    /// The `:authority` a callout to this cluster carries.
    pub fn host_name(&self, ctx: Option<&HttpContext>) -> String {
        self.resolve_authority(|| ctx.map(|c| c.host().to_string()))
    }
}
