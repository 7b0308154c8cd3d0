//! A test certificate authority made with the `openssl` command line (Debian package
//! `openssl`), for every test that needs TLS against a real peer: the syslog export's
//! RFC 5425 receiver, poolguard's own DoT and DoH listeners.

use std::path::Path;
use std::process::Command;

use super::tools::require_tool;

/// Runs `openssl` with `args` in `dir`, panicking with its output on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let bin = require_tool("openssl", "openssl");
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A test CA (`<name>-ca.pem`) and, when `server`, a certificate for 127.0.0.1 and
/// `dns.poolguard.test` signed by it
/// (`server.pem`, `server.key`).
pub fn test_ca(dir: &Path, name: &str, server: bool) {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
        ],
    );
    if server {
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:dns.poolguard.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
    }
}
