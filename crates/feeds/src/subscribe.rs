//! Subscriptions: feeds fetched from a URL every `refresh`, with conditional requests.
//!
//! One task per `[[feeds]]` entry with a `url`, on the control runtime (never a DNS runtime),
//! stopped by the shared cancellation token at shutdown. A fetch sends the cached copy's
//! `ETag` / `Last-Modified` back (`If-None-Match` / `If-Modified-Since`), so an unchanged list
//! costs a 304. The body is read in chunks and abandoned past the size limit; the whole fetch
//! has a timeout. New content goes through the registry's write path (parse, refuse if
//! unusable, cache file, version, reload); a failed, oversized, timed-out or unusable fetch
//! keeps the last good copy, is shown in the feed's status and counted in
//! `poolguard_feed_fetches_total{feed, result}`. The cache is the feed's `path` (or
//! `blocklists/<name>.txt`), so a restart without network serves the last good copy.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::registry::{FetchStatus, Registry, RegistryError};
use poolguard_config::FeedConfig;
use poolguard_store::AuditStore;
use poolguard_store::audit::AuditEntry;

/// Default limits when the feed does not set them.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What one fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchResult {
    /// New content, installed.
    Updated {
        /// Entries accepted.
        accepted: usize,
        /// SHA-256 of the copy it replaced (none on the first fetch).
        before: Option<String>,
        /// SHA-256 of the new copy.
        after: String,
    },
    /// 304, or the same bytes again.
    NotModified,
    /// Kept the last good copy; why.
    Failed(String),
}

/// Starts one refresh task per subscription (disabled ones skip their turns until enabled);
/// they stop when `stop` is cancelled. Scheduled fetches that change a feed are audited in
/// `store` (actor `system`).
pub fn spawn(
    registry: Arc<Registry>,
    stop: CancellationToken,
    store: Option<Arc<dyn AuditStore>>,
) -> Vec<JoinHandle<()>> {
    let feeds: Vec<FeedConfig> = registry
        .loader()
        .feed_configs()
        .iter()
        .filter(|f| f.url.is_some())
        .cloned()
        .collect();
    feeds
        .into_iter()
        .map(|f| {
            let registry = registry.clone();
            let stop = stop.clone();
            let store = store.clone();
            tokio::spawn(async move { run(registry, f, stop, store).await })
        })
        .collect()
}

async fn run(
    registry: Arc<Registry>,
    feed: FeedConfig,
    stop: CancellationToken,
    store: Option<Arc<dyn AuditStore>>,
) {
    let every = feed.refresh.unwrap_or(Duration::from_secs(6 * 3600));
    // First fetch: now if the copy is missing or stale, else when it would have been due.
    let last = registry.fetch_status(&feed.name).last_success;
    let mut wait = match last {
        Some(t) => {
            let age = (Utc::now() - t).to_std().unwrap_or(Duration::ZERO);
            every.saturating_sub(age)
        }
        None => Duration::ZERO,
    };
    // Bounded by the cancellation token: each iteration waits `every` or stops.
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = every;
        // Disabled over the API: skip scheduled fetches until it is enabled again.
        let enabled = registry
            .loader()
            .feed_configs()
            .iter()
            .any(|f| f.name == feed.name && f.enabled);
        if !enabled {
            continue;
        }
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = fetch(&registry, &feed.name) => r,
        };
        tracing::debug!(feed = %feed.name, ?result, "scheduled fetch");
        if let (
            Ok(FetchResult::Updated {
                accepted,
                before,
                after,
            }),
            Some(store),
        ) = (&result, &store)
        {
            let mut entry = AuditEntry::now("system", "", "feed.fetch", &feed.name);
            entry.before_hash = before.clone();
            entry.after_hash = Some(after.clone());
            entry.detail = format!("scheduled fetch: {accepted} accepted");
            if let Err(error) = store.audit(entry).await {
                tracing::error!(feed = %feed.name, %error, "scheduled fetch not audited");
            }
        }
    }
}

/// Fetches subscription `name` once (the scheduled tasks and `POST …/refresh` both use it).
pub async fn fetch(registry: &Arc<Registry>, name: &str) -> Result<FetchResult, RegistryError> {
    let feed = registry
        .loader()
        .feed_configs()
        .iter()
        .find(|f| f.name == name)
        .cloned()
        .ok_or_else(|| RegistryError::NotFound(format!("no feed named `{name}`")))?;
    let Some(url) = feed.url.clone() else {
        return Err(RegistryError::Conflict(format!(
            "`{name}` is not a subscription (it has no `url`)"
        )));
    };
    let mut status = registry.fetch_status(name);
    status.last_attempt = Some(Utc::now());
    let current_sha = registry
        .loader()
        .feeds()
        .into_iter()
        .find(|s| s.name == name)
        .and_then(|s| s.sha256);
    // Validators only describe the copy in force; otherwise ask unconditionally.
    let conditional = current_sha.is_some() && status.sha256 == current_sha;
    let timeout = feed.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let max = feed
        .max_size_mb
        .unwrap_or(registry.config().api.max_upload_mb)
        .saturating_mul(1 << 20) as usize;
    let outcome = download(&url, &status, conditional, timeout, max).await;
    let result = match outcome {
        Download::NotModified => FetchResult::NotModified,
        Download::Failed(e) => FetchResult::Failed(e),
        Download::Body {
            bytes,
            etag,
            last_modified,
        } => {
            let sha = crate::versions::sha256_hex(&bytes);
            if Some(&sha) == current_sha.as_ref() {
                status.etag = etag;
                status.last_modified = last_modified;
                status.sha256 = Some(sha);
                FetchResult::NotModified
            } else {
                let r = registry.clone();
                let n = name.to_string();
                let installed =
                    tokio::task::spawn_blocking(move || r.install_fetched(&n, &bytes)).await;
                match installed {
                    Ok(Ok(report)) => {
                        status.etag = etag;
                        status.last_modified = last_modified;
                        status.sha256 = Some(sha);
                        FetchResult::Updated {
                            accepted: report.accepted,
                            before: current_sha.clone(),
                            after: status.sha256.clone().unwrap_or_default(),
                        }
                    }
                    Ok(Err(RegistryError::Unusable { message, .. })) => {
                        FetchResult::Failed(format!("fetched content not used: {message}"))
                    }
                    Ok(Err(e)) => FetchResult::Failed(e.to_string()),
                    Err(e) => FetchResult::Failed(format!("install task failed: {e}")),
                }
            }
        }
    };
    let label = match &result {
        FetchResult::Updated { .. } => "updated",
        FetchResult::NotModified => "not_modified",
        FetchResult::Failed(_) => "failed",
    };
    metrics::counter!("poolguard_feed_fetches_total", "feed" => name.to_string(), "result" => label)
        .increment(1);
    status.result = Some(label.to_string());
    match &result {
        FetchResult::Failed(e) => {
            tracing::warn!(feed = %name, %url, error = %e, "subscription fetch failed; the last good copy stays in force");
            status.error = Some(e.clone());
        }
        _ => {
            tracing::info!(feed = %name, %url, result = label, "subscription fetched");
            status.error = None;
            status.last_success = status.last_attempt;
        }
    }
    let r = registry.clone();
    let n = name.to_string();
    // Persisting is file I/O: off the async threads.
    let _ = tokio::task::spawn_blocking(move || r.set_fetch_status(&n, status)).await;
    Ok(result)
}

enum Download {
    NotModified,
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    Failed(String),
}

fn client() -> Result<reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("poolguard/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
}

async fn download(
    url: &str,
    status: &FetchStatus,
    conditional: bool,
    timeout: Duration,
    max: usize,
) -> Download {
    let client = match client() {
        Ok(c) => c,
        Err(e) => return Download::Failed(format!("HTTP client: {e}")),
    };
    let work = async {
        let mut req = client.get(url);
        if conditional {
            if let Some(e) = &status.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, e);
            }
            if let Some(m) = &status.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, m);
            }
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Download::Failed(format!("GET {url}: {e}")),
        };
        let code = resp.status();
        if code == reqwest::StatusCode::NOT_MODIFIED {
            return Download::NotModified;
        }
        if !code.is_success() {
            return Download::Failed(format!("GET {url}: HTTP {code}"));
        }
        if resp.content_length().is_some_and(|n| n as usize > max) {
            return Download::Failed(format!(
                "GET {url}: {} bytes is over the {max}-byte limit",
                resp.content_length().unwrap_or_default()
            ));
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let mut bytes = Vec::new();
        // Bounded by `max`: stops reading as soon as the body exceeds it.
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > max {
                        return Download::Failed(format!(
                            "GET {url}: body is over the {max}-byte limit"
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Download::Failed(format!("GET {url}: {e}")),
            }
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Download::Failed(format!("GET {url}: empty body"));
        }
        Download::Body {
            bytes,
            etag,
            last_modified,
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(d) => d,
        Err(_) => Download::Failed(format!("GET {url}: no complete answer within {timeout:?}")),
    }
}
