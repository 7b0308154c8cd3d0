//! The HTTP listeners besides DNS (API, metrics, notice page): binding them, and naming them in
//! errors with the config key that sets them.

use std::net::SocketAddr;

use super::AppError;

/// The HTTP listeners poolguard serves besides DNS, named with their config key in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Api,
    Metrics,
    Notice,
    /// The staff console on its own address.
    Console,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Api => "API (`[api] listen`)",
            Self::Metrics => "metrics (`[api] metrics_listen`)",
            Self::Notice => "notice page (`[notice] listen`)",
            Self::Console => "staff console (`[console] listen`)",
        })
    }
}

/// Binds one of the HTTP listeners; the one place their bind errors are made.
pub(super) async fn bind_listener(
    listener: Listener,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, AppError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|cause| AppError::Listen {
            listener,
            addr,
            cause,
        })
}
