//! Host calls that log their failures instead of returning them, and the request properties
//! the SDK reads for rule selection and callouts.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, Status};

/// Whether a host call succeeded; a failure is logged.
pub(crate) fn host_ok<T>(call: &str, result: Result<T, Status>) -> bool {
    match result {
        Ok(_) => true,
        Err(status) => {
            log::warn!("host call {call} failed (status {})", status as u32);
            false
        }
    }
}

/// The first value of a header; `None` when it is missing or the host refuses.
pub(crate) fn get_header(map: MapType, name: &str) -> Option<String> {
    match hostcalls::get_map_value(map, name) {
        Ok(v) => v,
        Err(status) => {
            log::debug!("reading header {name} failed (status {})", status as u32);
            None
        }
    }
}

fn property(path: &[&str]) -> Option<String> {
    hostcalls::get_property(path.to_vec()).ok().flatten().and_then(|v| String::from_utf8(v).ok())
}

/// The matched route's name: Envoy's `xds.route_name` attribute, or the legacy `route_name`
/// property that Higress's Envoy serves.
pub(crate) fn route_name() -> Option<String> {
    property(&["xds", "route_name"]).or_else(|| property(&["route_name"]))
}

/// The upstream cluster's name (`xds.cluster_name`, or the legacy `cluster_name`).
pub(crate) fn cluster_name() -> Option<String> {
    property(&["xds", "cluster_name"]).or_else(|| property(&["cluster_name"]))
}
