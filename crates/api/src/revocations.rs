//! Revoked API tokens: `DELETE /api/v1/tokens/{name}` and the list every node keeps.
//!
//! A leaked token must stop working at once, on every node, without waiting for the operator
//! to edit every node's `config.toml`. A revocation stores the token's SHA-256 (never the
//! token) in `<feeds_dir>/.poolguard/revoked-tokens` (one hash a line, the node's working
//! copy, read at start and after every reload of `[[api.tokens]]`) and, when the node is one
//! of a group, in the shared database first (`poolguard_versions::share`, topic `tokens`):
//! the other nodes are notified, add the hashes to their own file and drop the tokens. A
//! revocation is never undone over the API; mint a new token instead (`poolguard token`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use poolguard_versions::share::{Doc, Share, Sharing, Topic};
use poolguard_versions::write_atomic;

use crate::auth::Caller;
use crate::feeds::{Failure, audit, blocking, who};
use crate::{ApiError, ApiState};

/// The revoked tokens' hashes, on disk and (in a group) shared.
pub struct Revocations {
    file: PathBuf,
    /// One revocation at a time, so two never lose each other's line.
    lock: Mutex<()>,
    share: Sharing,
}

impl Revocations {
    /// The list kept in `file` (created on the first revocation).
    pub fn new(file: PathBuf) -> Self {
        Self {
            file,
            lock: Mutex::new(()),
            share: Sharing::default(),
        }
    }

    /// Hands every later revocation to the group before it is written here.
    pub fn share_with(&self, share: Arc<dyn Share>) {
        self.share.set(share);
    }

    /// Every revoked hash this node knows; an unreadable file is an empty list (logged).
    pub fn load(&self) -> BTreeSet<String> {
        match std::fs::read_to_string(&self.file) {
            Ok(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_ascii_lowercase)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(error) => {
                tracing::error!(file = %self.file.display(), %error, "revoked API tokens unreadable");
                BTreeSet::new()
            }
        }
    }

    /// Revokes `hashes` (shared first, then written here). Blocking.
    pub fn revoke(&self, hashes: &[String], who: &str) -> Result<(), ApiError> {
        let docs = || {
            hashes
                .iter()
                .map(|h| Doc {
                    topic: Topic::Tokens,
                    name: h.clone(),
                    content: Vec::new(),
                    who: who.to_string(),
                    action: "revoke".into(),
                })
                .collect()
        };
        self.share
            .share(docs)
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        self.add(hashes.iter().cloned()).map(|_| ())
    }

    /// Adds `hashes` (revoked through another node) to this node's file; returns the whole
    /// list. Blocking.
    pub fn add(
        &self,
        hashes: impl IntoIterator<Item = String>,
    ) -> Result<BTreeSet<String>, ApiError> {
        let _one = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = self.load();
        let before = all.len();
        all.extend(hashes.into_iter().map(|h| h.to_ascii_lowercase()));
        if all.len() != before {
            let mut text = String::from("# API tokens revoked (SHA-256), written by poolguard\n");
            for h in &all {
                text.push_str(h);
                text.push('\n');
            }
            write_atomic(&self.file, text.as_bytes()).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}: {e}", self.file.display()),
                )
            })?;
        }
        Ok(all)
    }
}

/// What a revocation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// The token name revoked.
    pub name: String,
    /// How many configured tokens had that name (all are revoked).
    pub revoked: usize,
}

/// Revokes every token named `name` on every node of the group: requests with it are refused
/// (401) from then on. Not undone over the API: mint a new token instead.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}",
    operation_id = "revokeToken", tag = "tokens",
    params(("name" = String, Path, description = "The token's name in [[api.tokens]]")),
    responses((status = 200, description = "Revoked", body = Revoked),
              (status = 404, description = "No token of that name is in force", body = crate::error::ErrorBody),
              (status = 503, description = "The group's database did not take it; nothing changed", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
) -> Result<Json<Revoked>, Failure> {
    let Some(list) = state.revocations.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "token revocation is not managed by this process",
        )
        .into());
    };
    let hashes = state.tokens.load().hashes_named(&name);
    if hashes.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no token named `{name}` is in force"),
        )
        .into());
    }
    let (who_name, _) = who(&caller);
    let revoked = hashes.clone();
    blocking(move || list.revoke(&revoked, &who_name)).await?;
    let set: BTreeSet<String> = hashes.iter().cloned().collect();
    state
        .tokens
        .store(Arc::new(state.tokens.load().without(&set)));
    tracing::info!(token = %name, "API token revoked");
    audit(
        &state,
        &caller,
        "token.revoke",
        &format!("token/{name}"),
        None,
        None,
        format!("{} token(s)", hashes.len()),
    )
    .await?;
    Ok(Json(Revoked {
        name,
        revoked: hashes.len(),
    }))
}
