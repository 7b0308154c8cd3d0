//! Bearer-token authentication and role checks.
//!
//! Config holds only the SHA-256 of each token, so a leaked config file leaks no credential.
//! A presented token is hashed and compared against every configured hash in constant time
//! (`subtle`), without stopping at the first match, so response timing says nothing about how
//! close a guess was. Tokens are never logged; only the token's configured `name` is.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiState};
use poolguard_config::{Role, TokenConfig};

/// What a route needs. Roles map to permissions in [`Permission::allows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read queries, hits, stats, clients: every role.
    ReadEvidence,
    /// Feed and allowlist writes: `feeds` and `admin`.
    WriteFeeds,
    /// Incident notes and closing: `investigator` and `admin`.
    WriteIncidents,
    /// Everything else (ledger reloads, tokens): `admin` only.
    Admin,
}

impl Permission {
    /// Whether `role` may do this. Explicit per role: `feeds` and `investigator` are siblings.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Permission::ReadEvidence => true,
            Permission::WriteFeeds => matches!(role, Role::Feeds | Role::Admin),
            Permission::WriteIncidents => matches!(role, Role::Investigator | Role::Admin),
            Permission::Admin => role == Role::Admin,
        }
    }
}

/// The authenticated caller, put into request extensions for handlers and audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// A caller the staff console has already signed in (username/password accounts, which have
/// no token to present). Only code in this process can put it on a request: it is a request
/// extension, and nothing turns bytes from the network into extensions, so a browser cannot
/// forge one. The role check below still applies, so the console cannot widen a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn(pub Caller);

#[derive(Clone)]
struct Entry {
    hash: [u8; 32],
    caller: Caller,
}

/// The configured tokens, decoded once.
pub struct Tokens {
    entries: Vec<Entry>,
}

impl Tokens {
    /// Decodes `[[api.tokens]]`; entries with a malformed hash are skipped with a warning
    /// (config validation normally rejects them first).
    pub fn from_config(tokens: &[TokenConfig]) -> Self {
        let mut entries = Vec::new();
        for t in tokens {
            let mut hash = [0u8; 32];
            match hex::decode_to_slice(t.sha256.trim(), &mut hash) {
                Ok(()) => entries.push(Entry {
                    hash,
                    caller: Caller {
                        name: t.name.clone(),
                        role: t.role,
                    },
                }),
                Err(_) => {
                    tracing::warn!(token = %t.name, "api token sha256 is not 64 hex digits; token disabled")
                }
            }
        }
        Self { entries }
    }

    /// How many tokens are configured (and well-formed).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No token is configured: every guarded route answers 401.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tokens but those whose SHA-256 (lower-case hex) is in `revoked`.
    pub fn without(&self, revoked: &std::collections::BTreeSet<String>) -> Tokens {
        let entries = self
            .entries
            .iter()
            .filter(|e| !revoked.contains(&hex::encode(e.hash)))
            .cloned()
            .collect();
        Tokens { entries }
    }

    /// The SHA-256 (lower-case hex) of every token named `name`: what a revocation stores, so
    /// every node refuses the token whatever name its own config gives it.
    pub fn hashes_named(&self, name: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.caller.name == name)
            .map(|e| hex::encode(e.hash))
            .collect()
    }

    /// The caller a presented token belongs to, if any.
    pub fn verify(&self, token: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            if bool::from(e.hash.ct_eq(&digest)) && found.is_none() {
                found = Some(e);
            }
        }
        found.map(|e| e.caller.clone())
    }
}

fn unauthorized(msg: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, msg).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"poolguard\""),
    );
    r
}

/// Puts every route of `router` behind a token with `permission`: the one way routes are
/// guarded, so no group can be wired with a different check by mistake.
pub fn guard(
    router: axum::Router<ApiState>,
    state: &ApiState,
    permission: Permission,
) -> axum::Router<ApiState> {
    router.route_layer(axum::middleware::from_fn_with_state(
        (state.clone(), permission),
        require,
    ))
}

/// Middleware: 401 without a valid bearer token, 403 when the role lacks `permission`.
pub async fn require(
    State((state, permission)): State<(ApiState, Permission)>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(SignedIn(caller)) = req.extensions().get::<SignedIn>().cloned() {
        return admit(caller, permission, req, next).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let Some(token) = presented else {
        return unauthorized("missing `Authorization: Bearer <token>` header");
    };
    let Some(caller) = state.tokens.load().verify(token) else {
        tracing::info!(path = %req.uri().path(), "API request with an unknown token");
        return unauthorized("unknown token");
    };
    admit(caller, permission, req, next).await
}

/// 403 when `caller`'s role lacks `permission`; otherwise the request goes on with `caller`.
async fn admit(caller: Caller, permission: Permission, mut req: Request, next: Next) -> Response {
    if !permission.allows(caller.role) {
        tracing::info!(caller = %caller.name, role = ?caller.role, path = %req.uri().path(), "API request forbidden for role");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("role {:?} may not do this", caller.role).to_lowercase(),
        )
        .into_response();
    }
    tracing::debug!(caller = %caller.name, path = %req.uri().path(), "API request");
    req.extensions_mut().insert(caller);
    next.run(req).await
}
