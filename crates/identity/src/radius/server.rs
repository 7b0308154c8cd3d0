//! The UDP listener: who may send (NAS by address or network, each with its secret), the
//! receive loop, and the answer.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::packet::{self, Drop, Status};
use super::sessions::Sessions;
use crate::SharedIdentities;
use poolguard_config::identity::{RadiusClientConfig, RadiusConfig};

/// Why a NAS's shared secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("identity.radius.clients[{index}].secret_file {path}: {source}")]
    File {
        index: usize,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("identity.radius.clients[{index}]: the shared secret is empty")]
    Empty { index: usize },
    #[error(
        "identity.radius.clients[{index}].secret_env: the environment variable `{name}` is not set"
    )]
    Env { index: usize, name: String },
    #[error("identity.radius.clients[{index}].address `{address}` is not an address or network")]
    Address { index: usize, address: String },
    #[error("identity.radius.listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// One allowed NAS: the addresses it sends from and its shared secret.
#[derive(Clone)]
pub struct Nas {
    pub network: IpNet,
    secret: Arc<[u8]>,
}

impl std::fmt::Debug for Nas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Nas")
            .field("network", &self.network)
            .finish()
    }
}

impl Nas {
    /// A NAS with a secret given directly (tests, tools).
    pub fn new(network: IpNet, secret: &[u8]) -> Self {
        Self {
            network,
            secret: secret.into(),
        }
    }

    /// The `index`th configured client, its secret read from its file (first line) or
    /// environment variable. `resolve` anchors relative paths at the config's directory.
    pub fn from_config(
        index: usize,
        c: &RadiusClientConfig,
        resolve: &dyn Fn(&Path) -> std::path::PathBuf,
    ) -> Result<Self, SecretError> {
        let network = c.network().ok_or_else(|| SecretError::Address {
            index,
            address: c.address.clone(),
        })?;
        let secret = match (&c.secret_file, &c.secret_env) {
            (Some(f), _) => {
                let path = resolve(f);
                let text = std::fs::read_to_string(&path).map_err(|source| SecretError::File {
                    index,
                    path: path.clone(),
                    source,
                })?;
                text.lines().next().unwrap_or("").trim_end().to_string()
            }
            (None, Some(name)) => std::env::var(name).map_err(|_| SecretError::Env {
                index,
                name: name.clone(),
            })?,
            (None, None) => String::new(),
        };
        if secret.is_empty() {
            return Err(SecretError::Empty { index });
        }
        Ok(Self::new(network, secret.as_bytes()))
    }
}

/// A bound accounting listener, ready to run.
pub struct RadiusServer {
    socket: UdpSocket,
    clients: Vec<Nas>,
    index: SharedIdentities,
}

impl RadiusServer {
    /// Binds `[identity.radius] listen` and reads every NAS's secret.
    pub async fn bind(
        cfg: &RadiusConfig,
        resolve: &dyn Fn(&Path) -> std::path::PathBuf,
        index: SharedIdentities,
    ) -> Result<Self, SecretError> {
        let clients = cfg
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| Nas::from_config(i, c, resolve))
            .collect::<Result<Vec<_>, _>>()?;
        Self::bind_with(cfg.listen, clients, index).await
    }

    /// Binds `listen` for `clients`.
    pub async fn bind_with(
        listen: SocketAddr,
        clients: Vec<Nas>,
        index: SharedIdentities,
    ) -> Result<Self, SecretError> {
        let socket = UdpSocket::bind(listen)
            .await
            .map_err(|source| SecretError::Bind {
                addr: listen,
                source,
            })?;
        Ok(Self {
            socket,
            clients,
            index,
        })
    }

    /// The address bound (port 0 in the config picks one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Receives and answers until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut sessions = Sessions::default();
        let mut buf = vec![0u8; packet::MAX_PACKET];
        loop {
            let (len, from) = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok(r) => r,
                    Err(error) => {
                        tracing::debug!(%error, "radius receive failed");
                        continue;
                    }
                },
            };
            let now_ms = crate::now_ms();
            match self.accept(&buf[..len], from.ip(), &mut sessions, now_ms) {
                Ok(answer) => {
                    if let Err(error) = self.socket.send_to(&answer, from).await {
                        tracing::debug!(%error, %from, "radius answer not sent");
                    }
                }
                Err(drop) => {
                    metrics::counter!("poolguard_radius_dropped_total", "reason" => drop.label())
                        .increment(1);
                    tracing::debug!(%from, reason = %drop, "radius packet dropped");
                }
            }
        }
    }

    /// Checks one packet from `from`; on success stores its evidence and returns the answer.
    fn accept(
        &self,
        bytes: &[u8],
        from: IpAddr,
        sessions: &mut Sessions,
        now_ms: i64,
    ) -> Result<[u8; 20], Drop> {
        let from = from.to_canonical();
        let nas = self
            .clients
            .iter()
            .filter(|n| n.network.contains(&from))
            .max_by_key(|n| n.network.prefix_len())
            .ok_or(Drop::UnknownNas)?;
        let acct = packet::parse_request(bytes, &nas.secret)?;
        let events = sessions.handle(from, &acct, now_ms);
        self.index.apply_all(events);
        let status = match acct.status {
            Some(Status::Start) => "start",
            Some(Status::Interim) => "interim",
            Some(Status::Stop) => "stop",
            Some(Status::AccountingOn) => "on",
            Some(Status::AccountingOff) => "off",
            _ => "other",
        };
        metrics::counter!("poolguard_radius_requests_total", "status" => status).increment(1);
        Ok(packet::response(&acct, &nas.secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdentityIndex;

    #[tokio::test]
    async fn accepted_requests_are_answered_others_dropped() {
        let index = IdentityIndex::shared();
        let nas = Nas::new("127.0.0.0/8".parse().unwrap(), b"s3cret");
        let server = RadiusServer::bind_with(
            "127.0.0.1:0".parse().unwrap(),
            vec![nas],
            Arc::clone(&index),
        )
        .await
        .expect("bound");
        let start = packet::request(
            3,
            &[
                (40, &1u32.to_be_bytes()),
                (1, b"bob"),
                (8, &[10, 213, 3, 7]),
            ],
            b"s3cret",
        );
        let mut sessions = Sessions::default();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let answer = server
            .accept(&start, local, &mut sessions, 1000)
            .expect("answered");
        assert_eq!(answer[0], packet::ACCOUNTING_RESPONSE);
        assert_eq!(answer[1], 3);
        let ip: IpAddr = "10.213.3.7".parse().unwrap();
        assert_eq!(
            index.lookup(ip, 1000).and_then(|h| h.account).as_deref(),
            Some("bob")
        );
        let other: IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(
            server.accept(&start, other, &mut sessions, 1000),
            Err(Drop::UnknownNas)
        );
        let forged = packet::request(4, &[(8, &[10, 213, 3, 8])], b"guess");
        assert_eq!(
            server.accept(&forged, local, &mut sessions, 1000),
            Err(Drop::BadAuthenticator)
        );
        assert!(index.lookup("10.213.3.8".parse().unwrap(), 1000).is_none());
    }
}
