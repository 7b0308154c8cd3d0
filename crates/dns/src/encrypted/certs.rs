//! The certificate of an encrypted listener: read from PEM files at start, read again on
//! SIGHUP, swapped in whole.
//!
//! Each accept takes the config in force at that moment ([`TlsCerts::acceptor`]); a session
//! already open keeps the one it was made with, so a reload drops no connection. A new pair
//! that does not load (a missing file, no certificate, a key that does not match) leaves the
//! old one serving and is reported with the file and the cause.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why a certificate pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The file could not be read or is not PEM.
    #[error("{path}: {reason}")]
    File {
        /// The file named in the config.
        path: PathBuf,
        /// What was wrong, for the operator.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key is not the certificate's).
    #[error("{cert} with {key}: {reason}")]
    Pair {
        /// The certificate chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// One listener's certificate files, ALPN protocols and the config in force.
pub struct TlsCerts {
    cert_file: PathBuf,
    key_file: PathBuf,
    alpn: Vec<Vec<u8>>,
    current: ArcSwap<ServerConfig>,
}

impl TlsCerts {
    /// Loads the pair; `alpn` = the protocols offered, in preference order (`dot`; `h2`,
    /// `http/1.1`).
    pub fn load(cert_file: &Path, key_file: &Path, alpn: &[&[u8]]) -> Result<Self, CertError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let config = server_config(cert_file, key_file, &alpn)?;
        Ok(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            alpn,
            current: ArcSwap::from_pointee(config),
        })
    }

    /// Reads the files again; on success new sessions use the new pair, on failure the old
    /// one stays and the error says why.
    pub fn reload(&self) -> Result<(), CertError> {
        let config = server_config(&self.cert_file, &self.key_file, &self.alpn)?;
        self.current.store(Arc::new(config));
        Ok(())
    }

    /// An acceptor with the config in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// The certificate file, for log lines.
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }
}

fn server_config(
    cert_file: &Path,
    key_file: &Path,
    alpn: &[Vec<u8>],
) -> Result<ServerConfig, CertError> {
    let file_error = |path: &Path, reason: String| CertError::File {
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| file_error(cert_file, format!("cannot read: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert_file, format!("not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(file_error(
            cert_file,
            "holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        file_error(
            key_file,
            format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
        )
    })?;
    // The same crypto provider as the syslog export and the PostgreSQL client (ring).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pair_error = |reason: String| CertError::Pair {
        cert: cert_file.to_path_buf(),
        key: key_file.to_path_buf(),
        reason,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| pair_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| pair_error(e.to_string()))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}
