//! `[console]`: the staff web console served beside the API (docs/CONSOLE.md).
//!
//! The console is on by default wherever the API listens: it is a browser client of the same
//! API with the same tokens, so turning the API on already decided who may see the evidence.
//! `[[console.users]]` adds username/password sign-in for staff who should not handle tokens;
//! only a salted PBKDF2 hash of each password is stored, so a leaked config leaks no password.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Role;

/// `[console]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at all (default true, when `[api] listen` is set).
    pub enabled: bool,
    /// A listener of its own; absent = the console shares `[api] listen` under `/`.
    pub listen: Option<SocketAddr>,
    /// IANA zone the console shows times in; absent = the system's (`TZ`, `/etc/localtime`).
    pub timezone: Option<String>,
    /// How long a sign-in lasts ("8h"); the session cookie expires with it.
    pub session_ttl: String,
    /// Mark the session cookie `Secure`: set it when a TLS proxy fronts the console, so the
    /// browser never sends the cookie over plain HTTP. A request that arrives with
    /// `X-Forwarded-Proto: https` gets a Secure cookie whatever this says.
    pub secure_cookie: bool,
    /// Username/password accounts, besides API-token sign-in.
    pub users: Vec<ConsoleUser>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            timezone: None,
            session_ttl: "8h".into(),
            secure_cookie: false,
            users: Vec::new(),
        }
    }
}

/// A console account: a name, a role (the API's roles) and a password hash.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    /// The sign-in name, also the name written in the audit log.
    pub name: String,
    pub role: Role,
    /// `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`, as `poolguard console-user` prints.
    pub password: String,
}

impl ConsoleConfig {
    /// The session lifetime; `validate` has checked it, so 8 h only for a hand-built config.
    pub fn ttl(&self) -> Duration {
        crate::parse_duration(&self.session_ttl).unwrap_or(Duration::from_secs(8 * 3600))
    }

    /// The zone times are shown in: the configured one, else the system's, else UTC.
    pub fn tz(&self) -> chrono_tz::Tz {
        if let Some(tz) = self.timezone.as_deref().and_then(|z| z.parse().ok()) {
            return tz;
        }
        system_tz().unwrap_or(chrono_tz::Tz::UTC)
    }

    /// Checks the zone, the lifetime and every user's hash; `Err((key, reason))`.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if let Some(z) = &self.timezone
            && z.parse::<chrono_tz::Tz>().is_err()
        {
            return Err((
                "console.timezone".into(),
                format!("`{z}` is not an IANA time zone name; write e.g. \"Asia/Shanghai\""),
            ));
        }
        match crate::parse_duration(&self.session_ttl) {
            Ok(d) if d >= Duration::from_secs(60) => {}
            Ok(_) => {
                return Err((
                    "console.session_ttl".into(),
                    "at least \"1m\"; a shorter sign-in expires while the page loads".into(),
                ));
            }
            Err(e) => return Err(("console.session_ttl".into(), e)),
        }
        for (i, u) in self.users.iter().enumerate() {
            if u.name.trim().is_empty() {
                return Err((
                    format!("console.users[{i}].name"),
                    "must not be empty".into(),
                ));
            }
            if PasswordHash::parse(&u.password).is_none() {
                return Err((
                    format!("console.users[{i}].password"),
                    "not `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`; make one with \
                     `poolguard console-user --name NAME --role ROLE`"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// A parsed `pbkdf2-sha256$…` password hash (the checking itself is the console's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

impl PasswordHash {
    /// Parses the stored form; `None` when any part is missing or not hex.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('$');
        if parts.next()? != "pbkdf2-sha256" {
            return None;
        }
        let iterations: u32 = parts.next()?.parse().ok()?;
        let salt = hex_decode(parts.next()?)?;
        let hash = hex_decode(parts.next()?)?;
        if parts.next().is_some() || iterations == 0 || salt.len() < 8 || hash.len() != 32 {
            return None;
        }
        Some(Self {
            iterations,
            salt,
            hash,
        })
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The system's zone: `TZ` when it names one, else the `/etc/localtime` link's target.
fn system_tz() -> Option<chrono_tz::Tz> {
    if let Ok(tz) = std::env::var("TZ")
        && let Ok(z) = tz.trim_start_matches(':').parse()
    {
        return Some(z);
    }
    let target = std::fs::read_link("/etc/localtime").ok()?;
    let s = target.to_str()?;
    let name = s.split("zoneinfo/").nth(1)?;
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_hash_parses_and_a_short_salt_does_not() {
        let good = format!("pbkdf2-sha256$1000${}${}", "ab".repeat(16), "cd".repeat(32));
        assert_eq!(PasswordHash::parse(&good).map(|h| h.iterations), Some(1000));
        let short = format!("pbkdf2-sha256$1000$ab${}", "cd".repeat(32));
        assert!(PasswordHash::parse(&short).is_none());
        assert!(PasswordHash::parse("sha256$1$aa$bb").is_none());
    }

    #[test]
    fn a_bad_zone_names_the_key() {
        let c = ConsoleConfig {
            timezone: Some("Mars/Olympus".into()),
            ..ConsoleConfig::default()
        };
        assert_eq!(
            c.validate().map_err(|e| e.0),
            Err("console.timezone".into())
        );
    }
}
