//! Fail strategies: what a gateway does with requests when a plugin cannot run.

use serde::{Deserialize, Serialize};

/// What happens to requests while the plugin cannot run (its VM trapped, timed out or ran out
/// of memory, or its module could not be loaded).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum FailStrategy {
    /// Requests fail while the plugin cannot run (Envoy FAIL_CLOSED).
    #[default]
    #[serde(rename = "FAIL_CLOSE")]
    FailClose,
    /// Requests bypass the plugin while it cannot run.
    #[serde(rename = "FAIL_OPEN")]
    FailOpen,
    /// Reload the VM after a failure (Envoy FAIL_RELOAD).
    #[serde(rename = "FAIL_RELOAD")]
    FailReload,
}

impl FailStrategy {
    /// The spelling in wasmplug's and Higress's manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            FailStrategy::FailClose => "FAIL_CLOSE",
            FailStrategy::FailOpen => "FAIL_OPEN",
            FailStrategy::FailReload => "FAIL_RELOAD",
        }
    }

    /// Envoy's `PluginConfig.failure_policy`.
    pub fn envoy(self) -> &'static str {
        match self {
            FailStrategy::FailClose => "FAIL_CLOSED",
            FailStrategy::FailOpen => "FAIL_OPEN",
            FailStrategy::FailReload => "FAIL_RELOAD",
        }
    }

    /// Higress's WasmPlugin `failStrategy`: Higress has no FAIL_RELOAD, which becomes FAIL_CLOSE.
    pub fn higress(self) -> &'static str {
        match self {
            FailStrategy::FailOpen => "FAIL_OPEN",
            FailStrategy::FailClose | FailStrategy::FailReload => "FAIL_CLOSE",
        }
    }

    /// Istio's WasmPlugin `failStrategy` (`FAIL_CLOSE`, `FAIL_OPEN`, `FAIL_RELOAD`).
    pub fn istio(self) -> &'static str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_per_data_plane() {
        let all = [FailStrategy::FailClose, FailStrategy::FailOpen, FailStrategy::FailReload];
        let envoy: Vec<_> = all.iter().map(|f| f.envoy()).collect();
        let higress: Vec<_> = all.iter().map(|f| f.higress()).collect();
        let istio: Vec<_> = all.iter().map(|f| f.istio()).collect();
        assert_eq!(envoy, ["FAIL_CLOSED", "FAIL_OPEN", "FAIL_RELOAD"]);
        assert_eq!(higress, ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_CLOSE"]);
        assert_eq!(istio, ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"]);
        for f in all {
            let json = format!("\"{}\"", f.as_str());
            assert_eq!(serde_json::from_str::<FailStrategy>(&json).ok(), Some(f));
        }
    }
}
