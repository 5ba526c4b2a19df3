//! The proxy-wasm ABI versions a module declares by exporting `proxy_abi_version_<version>`,
//! and which gateways load each one.

/// A proxy-wasm ABI version a module may export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AbiVersion {
    V0_1_0,
    V0_2_0,
    V0_2_1,
    /// Higress's extension of 0.2.1 (Redis calls and more); upstream Envoy refuses it.
    V0_2_100,
}

impl AbiVersion {
    pub const ALL: [AbiVersion; 4] = [AbiVersion::V0_1_0, AbiVersion::V0_2_0, AbiVersion::V0_2_1, AbiVersion::V0_2_100];

    /// `0.2.1`.
    pub fn version(self) -> &'static str {
        match self {
            AbiVersion::V0_1_0 => "0.1.0",
            AbiVersion::V0_2_0 => "0.2.0",
            AbiVersion::V0_2_1 => "0.2.1",
            AbiVersion::V0_2_100 => "0.2.100",
        }
    }

    /// The export that declares it: `proxy_abi_version_0_2_1`.
    pub fn export(self) -> &'static str {
        match self {
            AbiVersion::V0_1_0 => "proxy_abi_version_0_1_0",
            AbiVersion::V0_2_0 => "proxy_abi_version_0_2_0",
            AbiVersion::V0_2_1 => "proxy_abi_version_0_2_1",
            AbiVersion::V0_2_100 => "proxy_abi_version_0_2_100",
        }
    }

    /// The version an export name declares, if it is one of [`AbiVersion::ALL`].
    pub fn from_export(name: &str) -> Option<AbiVersion> {
        AbiVersion::ALL.into_iter().find(|v| v.export() == name)
    }

    /// Whether upstream Envoy (1.40) loads it; Higress's Envoy loads every version.
    pub fn upstream_envoy_loads(self) -> bool {
        self != AbiVersion::V0_2_100
    }

    /// The version a `0.2.1` string names.
    pub fn from_version(version: &str) -> Option<AbiVersion> {
        AbiVersion::ALL.into_iter().find(|v| v.version() == version)
    }

    /// Which gateways load it, for people: `Envoy and Higress`.
    pub fn gateways(self) -> &'static str {
        if self.upstream_envoy_loads() { "Envoy and Higress" } else { "Higress only; upstream Envoy refuses it" }
    }
}

/// Written as its version string (`"0.2.1"`).
impl serde::Serialize for AbiVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.version())
    }
}

impl<'de> serde::Deserialize<'de> for AbiVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        AbiVersion::from_version(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown proxy-wasm ABI version `{text}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::AbiVersion;

    #[test]
    fn exports_name_their_version() {
        for v in AbiVersion::ALL {
            assert_eq!(v.export(), format!("proxy_abi_version_{}", v.version().replace('.', "_")));
            assert_eq!(AbiVersion::from_export(v.export()), Some(v));
        }
        assert_eq!(AbiVersion::from_export("proxy_abi_version_0_3_0"), None);
        for v in AbiVersion::ALL {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.version()));
            assert_eq!(serde_json::from_str::<AbiVersion>(&json).unwrap(), v);
        }
        assert!(serde_json::from_str::<AbiVersion>("\"0.3.0\"").is_err());
    }
}
