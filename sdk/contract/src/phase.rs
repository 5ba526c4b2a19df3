//! Phases: where a plugin runs in a gateway's filter chain.

use serde::{Deserialize, Serialize};

/// Where the plugin runs in the filter chain: AUTHN, AUTHZ and STATS plugins in that order,
/// then plugins without a phase; within a phase, the higher priority first.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum Phase {
    #[default]
    #[serde(rename = "UNSPECIFIED_PHASE")]
    Unspecified,
    #[serde(rename = "AUTHN")]
    Authn,
    #[serde(rename = "AUTHZ")]
    Authz,
    #[serde(rename = "STATS")]
    Stats,
}

impl Phase {
    /// Every phase, in chain order.
    pub const CHAIN_ORDER: [Phase; 4] = [Phase::Authn, Phase::Authz, Phase::Stats, Phase::Unspecified];

    /// The position in a filter chain (unspecified last).
    pub fn rank(self) -> u8 {
        match self {
            Phase::Authn => 0,
            Phase::Authz => 1,
            Phase::Stats => 2,
            Phase::Unspecified => 3,
        }
    }

    /// The spelling in manifests, metadata and spec.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Unspecified => "UNSPECIFIED_PHASE",
            Phase::Authn => "AUTHN",
            Phase::Authz => "AUTHZ",
            Phase::Stats => "STATS",
        }
    }

    /// Reads a spelling; an empty or unknown one is [`Phase::Unspecified`], as Higress treats it.
    pub fn parse_lenient(s: &str) -> Phase {
        Self::CHAIN_ORDER.into_iter().find(|p| p.as_str() == s).unwrap_or_default()
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_order_follows_rank_and_spellings_round_trip() {
        let ranks: Vec<u8> = Phase::CHAIN_ORDER.iter().map(|p| p.rank()).collect();
        assert_eq!(ranks, [0, 1, 2, 3]);
        for p in Phase::CHAIN_ORDER {
            assert_eq!(Phase::parse_lenient(p.as_str()), p);
        }
        assert_eq!(Phase::parse_lenient(""), Phase::Unspecified);
        assert_eq!(Phase::parse_lenient("authn"), Phase::Unspecified);
    }
}
