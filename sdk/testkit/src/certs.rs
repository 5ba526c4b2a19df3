//! Certificates made by `openssl`, independently of the project's own CA code: a CA and a
//! gateway client certificate, as the three files of a mounted TLS Secret.

use std::path::Path;
use std::process::Command;

/// Writes `tls.crt` and `tls.key` (common name `node`, one day) and `ca.crt` (their CA) into
/// `dir`, creating it.
pub fn openssl_gateway_certificate(dir: &Path, node: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let openssl = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("openssl (make registry-tools): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
        }
    };
    let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = ["-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=test-ca", "-days", "1"];
    openssl(&[&["req", "-x509"][..], &key, &ca].concat())?;
    let subject = format!("/CN={node}");
    openssl(&[&["req"][..], &key, &["-keyout", "tls.key", "-out", "tls.csr", "-subj", &subject]].concat())?;
    openssl(&["x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-out", "tls.crt", "-days", "1"])
}
