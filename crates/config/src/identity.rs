//! `[identity]`: where poolguard learns who held an address when (DHCP leases, RADIUS
//! accounting). The static ledger (`[clients] ledger`) then says whose a MAC or account is.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::duration::de_opt_duration;

/// The identity sources. All are optional; with none configured hits are attributed through
/// the ledger alone, as before.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// ISC Kea memfile lease files (`kea-leases4.csv`, `kea-leases6.csv`), followed.
    pub kea: Vec<LeaseFileConfig>,
    /// ISC dhcpd `dhcpd.leases` files, followed through appends and rewrites.
    pub dhcpd: Vec<LeaseFileConfig>,
    /// poolguard as a RADIUS accounting server (portal and 802.1X logins).
    pub radius: Option<RadiusConfig>,
    /// How often followed lease files are checked for appended rows or a rewrite ("1s"
    /// default): a hit written before its lease row is read is attributed by the ledger only.
    #[serde(deserialize_with = "de_opt_duration")]
    pub follow_every: Option<Duration>,
}

impl IdentityConfig {
    /// The polling period of lease files.
    pub fn follow_period(&self) -> Duration {
        self.follow_every.unwrap_or(Duration::from_secs(1))
    }

    /// Whether any source is configured.
    pub fn any(&self) -> bool {
        !self.kea.is_empty() || !self.dhcpd.is_empty() || self.radius.is_some()
    }
}

/// One followed lease file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseFileConfig {
    /// The file the DHCP server writes (relative to the config's directory).
    pub path: PathBuf,
}

/// `[identity.radius]`: the accounting listener and the NAS allowed to send to it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusConfig {
    /// UDP address accounting arrives on (RFC 2866 port: 1813).
    pub listen: SocketAddr,
    /// Each NAS (or FreeRADIUS proxy) and its shared secret. Packets from any other source
    /// are dropped and counted.
    pub clients: Vec<RadiusClientConfig>,
}

/// One RADIUS client (NAS): its address or network and where its shared secret is kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RadiusClientConfig {
    /// An address (`10.0.0.5`) or a network (`10.0.0.0/24`).
    pub address: String,
    /// A file whose first line is the shared secret (mode 0600).
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the shared secret.
    pub secret_env: Option<String>,
}

impl RadiusClientConfig {
    /// The client's network (a single address is a /32 or /128); `None` when unparsable
    /// (validation refuses such a config first).
    pub fn network(&self) -> Option<IpNet> {
        let text = self.address.trim();
        text.parse::<IpNet>()
            .ok()
            .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
    }
}

/// Checks what serde cannot; returns the key to fix and why.
pub(crate) fn validate(
    identity: &IdentityConfig,
    resolve: &dyn Fn(&std::path::Path) -> PathBuf,
) -> Result<(), (String, String)> {
    if identity.follow_every == Some(Duration::ZERO) {
        return Err((
            "identity.follow_every".into(),
            "must be above 0, e.g. \"1s\"".into(),
        ));
    }
    // A lease file that does not exist yet is not an error: the DHCP server creates it on
    // its first lease, and the follower picks it up then.
    for (kind, files) in [("kea", &identity.kea), ("dhcpd", &identity.dhcpd)] {
        for (i, f) in files.iter().enumerate() {
            if f.path.as_os_str().is_empty() {
                return Err((
                    format!("identity.{kind}[{i}].path"),
                    "must name the lease file".into(),
                ));
            }
        }
    }
    let Some(radius) = &identity.radius else {
        return Ok(());
    };
    if radius.clients.is_empty() {
        return Err((
            "identity.radius.clients".into(),
            "needs at least one NAS ([[identity.radius.clients]] address = \"10.0.0.5\", \
             secret_file = \"...\"): packets from unlisted addresses are dropped"
                .into(),
        ));
    }
    for (i, c) in radius.clients.iter().enumerate() {
        let key = |k: &str| format!("identity.radius.clients[{i}].{k}");
        if c.network().is_none() {
            return Err((
                key("address"),
                format!(
                    "`{}` is neither an address (10.0.0.5) nor a network (10.0.0.0/24)",
                    c.address
                ),
            ));
        }
        match (&c.secret_file, &c.secret_env) {
            (None, None) => {
                return Err((
                    key("secret_file"),
                    "a NAS needs its shared secret: `secret_file` or `secret_env`".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err((
                    format!("{} / {}", key("secret_file"), key("secret_env")),
                    "give one of them, not both".into(),
                ));
            }
            (Some(f), None) if !resolve(f).is_file() => {
                return Err((
                    key("secret_file"),
                    format!("{} does not exist", resolve(f).display()),
                ));
            }
            (None, Some(v)) if v.is_empty() => {
                return Err((
                    key("secret_env"),
                    "must name an environment variable".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, crate::ConfigError> {
        let text = format!("[dns]\nlisten = [\"127.0.0.1:5353\"]\n{text}");
        Config::from_toml(&text, Path::new("config.toml"), Path::new("/nonexistent"))
    }

    #[test]
    fn sources_parse() {
        let c = parse(
            "[identity]\nfollow_every = \"2s\"\n[[identity.kea]]\npath = \"/var/lib/kea/kea-leases4.csv\"\n\
             [[identity.dhcpd]]\npath = \"dhcpd.leases\"\n\
             [identity.radius]\nlisten = \"127.0.0.1:1813\"\n\
             [[identity.radius.clients]]\naddress = \"10.0.0.0/24\"\nsecret_env = \"NAS_SECRET\"\n",
        )
        .expect("valid");
        assert_eq!(c.identity.kea.len(), 1);
        assert_eq!(c.identity.follow_period().as_secs(), 2);
        let radius = c.identity.radius.expect("radius");
        assert_eq!(
            radius.clients[0].network(),
            Some("10.0.0.0/24".parse().unwrap())
        );
        assert!(parse("").expect("valid").identity.radius.is_none());
    }

    #[test]
    fn mistakes_name_their_key() {
        let listen = "[identity.radius]\nlisten = \"127.0.0.1:1813\"\n";
        for (text, key) in [
            (
                "[identity]\nfollow_every = \"0s\"\n".to_string(),
                "identity.follow_every",
            ),
            (
                "[[identity.kea]]\npath = \"\"\n".to_string(),
                "identity.kea[0].path",
            ),
            (format!("{listen}clients = []\n"), "identity.radius.clients"),
            (
                format!(
                    "{listen}[[identity.radius.clients]]\naddress = \"10.0.0\"\nsecret_env = \"S\"\n"
                ),
                "identity.radius.clients[0].address",
            ),
            (
                format!("{listen}[[identity.radius.clients]]\naddress = \"10.0.0.5\"\n"),
                "identity.radius.clients[0].secret_file",
            ),
            (
                format!(
                    "{listen}[[identity.radius.clients]]\naddress = \"10.0.0.5\"\nsecret_file = \"nope\"\n"
                ),
                "identity.radius.clients[0].secret_file",
            ),
            (
                format!(
                    "{listen}[[identity.radius.clients]]\naddress = \"10.0.0.5\"\nsecret_file = \"a\"\nsecret_env = \"B\"\n"
                ),
                "identity.radius.clients[0].secret_file / identity.radius.clients[0].secret_env",
            ),
        ] {
            let err = parse(&text).expect_err(&text);
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }
}
