//! Compiled modules kept on disk, so a module compiles once per machine instead of at every
//! start: cranelift takes seconds on a multi-megabyte module (a Go-built plugin), loading the
//! compiled code takes milliseconds.
//!
//! An entry is named by the module's sha256 and a hash of everything in the engine that changes
//! the compiled code (wasmtime's `precompile_compatibility_hash`: target, compiler flags,
//! tunables, wasm features, wasmtime version), and holds wasmtime's own serialized form
//! (`Module::serialize`). wasmtime's `cache` feature does the same, but it reports no hits, keys
//! the entries itself and brings a C zstd build; this is the small part of it the host needs.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// Entries kept; the least recently used go first.
const MAX_ENTRIES: usize = 64;

/// A directory of compiled modules.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

/// How a [`crate::Plugin`]'s module was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compilation {
    /// Compiling, or loading from the cache (validation included).
    pub took: Duration,
    /// Loaded from a [`CompileCache`] rather than compiled.
    pub from_cache: bool,
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache { dir: dir.into() }
    }

    /// `$XDG_CACHE_HOME/wasmplug/compiled`, else `$HOME/.cache/wasmplug/compiled`.
    pub fn default_dir() -> Option<PathBuf> {
        Some(wasmplug_contract::dirs::user_cache_dir()?.join("compiled"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry of `bytes` compiled by `engine` is.
    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut settings = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut settings);
        let module = hex::encode(Sha256::digest(bytes));
        self.dir.join(format!("{module}-{:016x}.cwasm", settings.finish()))
    }

    /// The compiled module of `bytes`: from the cache when an entry loads, else compiled and
    /// stored. A cache that cannot be read or written is passed over (logged), never an error.
    pub(crate) fn module(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<(Module, Compilation)> {
        let started = Instant::now();
        let entry = self.entry(engine, bytes);
        let usable = match create_private_dir(&self.dir) {
            Ok(()) => self.trusted(),
            Err(e) => {
                log::warn!("compile cache {}: cannot create it: {e}", self.dir.display());
                false
            }
        };
        if let Some(module) = usable.then(|| self.load(engine, &entry)).flatten() {
            return Ok((module, Compilation { took: started.elapsed(), from_cache: true }));
        }
        let module = Module::new(engine, bytes)?;
        let compilation = Compilation { took: started.elapsed(), from_cache: false };
        if usable && let Err(e) = self.store(&module, &entry) {
            log::warn!("compile cache {}: cannot store {}: {e}", self.dir.display(), entry.display());
        }
        Ok((module, compilation))
    }

    fn load(&self, engine: &Engine, entry: &Path) -> Option<Module> {
        let bytes = std::fs::read(entry).ok()?;
        // SAFETY: the entry was written by `store` from `Module::serialize` of this wasmtime
        // (its version is in the key, and wasmtime checks it and the engine settings again)
        // into a directory only this user can write to (`trusted`); it is read into memory,
        // so later changes to the file do not reach the loaded module.
        match unsafe { Module::deserialize(engine, &bytes) } {
            Ok(module) => {
                // Mark it used, for the least-recently-used pruning.
                let _ =
                    std::fs::File::options().append(true).open(entry).and_then(|f| f.set_modified(SystemTime::now()));
                Some(module)
            }
            Err(e) => {
                log::warn!("compile cache: {} does not load, compiling again: {e:#}", entry.display());
                let _ = std::fs::remove_file(entry);
                None
            }
        }
    }

    /// The directory is one and nobody but its owner can write to it (entries hold machine
    /// code), as `ssh` requires of its own files.
    fn trusted(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            match std::fs::metadata(&self.dir) {
                Ok(meta) if meta.permissions().mode() & 0o022 != 0 => {
                    log::warn!("compile cache {} is writable by others: not used (chmod go-w it)", self.dir.display());
                    false
                }
                Ok(meta) => meta.is_dir(),
                Err(_) => false,
            }
        }
        #[cfg(not(unix))]
        {
            self.dir.is_dir()
        }
    }

    fn store(&self, module: &Module, entry: &Path) -> std::io::Result<()> {
        let bytes = module.serialize().map_err(std::io::Error::other)?;
        let partial = entry.with_extension(format!("partial.{}", std::process::id()));
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, entry)?;
        self.prune();
        Ok(())
    }

    /// Removes the least recently used entries beyond [`MAX_ENTRIES`].
    fn prune(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return };
        let mut entries: Vec<(SystemTime, PathBuf)> = dir
            .filter_map(|e| {
                let path = e.ok()?.path();
                let used = path.metadata().ok()?.modified().ok()?;
                (path.extension()? == "cwasm").then_some((used, path))
            })
            .collect();
        if entries.len() <= MAX_ENTRIES {
            return;
        }
        entries.sort();
        for (_, path) in &entries[..entries.len() - MAX_ENTRIES] {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
