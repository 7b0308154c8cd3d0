//! Starting the HTTP API (and its optional separate metrics listener).

use std::net::SocketAddr;

use poolguard_api::{self as api, ApiState};
use poolguard_config::Config;
use poolguard_console::Console;

use super::listen::{Listener, bind_listener};
use super::{ApiServer, AppError};

/// Starts the API on `addr`, with the staff console under `/` of the same listener unless
/// `[console] listen` gives it its own (docs/CONSOLE.md), or not at all when it is disabled.
pub(super) async fn start_api(
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: ApiState,
    config: &Config,
) -> Result<ApiServer, AppError> {
    let stop = tokio_util::sync::CancellationToken::new();
    let listener = bind_listener(Listener::Api, addr).await?;
    let bound = listener.local_addr().map_err(|cause| AppError::Listen {
        listener: Listener::Api,
        addr,
        cause,
    })?;
    let mut tasks = Vec::new();
    if let Some(m) = metrics_addr {
        let ops = bind_listener(Listener::Metrics, m).await?;
        tasks.push(api::serve_ops(
            ops,
            state.clone(),
            stop.clone().cancelled_owned(),
        ));
    }
    let tokens = state.tokens.clone();
    let console = config
        .console
        .enabled
        .then(|| Console::new(&state, &config.console, &config.notice));
    let mut console_addr = None;
    match (&console, config.console.listen) {
        (Some(console), Some(own)) => {
            let l = bind_listener(Listener::Console, own).await?;
            console_addr = l.local_addr().ok();
            tasks.push(api::serve_router(
                l,
                console.router(),
                stop.clone().cancelled_owned(),
            ));
            tasks.push(api::serve(listener, state, stop.clone().cancelled_owned()));
        }
        (Some(console), None) => {
            console_addr = Some(bound);
            let app = api::router(state).merge(console.router());
            tasks.push(api::serve_router(
                listener,
                app,
                stop.clone().cancelled_owned(),
            ));
        }
        (None, _) => tasks.push(api::serve(listener, state, stop.clone().cancelled_owned())),
    }
    Ok(ApiServer {
        addr: bound,
        console_addr,
        tokens,
        stop,
        tasks,
    })
}
