//! Why the PostgreSQL store failed, in words an operator can act on.

use poolguard_store::StoreError;

/// A PostgreSQL store failure. Converted to [`StoreError::Backend`] at the store traits, so
/// the API reports it like any other store error.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("[store] url: {0}")]
    Url(String),
    #[error("database password: {0}")]
    Password(String),
    #[error("database TLS: {0}")]
    Tls(String),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("PostgreSQL: {0}")]
    Db(String),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error(
        "the database was written by a newer poolguard (schema {found}, this build knows {supported}); upgrade every node"
    )]
    NewerSchema { found: i64, supported: i64 },
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PgError::Pool(e.to_string())
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Db(describe(&e))
    }
}

/// The server's own words for a failure (`db error` alone says nothing): its message, detail
/// and SQLSTATE, or the whole cause chain for a client-side failure.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(": ");
            text.push_str(detail);
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
