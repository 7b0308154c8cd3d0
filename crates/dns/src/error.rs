//! Why the DNS server could not start: one error type for binding, upstream and zone setup,
//! with messages that say which address or setting to fix.

use std::net::SocketAddr;

use crate::exclusive::Holder;
use crate::upstream::UpstreamError;
use crate::zones::ZoneError;
use poolguard_record::Transport;

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The cause is in the message and deliberately not returned by `source()`: `main` prints
    /// the chain, which printed it twice.
    #[error("dns.listen {addr}: cannot bind: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    /// Another process (often a second poolguard) holds the address.
    #[error(
        "dns.listen {addr}: {transport} port already in use by {holder}; two resolvers on one \
         address would split the queries, hits and incidents between them, so this one does not \
         start: stop the other one, or listen on another address"
    )]
    InUse {
        addr: SocketAddr,
        transport: Transport,
        holder: Holder,
    },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("dns worker {worker}: {reason}")]
    Worker { worker: usize, reason: String },
    /// An encrypted listener's address could not be bound (`section` = `dns.tls` or
    /// `dns.https`). Not probed for another process as `[dns] listen` is: a second instance
    /// is refused there first.
    #[error("{section}.listen {addr}: cannot bind: {cause}")]
    BindEncrypted {
        section: &'static str,
        addr: SocketAddr,
        cause: std::io::Error,
    },
    /// An encrypted listener's certificate or key does not load.
    #[error("{section}: certificate not loaded: {error}")]
    Cert {
        section: &'static str,
        error: crate::encrypted::CertError,
    },
}
