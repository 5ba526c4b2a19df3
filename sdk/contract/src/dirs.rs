//! Where wasmplug keeps what it can rebuild: `$XDG_CACHE_HOME/wasmplug`, else
//! `$HOME/.cache/wasmplug` (the compile cache, test toolchains, the Go build cache).

use std::path::PathBuf;

/// wasmplug's directory in the user's cache; `None` when neither variable is set.
pub fn user_cache_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let base =
        set("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| set("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wasmplug"))
}
