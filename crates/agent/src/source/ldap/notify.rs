//! The change-notification wake-up: a long-lived search with the notification control
//! (1.2.840.113556.1.4.528) and Show Deleted (…417), on its own connection.
//!
//! Each entry the server pushes wakes the domain's task, which runs a DirSync delta; the entry itself is
//! not used (the delta is the source of truth). Samba polls about every 5 s and coalesces changes, so the
//! wake-up latency there is up to ~5 s; AD pushes within a second. Errors reconnect with backoff.

use std::sync::Arc;

use ldap3::Scope;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::conn;
use super::control;
use super::error::LdapSourceError;
use crate::source::ldap::DomainConfig;

/// Keeps a notification search open until `cancel` fires; calls `wake.notify_one()` per pushed entry.
pub async fn watch(cfg: DomainConfig, wake: Arc<Notify>, cancel: CancellationToken) {
    let mut backoff = Backoff::default();
    loop {
        let outcome = tokio::select! {
            () = cancel.cancelled() => return,
            r = listen(&cfg, &wake, &mut backoff) => r,
        };
        let delay = backoff.next_delay();
        match outcome {
            Ok(()) => {
                tracing::info!(domain = %cfg.dns_name, "The notification search ended; reopening it.")
            }
            Err(err) => {
                tracing::warn!(domain = %cfg.dns_name, error = %err, retry_in_ms = delay.as_millis() as u64, "The notification search failed; retrying.")
            }
        }
        // The connection may have dropped while changes happened: let a delta run now.
        wake.notify_one();
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

async fn listen(
    cfg: &DomainConfig,
    wake: &Notify,
    backoff: &mut Backoff,
) -> Result<(), LdapSourceError> {
    let mut dc = conn::connect(cfg).await?;
    let base = cfg.base();
    // No operation timeout: the search is meant to stay open.
    let mut stream = dc
        .ldap
        .with_controls(vec![control::notification(), control::show_deleted()])
        .streaming_search(&base, Scope::Subtree, "(objectClass=*)", vec!["objectGUID"])
        .await?;
    tracing::debug!(domain = %cfg.dns_name, "Notification search open.");
    backoff.reset();
    while let Some(re) = stream.next().await? {
        if re.is_ref() || re.is_intermediate() {
            continue;
        }
        tracing::debug!(domain = %cfg.dns_name, "Change notification received.");
        wake.notify_one();
    }
    let res = stream.finish().await;
    if res.rc != 0 {
        return Err(LdapSourceError::from_result(res));
    }
    Ok(())
}
