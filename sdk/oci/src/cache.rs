//! A content-addressed on-disk cache of plugin modules, with atomic writes and single-flight.
//!
//! Layout under the root: `modules/sha256/<hex>.wasm` (named by the module's own digest),
//! `manifests/sha256/<hex>.json` (what a manifest digest resolved to), `refs/<hex>.json`
//! (what a tag resolved to, for IfNotPresent), `tmp/` (files being written; renamed into place,
//! so no partial file is ever visible under its final name).
//!
//! A cache hit does not contact the registry. A multi-tenant caller (the controller) must check
//! a tenant's credentials itself before serving it a cached private image, or use `Always`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metadata::{AbiVersion, PluginMetadata};
use crate::pull::{MetadataSource, fetch_image_manifest, pull_layers};
use crate::reference::{Digest, ImageRef};
use crate::registry::{Progress, Registry};

/// When to contact the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Use the cached module when the reference (digest, or tag seen before) is cached.
    IfNotPresent,
    /// Always fetch the manifest; blobs already cached are not downloaded again.
    Always,
}

impl PullPolicy {
    /// Istio's defaults: `:latest` (or no tag) → Always; a digest or any other tag → IfNotPresent.
    pub fn default_for(image: &ImageRef) -> Self {
        if image.is_latest() { PullPolicy::Always } else { PullPolicy::IfNotPresent }
    }
}

/// A module in the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedModule {
    pub reference: String,
    pub manifest_digest: String,
    pub module_digest: String,
    pub size: u64,
    pub format: String,
    pub metadata: Option<PluginMetadata>,
    pub metadata_source: Option<MetadataSource>,
    /// The proxy-wasm ABI the module declares; records written before it was kept get it from
    /// the module when they are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abi_version: Option<AbiVersion>,
    /// Where the module is (not stored in the record).
    #[serde(skip)]
    pub path: PathBuf,
}

/// How [`Cache::resolve_served`] answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// From the cache, without contacting the registry.
    FromCache,
    /// The registry was asked, with the caller's credentials (or, in a shared download, the
    /// same tenant's); blobs already cached are not downloaded again.
    FromRegistry,
}

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, std::result::Result<(CachedModule, Served), String>)>>>;

/// The cache. Share one per process (`Arc<Cache>`).
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    registry: Registry,
    inflight: Mutex<HashMap<String, Slot>>,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>, registry: Registry) -> Result<Self> {
        let root = root.into();
        for dir in ["modules/sha256", "manifests/sha256", "refs", "tmp"] {
            std::fs::create_dir_all(root.join(dir)).map_err(|e| Error::io(root.join(dir), e))?;
        }
        Ok(Cache { root, registry, inflight: Mutex::new(HashMap::new()) })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn module_path(&self, module_digest: &Digest) -> PathBuf {
        self.root.join("modules/sha256").join(format!("{}.wasm", module_digest.hex()))
    }

    fn manifest_record(&self, manifest_digest: &Digest) -> PathBuf {
        self.root.join("manifests/sha256").join(format!("{}.json", manifest_digest.hex()))
    }

    fn ref_record(&self, image: &ImageRef) -> PathBuf {
        self.root.join("refs").join(format!("{}.json", Digest::of(image.to_string().as_bytes()).hex()))
    }

    /// Reads a record and checks its module is in place.
    fn load(&self, record: &Path) -> Option<CachedModule> {
        let mut m: CachedModule = serde_json::from_slice(&std::fs::read(record).ok()?).ok()?;
        let path = self.module_path(&Digest::parse(&m.module_digest).ok()?);
        if std::fs::metadata(&path).ok()?.len() != m.size {
            return None;
        }
        if m.abi_version.is_none() {
            let module = std::fs::read(&path).ok()?;
            m.abi_version = crate::metadata::abi_version(&m.reference, &module).ok()?;
        }
        m.path = path;
        Some(m)
    }

    /// The cached module for a reference, if any, without contacting the registry.
    pub fn cached(&self, image: &ImageRef, expected: Option<&Digest>) -> Option<CachedModule> {
        self.lookup(image, expected.or(image.digest()))
    }

    fn lookup(&self, image: &ImageRef, known: Option<&Digest>) -> Option<CachedModule> {
        match known {
            Some(d) => self.load(&self.manifest_record(d)),
            None => self.load(&self.ref_record(image)),
        }
    }

    /// Returns the module for a reference, downloading it when needed. `expected` is a manifest
    /// digest (the `sha256` field) and is enforced. Concurrent calls for the same reference
    /// share one download: callers that arrive while it runs get its result.
    pub async fn resolve(
        &self,
        image: &ImageRef,
        expected: Option<&Digest>,
        policy: Option<PullPolicy>,
        progress: Progress<'_>,
    ) -> Result<CachedModule> {
        self.resolve_as(&self.registry, "", image, expected, policy, progress).await
    }

    /// [`Cache::resolve`] with a tenant's own registry client (its credentials). `tenant` keeps
    /// tenants apart in the single-flight: a caller never shares a download made with another
    /// tenant's credentials. A cache hit still does not contact the registry (see the module docs).
    pub async fn resolve_as(
        &self,
        registry: &Registry,
        tenant: &str,
        image: &ImageRef,
        expected: Option<&Digest>,
        policy: Option<PullPolicy>,
        progress: Progress<'_>,
    ) -> Result<CachedModule> {
        self.resolve_served(registry, tenant, image, expected, policy, progress).await.map(|(m, _)| m)
    }

    /// [`Cache::resolve_as`], also saying whether the registry was asked: a multi-tenant caller
    /// checks the tenant's credentials itself when the answer is [`Served::FromCache`].
    pub async fn resolve_served(
        &self,
        registry: &Registry,
        tenant: &str,
        image: &ImageRef,
        expected: Option<&Digest>,
        policy: Option<PullPolicy>,
        progress: Progress<'_>,
    ) -> Result<(CachedModule, Served)> {
        if let (Some(e), Some(d)) = (expected, image.digest())
            && e != d
        {
            return Err(Error::DigestMismatch {
                image: image.to_string(),
                what: "manifest (sha256 vs reference)".into(),
                expected: e.to_string(),
                actual: d.to_string(),
            });
        }
        let known = expected.or(image.digest());
        let policy = policy.unwrap_or_else(|| PullPolicy::default_for(image));
        if policy == PullPolicy::IfNotPresent
            && let Some(hit) = self.lookup(image, known)
        {
            return Ok((hit, Served::FromCache));
        }
        let key = match known {
            Some(d) => format!("{tenant}\n{d}"),
            None => format!("{tenant}\n{image}"),
        };
        let slot = {
            let mut map = self.inflight.lock().map_err(|_| Error::bad(image.to_string(), "cache lock poisoned"))?;
            map.entry(key.clone()).or_default().clone()
        };
        let started = Instant::now();
        let result = {
            let mut guard = slot.lock().await;
            match guard.as_ref() {
                // Someone finished while we waited: share their result.
                Some((done, r)) if *done >= started => {
                    r.clone().map_err(|detail| Error::Shared { image: image.to_string(), detail })
                }
                _ => {
                    let hit = if policy == PullPolicy::IfNotPresent { self.lookup(image, known) } else { None };
                    let r = match hit {
                        Some(hit) => Ok((hit, Served::FromCache)),
                        None => {
                            self.download(registry, image, expected, progress).await.map(|m| (m, Served::FromRegistry))
                        }
                    };
                    *guard = Some((Instant::now(), r.as_ref().map(Clone::clone).map_err(ToString::to_string)));
                    r
                }
            }
        };
        if let Ok(mut map) = self.inflight.lock()
            && Arc::strong_count(&slot) <= 2
        {
            map.remove(&key);
        }
        result
    }

    async fn download(
        &self,
        registry: &Registry,
        image: &ImageRef,
        expected: Option<&Digest>,
        progress: Progress<'_>,
    ) -> Result<CachedModule> {
        let (manifest_digest, manifest) = fetch_image_manifest(registry, image, expected).await?;
        if let Some(hit) = self.load(&self.manifest_record(&manifest_digest)) {
            // Same manifest as cached (Always on an unchanged tag): remember the tag, download nothing.
            let json = serde_json::to_vec_pretty(&hit).map_err(|e| Error::bad(image.to_string(), e.to_string()))?;
            write_atomic(&self.root.join("tmp"), &self.ref_record(image), &json)?;
            return Ok(hit);
        }
        let pulled = pull_layers(registry, image, manifest_digest, manifest, progress).await?;
        let record = CachedModule {
            reference: image.to_string(),
            manifest_digest: pulled.manifest_digest.to_string(),
            module_digest: pulled.module_digest.to_string(),
            size: pulled.module.len() as u64,
            format: pulled.format.name().to_string(),
            metadata: pulled.metadata,
            metadata_source: pulled.metadata_source,
            abi_version: pulled.abi_version,
            path: self.module_path(&pulled.module_digest),
        };
        let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::bad(image.to_string(), e.to_string()))?;
        let (tmp, path) = (self.root.join("tmp"), record.path.clone());
        let targets = vec![
            (path, pulled.module),
            (self.manifest_record(&pulled.manifest_digest), json.clone()),
            (self.ref_record(image), json),
        ];
        tokio::task::spawn_blocking(move || {
            targets.into_iter().try_for_each(|(path, data)| write_atomic(&tmp, &path, &data))
        })
        .await
        .map_err(|e| Error::bad(image.to_string(), format!("cache writer failed: {e}")))??;
        Ok(record)
    }
}

/// Writes to a temporary file in `tmp` (same filesystem), syncs it, then renames it into place.
pub fn write_atomic(tmp: &Path, path: &Path, data: &[u8]) -> Result<()> {
    let mut file = tempfile::NamedTempFile::new_in(tmp).map_err(|e| Error::io(tmp, e))?;
    file.write_all(data).map_err(|e| Error::io(file.path().to_path_buf(), e))?;
    file.as_file().sync_all().map_err(|e| Error::io(file.path().to_path_buf(), e))?;
    file.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_default_policies() {
        let p = |r: &str| PullPolicy::default_for(&ImageRef::parse(r).unwrap());
        assert_eq!(p("x.io/a"), PullPolicy::Always);
        assert_eq!(p("x.io/a:latest"), PullPolicy::Always);
        assert_eq!(p("x.io/a:1.0"), PullPolicy::IfNotPresent);
        assert_eq!(p(&format!("x.io/a:latest@sha256:{}", "a".repeat(64))), PullPolicy::IfNotPresent);
    }

    #[test]
    fn atomic_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        write_atomic(&tmp, &dir.path().join("f"), b"data").unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"data");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }
}
