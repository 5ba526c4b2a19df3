//! Warm before publish: a filter goes to gateways only once the module server can serve its
//! module. A module file is checked once by content (its sha256), then by presence at every
//! publish; a plugin whose new module cannot be served keeps its previous filter.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// The module files known to hold what their sha256 says.
#[derive(Debug, Default)]
pub struct Warm {
    verified: Mutex<HashSet<(String, PathBuf)>>,
}

impl Warm {
    /// Whether the module server can serve `sha` (hex) from `path` now.
    pub fn servable(&self, sha: &str, path: &Path) -> bool {
        let key = (sha.to_string(), path.to_path_buf());
        let known = self.verified.lock().is_ok_and(|v| v.contains(&key));
        if known {
            if path.is_file() {
                return true;
            }
            if let Ok(mut v) = self.verified.lock() {
                v.remove(&key);
            }
            return false;
        }
        let holds = std::fs::read(path).is_ok_and(|bytes| hex::encode(Sha256::digest(&bytes)) == sha);
        if holds && let Ok(mut v) = self.verified.lock() {
            v.insert(key);
        }
        holds
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_module_is_servable_when_its_file_holds_its_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wasm");
        let sha = hex::encode(Sha256::digest(b"module"));
        let warm = Warm::default();
        assert!(!warm.servable(&sha, &path), "missing");
        std::fs::write(&path, b"other").unwrap();
        assert!(!warm.servable(&sha, &path), "other content");
        std::fs::write(&path, b"module").unwrap();
        assert!(warm.servable(&sha, &path));
        std::fs::remove_file(&path).unwrap();
        assert!(!warm.servable(&sha, &path), "removed after it was verified");
    }
}
