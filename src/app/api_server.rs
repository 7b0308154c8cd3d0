//! Starting the HTTP API (and its optional separate metrics listener).

use std::net::SocketAddr;

use poolguard_api::{self as api, ApiState};

use super::listen::{Listener, bind_listener};
use super::{ApiServer, AppError};

pub(super) async fn start_api(
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: ApiState,
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
    tasks.push(api::serve(listener, state, stop.clone().cancelled_owned()));
    Ok(ApiServer {
        addr: bound,
        tokens,
        stop,
        tasks,
    })
}
