//! tar.gz layers: reading `plugin.wasm` out of hostile archives, and writing a deterministic one.

use std::io::{self, Read, Write};
use std::path::{Component, Path};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use tar::EntryType;

use crate::error::{Error, Result};
use crate::media::Limits;

/// The file name Istio, Envoy Gateway and Higress look for.
pub const PLUGIN_WASM: &str = "plugin.wasm";

/// Errors from inside the decompressor are carried through `io::Error` with this payload.
#[derive(Debug)]
struct CapExceeded(u64);

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decompressed data exceeds {} bytes", self.0)
    }
}
impl std::error::Error for CapExceeded {}

/// Counts bytes coming out of the decompressor and fails past the cap (gzip bombs).
struct Capped<R> {
    inner: R,
    read: u64,
    cap: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(io::Error::other(CapExceeded(self.cap)));
        }
        Ok(n)
    }
}

/// Finds `plugin.wasm` in a tar.gz layer. Rejects absolute and `..` paths, links, device files,
/// a duplicate `plugin.wasm`, an entry whose declared size is over the module limit (before
/// allocating), too many entries and more decompressed bytes than the limit allows.
pub fn extract_plugin_wasm(image: &str, layer: &str, gz: &[u8], limits: &Limits) -> Result<Vec<u8>> {
    let bad = |reason: String| Error::bad(image, format!("{layer}: {reason}"));
    // Tar headers and padding on top of the module: 1 MiB of slack.
    let cap = limits.max_module_bytes.saturating_add(1 << 20);
    let reader = Capped { inner: GzDecoder::new(gz), read: 0, cap };
    let mut archive = tar::Archive::new(reader);
    let io_err = |e: io::Error| {
        if e.get_ref().is_some_and(|inner| inner.is::<CapExceeded>()) {
            Error::TooLarge {
                image: image.to_string(),
                what: format!("{layer} decompressed"),
                size: cap + 1,
                limit: cap,
            }
        } else {
            Error::bad(image, format!("{layer}: not a valid tar.gz: {e}"))
        }
    };
    let mut found: Option<Vec<u8>> = None;
    let entries = archive.entries().map_err(io_err)?;
    for (count, entry) in entries.enumerate() {
        if count >= limits.max_tar_entries {
            return Err(bad(format!("more than {} tar entries", limits.max_tar_entries)));
        }
        let mut entry = entry.map_err(io_err)?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        check_path(&raw_path).map_err(|r| bad(format!("tar entry `{raw_path}`: {r}")))?;
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Directory => continue,
            EntryType::Regular | EntryType::Continuous => {}
            EntryType::Symlink | EntryType::Link => {
                return Err(bad(format!("tar entry `{raw_path}` is a link; links are not allowed")));
            }
            other => return Err(bad(format!("tar entry `{raw_path}` has unsupported type {other:?}"))),
        }
        let name = Path::new(&raw_path).components().filter(|c| !matches!(c, Component::CurDir)).collect::<Vec<_>>();
        let is_plugin = name.len() == 1 && name[0].as_os_str() == PLUGIN_WASM;
        if !is_plugin {
            continue; // its data is skipped, still through the decompression cap
        }
        if found.is_some() {
            return Err(bad(format!("more than one `{PLUGIN_WASM}` entry")));
        }
        let size = entry.header().size().map_err(io_err)?;
        if size > limits.max_module_bytes {
            return Err(Error::TooLarge {
                image: image.to_string(),
                what: format!("{layer}: tar entry `{raw_path}` (declared size)"),
                size,
                limit: limits.max_module_bytes,
            });
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&mut entry).take(size).read_to_end(&mut data).map_err(io_err)?;
        if (data.len() as u64) != size {
            return Err(bad(format!("tar entry `{raw_path}` is truncated")));
        }
        found = Some(data);
    }
    found.ok_or_else(|| bad(format!("no `{PLUGIN_WASM}` in the archive")))
}

fn check_path(path: &str) -> std::result::Result<(), &'static str> {
    if path.starts_with('/') || path.starts_with('\\') {
        return Err("absolute paths are not allowed");
    }
    if path.split(['/', '\\']).any(|c| c == "..") {
        return Err("`..` in paths is not allowed");
    }
    Ok(())
}

/// A tar.gz holding only `plugin.wasm`, byte-identical for identical modules (mtime 0, root, 0644).
pub fn pack_plugin_wasm(wasm: &[u8]) -> Result<Vec<u8>> {
    let io_err = |e| Error::io("plugin.tar.gz", e);
    let mut header = tar::Header::new_ustar();
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(EntryType::Regular);
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::best()));
    builder.append_data(&mut header, PLUGIN_WASM, wasm).map_err(io_err)?;
    let mut gz = builder.into_inner().map_err(io_err)?;
    gz.flush().map_err(io_err)?;
    gz.finish().map_err(io_err)
}

/// Checks the Wasm magic and that this is a core module (what proxies load), not a component.
pub fn check_wasm(source_name: &str, bytes: &[u8]) -> Result<()> {
    let bad = |reason: &str| Error::BadModule { source_name: source_name.to_string(), reason: reason.into() };
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(bad("no Wasm magic number (\\0asm) at the start"));
    }
    if bytes[4..8] != [1, 0, 0, 0] {
        return Err(bad("not a core Wasm module (version 1); proxies cannot load components"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(entries: &[(&str, EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if matches!(kind, EntryType::Symlink | EntryType::Link) {
                h.set_size(0);
                h.set_link_name("/etc/passwd").unwrap();
            }
            // set_path refuses `..`; write the raw name like a hostile tool would.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    const WASM: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn round_trip_and_deterministic() {
        let a = pack_plugin_wasm(WASM).unwrap();
        assert_eq!(a, pack_plugin_wasm(WASM).unwrap());
        assert_eq!(extract_plugin_wasm("img", "layer", &a, &Limits::default()).unwrap(), WASM);
        let dotted = tar_gz(&[("./", EntryType::Directory, b""), ("./plugin.wasm", EntryType::Regular, WASM)]);
        assert_eq!(extract_plugin_wasm("img", "layer", &dotted, &Limits::default()).unwrap(), WASM);
    }

    #[test]
    fn hostile_archives() {
        let l = Limits::default();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (tar_gz(&[("../plugin.wasm", EntryType::Regular, WASM)]), "`..`"),
            (tar_gz(&[("/plugin.wasm", EntryType::Regular, WASM)]), "absolute"),
            (tar_gz(&[("plugin.wasm", EntryType::Symlink, b"")]), "link"),
            (tar_gz(&[("plugin.wasm", EntryType::Link, b"")]), "link"),
            (
                tar_gz(&[("plugin.wasm", EntryType::Regular, WASM), ("./plugin.wasm", EntryType::Regular, WASM)]),
                "more than one",
            ),
            (tar_gz(&[("other.wasm", EntryType::Regular, WASM)]), "no `plugin.wasm`"),
            (b"not gzip at all".to_vec(), "not a valid tar.gz"),
        ];
        for (data, want) in cases {
            let err = extract_plugin_wasm("img", "layer", &data, &l).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn huge_declared_size_is_refused_before_allocation() {
        let mut h = tar::Header::new_gnu();
        h.set_path("plugin.wasm").unwrap();
        h.set_size(1 << 40);
        h.set_cksum();
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(h.as_bytes()).unwrap();
        let err = extract_plugin_wasm("img", "layer", &gz.finish().unwrap(), &Limits::default()).unwrap_err();
        assert!(matches!(err, Error::TooLarge { size, .. } if size == 1 << 40), "{err}");
    }

    #[test]
    fn gzip_bomb_hits_the_cap() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = tar_gz(&[("filler", EntryType::Regular, &zeros), ("plugin.wasm", EntryType::Regular, WASM)]);
        assert!(bomb.len() < 64 << 10);
        let limits = Limits { max_module_bytes: 1 << 20, ..Limits::default() };
        let err = extract_plugin_wasm("img", "layer", &bomb, &limits).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    }

    #[test]
    fn wasm_magic() {
        assert!(check_wasm("m", WASM).is_ok());
        assert!(check_wasm("m", b"\x7fELF\x02\x01\x01\0").unwrap_err().to_string().contains("magic"));
        assert!(check_wasm("m", b"\0asm\x0d\0\x01\0").unwrap_err().to_string().contains("component"));
    }
}
