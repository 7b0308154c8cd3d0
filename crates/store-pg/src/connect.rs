//! From `[store]` to connections: the URL, the password (from a file or the environment),
//! TLS when the URL asks for it, and the pool the API reads through.
//!
//! TLS: `sslmode=require` (or `prefer`) in the URL turns TLS on; the server's certificate is
//! always verified, against `[store] ca_file` or the system's CA store, and its name must
//! match the URL's host (libpq's `verify-full`): a shared evidence store is worth no less.

use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use poolguard_config::StoreConfig;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::PgError;

/// Everything needed to open a connection; cloned into every place that opens one (the pool,
/// the shipper thread, the notification listener).
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Connector")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .finish()
    }
}

impl Connector {
    /// Reads `[store]` (paths already resolved against the config directory).
    pub fn from_config(cfg: &StoreConfig) -> Result<Self, PgError> {
        let url = cfg
            .url
            .as_deref()
            .ok_or_else(|| PgError::Url("missing (store.backend = \"postgres\")".into()))?;
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| PgError::Url(e.to_string()))?;
        if let Some(password) = password(cfg)? {
            config.password(password);
        } else if config.get_password().is_some() {
            tracing::warn!(
                "[store] url carries the database password; prefer password_file or password_env"
            );
        }
        if config.get_application_name().is_none() {
            config.application_name("poolguard");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        let tls = tls(cfg)?;
        Ok(Self { config, tls })
    }

    /// Whether connections use TLS (`sslmode` other than `disable`).
    pub fn uses_tls(&self) -> bool {
        self.config.get_ssl_mode() != SslMode::Disable
    }

    /// A pool of at most `size` connections for async work (the API, alerts).
    pub fn pool(&self, size: usize) -> Result<Pool, PgError> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size.max(1))
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))
    }

    /// One async connection, its driver spawned on the current runtime (the task ends when
    /// the client is dropped or the connection fails; a failure is logged).
    pub async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| PgError::Connect(crate::error::describe(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(client)
    }

    /// One async connection whose notifications (`LISTEN`) arrive on the returned channel;
    /// the channel closes when the connection ends, which is how the change listener learns
    /// it must reconnect.
    pub async fn connect_listening(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
        ),
        PgError,
    > {
        let (client, mut connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| PgError::Connect(crate::error::describe(&e)))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            // Bounded by the connection: ends when it closes or fails (the sender drops).
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        let _ = tx.send(n);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "PostgreSQL listening connection ended");
                        return;
                    }
                    None => return,
                }
            }
        });
        Ok((client, rx))
    }

    /// One blocking connection, for a thread of its own (the hit shipper).
    pub fn connect_blocking(&self) -> Result<postgres::Client, PgError> {
        postgres::Config::from(self.config.clone())
            .connect(self.tls.clone())
            .map_err(|e| PgError::Connect(crate::error::describe(&e)))
    }
}

/// The password from `password_file` (first line) or `password_env`, if either is set.
fn password(cfg: &StoreConfig) -> Result<Option<String>, PgError> {
    secret(cfg.password_file.as_deref(), cfg.password_env.as_deref())
}

/// A secret from the first line of `file` or from the environment variable `env` (the
/// database password, the node-to-node token), if either is given.
pub fn secret(
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<Option<String>, PgError> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| PgError::Password(format!("{}: {e}", file.display())))?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            return Err(PgError::Password(format!("{} is empty", file.display())));
        }
        return Ok(Some(line.to_string()));
    }
    if let Some(var) = env {
        let value = std::env::var(var)
            .map_err(|_| PgError::Password(format!("environment variable {var} is not set")))?;
        return Ok(Some(value));
    }
    Ok(None)
}

/// The rustls connector: `ca_file`'s certificates, or the system's CA store.
fn tls(cfg: &StoreConfig) -> Result<MakeRustlsConnect, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(file) = &cfg.ca_file {
        let pem =
            std::fs::read(file).map_err(|e| PgError::Tls(format!("{}: {e}", file.display())))?;
        use rustls_pki_types::pem::PemObject;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| PgError::Tls(format!("{}: {e}", file.display())))?;
            roots
                .add(cert)
                .map_err(|e| PgError::Tls(format!("{}: {e}", file.display())))?;
        }
        if roots.is_empty() {
            return Err(PgError::Tls(format!(
                "{} holds no certificate",
                file.display()
            )));
        }
    } else {
        // An unreadable system store only matters when TLS is used: the handshake then fails
        // with "unknown issuer", which names the fix (ca_file).
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
