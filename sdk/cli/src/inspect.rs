//! What `inspect` shows, for an image in a registry or a local module/directory.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use wasmplug_contract::AbiVersion;
use wasmplug_oci::media::Descriptor;
use wasmplug_oci::{MetadataSource, PluginMetadata, PulledImage};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    pub source: String,
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    pub module_digest: String,
    pub module_size: u64,
    /// The proxy-wasm ABI version the module declares (`0.2.1`); none when it declares none known.
    pub abi_version: Option<String>,
    /// Which gateways load that version.
    pub loads_in: String,
    pub total_size: u64,
    pub layers: Vec<Descriptor>,
    pub metadata: Option<PluginMetadata>,
    pub metadata_source: Option<MetadataSource>,
    pub has_schema: bool,
}

fn abi(module: &[u8]) -> Option<AbiVersion> {
    wasmplug_oci::metadata::abi_version("module", module).ok().flatten()
}

fn loads_in(abi: Option<AbiVersion>) -> String {
    abi.map_or("no gateway loads it", AbiVersion::gateways).to_string()
}

impl Inspection {
    pub fn of_image(p: &PulledImage) -> Self {
        let total =
            p.manifest.config.size.max(0) as u64 + p.manifest.layers.iter().map(|l| l.size.max(0) as u64).sum::<u64>();
        Inspection {
            source: p.reference.to_string(),
            format: p.format.name().into(),
            manifest_digest: Some(p.manifest_digest.to_string()),
            module_digest: p.module_digest.to_string(),
            module_size: p.module.len() as u64,
            abi_version: abi(&p.module).map(|v| v.version().to_string()),
            loads_in: loads_in(abi(&p.module)),
            total_size: total,
            layers: p.manifest.layers.clone(),
            has_schema: p.metadata.as_ref().is_some_and(|m| m.config_schema.is_some()),
            metadata: p.metadata.clone(),
            metadata_source: p.metadata_source,
        }
    }

    pub fn of_local(path: &Path, pkg: &wasmplug_oci::PluginPackage) -> Self {
        Inspection {
            source: path.display().to_string(),
            format: if path.is_dir() { "directory" } else { "module" }.into(),
            manifest_digest: None,
            module_digest: wasmplug_oci::Digest::of(&pkg.module).to_string(),
            module_size: pkg.module.len() as u64,
            abi_version: abi(&pkg.module).map(|v| v.version().to_string()),
            loads_in: loads_in(abi(&pkg.module)),
            total_size: pkg.module.len() as u64,
            layers: Vec::new(),
            has_schema: pkg.metadata.as_ref().is_some_and(|m| m.config_schema.is_some()),
            metadata: pkg.metadata.clone(),
            metadata_source: pkg.metadata.as_ref().map(|_| {
                if pkg.spec_yaml.is_some() { MetadataSource::SpecYaml } else { MetadataSource::ModuleSection }
            }),
        }
    }

    pub fn print_text(&self, with_schema: bool) -> Result<()> {
        println!("source:          {}", self.source);
        println!("format:          {}", self.format);
        if let Some(d) = &self.manifest_digest {
            println!("manifest digest: {d}");
        }
        println!("module digest:   {} ({} bytes)", self.module_digest, self.module_size);
        match &self.abi_version {
            Some(v) => println!("proxy-wasm ABI:  {v} (loads in {})", self.loads_in),
            None => println!("proxy-wasm ABI:  none known ({})", self.loads_in),
        }
        if !self.layers.is_empty() {
            println!("total size:      {} bytes", self.total_size);
            println!("layers:");
            for l in &self.layers {
                println!("  {}  {:>9}  {}  {}", l.digest, l.size, l.media_type, l.title().unwrap_or(""));
            }
        }
        match &self.metadata {
            Some(m) => {
                println!("name:            {}", m.name);
                println!("title:           {}", m.title);
                println!("version:         {}", m.version);
                println!("description:     {}", m.description);
                println!("phase/priority:  {} / {}", m.phase, m.priority);
                let from = match self.metadata_source {
                    Some(MetadataSource::SpecYaml) => "spec.yaml",
                    _ => "module section",
                };
                println!("metadata from:   {from}");
                match (&m.config_schema, with_schema) {
                    (Some(s), true) => println!("config schema:\n{}", serde_json::to_string_pretty(s)?),
                    (Some(_), false) => println!("config schema:   yes (--schema to print it)"),
                    (None, _) => println!("config schema:   none"),
                }
            }
            None => println!("metadata:        none (no spec.yaml, no `wasmplug.plugin` section)"),
        }
        Ok(())
    }
}
