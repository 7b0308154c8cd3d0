//! The notice page: what a quarantined client's browser shows.
//!
//! The walled garden answers every A/AAAA query of a quarantined client with the notice
//! address, so whatever site the user opens lands here. poolguard serves the page itself
//! (`[notice] listen`) so no extra web server is needed: any path, any host, one static page
//! in Chinese and English, no scripts, text from config (HTML-escaped).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tokio::net::TcpListener;

use super::config::NoticeConfig;
use super::report::escape;

/// The page, rendered once from config.
pub fn page(cfg: &NoticeConfig) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<style>body{{font-family:\"Noto Sans CJK SC\",\"Source Han Sans SC\",\"PingFang SC\",\"Microsoft YaHei\",\"WenQuanYi Micro Hei\",sans-serif;max-width:40em;margin:3em auto;padding:0 1em;line-height:1.6;color:#222}}\
h1{{font-size:1.4em;border-bottom:2px solid #b00;padding-bottom:.3em}}.contact{{background:#f4f4f4;padding:.8em 1em}}</style></head>\
<body><h1>{title}</h1><p lang=\"zh-CN\">{zh}</p><p lang=\"en\">{en}</p><p class=\"contact\">联系 / Contact: {contact}</p></body></html>\n",
        title = escape(&cfg.title),
        zh = escape(&cfg.text_zh),
        en = escape(&cfg.text_en),
        contact = escape(&cfg.contact),
    )
}

/// Serves the page on `listener` (every path) until `shutdown`.
pub fn serve<F>(
    listener: TcpListener,
    cfg: &NoticeConfig,
    shutdown: F,
) -> tokio::task::JoinHandle<std::io::Result<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    let body: Arc<str> = page(cfg).into();
    // 403 (not 200) so captive-portal probes and scripts see the block; browsers render it.
    let app = Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                StatusCode::FORBIDDEN,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body.to_string(),
            )
                .into_response()
        }
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "notice page listening");
    }
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    })
}
