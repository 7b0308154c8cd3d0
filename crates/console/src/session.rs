//! Signed-in sessions: an unguessable id in an HttpOnly cookie, the rest in this process.
//!
//! The id is 32 bytes from the thread-local CSPRNG (ChaCha, seeded from the OS); the cookie is
//! `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it) and
//! `Secure` behind TLS, and it expires with the session. Every session carries its own CSRF
//! token, which every console form sends back and every write checks in constant time.
//! Sessions live in memory on the node that signed the person in: with several nodes behind
//! one name, a session is per node (docs/CONSOLE.md), and a restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use poolguard_api::Caller;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "pg_session";

/// Most sessions kept at once: a bound on memory whatever sign-in rate a script manages.
const MAX_SESSIONS: usize = 10_000;

/// How the API recognises the person: their token (so a revoked token ends the session at
/// the next page) or the console's word for a username/password account.
#[derive(Clone)]
pub enum Credential {
    /// The API token they signed in with, presented as `Authorization: Bearer` on each call.
    Token(String),
    /// A `[[console.users]]` account, passed to the API as `SignedIn`.
    User,
}

/// One signed-in person.
#[derive(Clone)]
pub struct Session {
    /// Who signed in, with their role (as the API knows them).
    pub caller: Caller,
    /// What each API call presents.
    pub credential: Credential,
    /// Sent back in every form as `csrf`; 32 random bytes, hex.
    pub csrf: String,
    expires: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        self.csrf.len() == presented.len()
            && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Every live session on this node.
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// An empty table whose sessions last `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts (the cookie's Max-Age).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session; returns its id (the cookie's value).
    pub fn create(&self, caller: Caller, credential: Credential) -> String {
        let id = random_hex();
        let session = Session {
            caller,
            credential,
            csrf: random_hex(),
            expires: Instant::now() + self.ttl,
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_SESSIONS {
            let now = Instant::now();
            map.retain(|_, s| s.expires > now);
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), session);
        id
    }

    /// The live session with this id; an expired one is removed and answers None.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session (sign-out): its cookie is refused from now on.
    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// How many sessions are live (for the idle-memory measurement).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// No session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use poolguard_config::Role;

    fn caller() -> Caller {
        Caller {
            name: "alice".into(),
            role: Role::Viewer,
        }
    }

    #[test]
    fn a_removed_session_is_gone_and_ids_differ() {
        let s = Sessions::new(Duration::from_secs(60));
        let a = s.create(caller(), Credential::User);
        let b = s.create(caller(), Credential::User);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(s.get(&a).is_some());
        s.remove(&a);
        assert!(s.get(&a).is_none());
        assert!(s.get(&b).is_some());
    }

    #[test]
    fn csrf_must_match_exactly() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.create(caller(), Credential::User);
        let session = s.get(&id).expect("live");
        let token = session.csrf.clone();
        assert!(session.csrf_ok(&token));
        assert!(!session.csrf_ok(""));
        assert!(!session.csrf_ok(&token[1..]));
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = session_cookie("abc", Duration::from_secs(3600), true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(c.contains("Max-Age=3600"));
        assert!(!session_cookie("abc", Duration::from_secs(1), false).contains("Secure"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; pg_session=xyz; b=2".parse().expect("header"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
