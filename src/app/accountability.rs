//! Starting the accountability tasks beside the store: alert delivery, deadline checks, the
//! periodic bulletin and the notice page for quarantined clients.

use std::sync::Arc;

use poolguard_config::Config;
use poolguard_incidents::{self as incidents, Accountability};

use super::listen::{Listener, bind_listener};
use super::{AppError, Evidence};

/// Alert delivery, the periodic deadline check and the notice page, on this (control) runtime.
pub(super) async fn start_accountability(
    config: &Config,
    evidence: &mut Evidence,
    acc: &Arc<Accountability>,
    alert_rx: Option<tokio::sync::mpsc::Receiver<incidents::AlertEvent>>,
) -> Result<(), AppError> {
    if let Some(rx) = alert_rx {
        // The shared store with the postgres backend: every node's deadline check claims
        // from one table, so each alert is raised by exactly one node.
        // Secret and CA files are relative to the config file, like every other path.
        let mut alerts = config.alerts.clone();
        for robot in &mut alerts.dingtalk {
            robot.secret_file = robot.secret_file.as_deref().map(|p| config.resolve(p));
        }
        for mail in &mut alerts.email {
            mail.password_file = mail.password_file.as_deref().map(|p| config.resolve(p));
            mail.ca_file = mail.ca_file.as_deref().map(|p| config.resolve(p));
        }
        // The bulletin's periods are claimed where the group's state is: once per period
        // across restarts, and once per group under the postgres backend.
        let claims: Arc<dyn poolguard_store::bulletin::BulletinStore> = match &evidence.shared {
            Some(shared) => Arc::new(shared.store.clone()),
            None => Arc::new(evidence.store.clone()),
        };
        let stores = incidents::alerts::bulletin::BulletinStores {
            summaries: evidence.stores(),
            claims,
            deliveries: evidence.stores(),
            listings: evidence.listings.clone(),
        };
        evidence.tasks.extend(incidents::alerts::bulletin::spawn(
            alerts.clone(),
            stores,
            acc.clone(),
            evidence.stop.clone(),
        ));
        evidence.tasks.push(incidents::alerts::spawn(
            alerts,
            evidence.stores(),
            acc.clone(),
            rx,
        ));
        evidence
            .tasks
            .push(incidents::alerts::spawn_deadline_checks(
                evidence.stores(),
                acc.clone(),
                config.alerts.check_every.0,
                evidence.stop.clone(),
            ));
    }
    if let Some(addr) = config.notice.listen {
        let listener = bind_listener(Listener::Notice, addr).await?;
        let notice_addr = listener.local_addr().ok();
        evidence.notice_addr = notice_addr;
        let task = incidents::notice::serve(
            listener,
            &config.notice,
            evidence.stop.clone().cancelled_owned(),
        );
        evidence.tasks.push(tokio::spawn(async move {
            if let Ok(Err(error)) = task.await {
                tracing::warn!(%error, "notice page server stopped with an error");
            }
        }));
    }
    Ok(())
}
