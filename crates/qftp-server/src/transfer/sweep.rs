//! The periodic sweep: expired sessions, and partial uploads nothing has
//! touched for `partial_max_age` (judged by the server's clock) and no
//! upload is using, taken off their user's ledger.
//!
//! This module decides nothing about what a partial file is or when it is
//! old (that is [`crate::partials`]'s). Partials of the staging directory
//! are removed and charged in one step of the user's ledger
//! ([`crate::quota::UserQuota::sweep`], which knows the uploads in flight);
//! what the sweep of the old layout frees is charged through the quota
//! ledger's [`qftp_store::QuotaLedger::adjust`].

use std::sync::Arc;
use std::time::Duration;

use qftp_store::Change;

use crate::footprint::Footprint;
use crate::partials::Staging;
use crate::state::ServerState;

/// Removes abandoned partial files of every user and expired sessions, now
/// and then periodically.
pub async fn sweep_periodically(state: Arc<ServerState>) {
    let max_age = state.config.partial_max_age();
    let period = (max_age / 4).clamp(Duration::from_secs(60), Duration::from_secs(3600));
    loop {
        sweep_all(&state, max_age).await;
        tokio::time::sleep(period).await;
    }
}

async fn sweep_all(state: &Arc<ServerState>, max_age: Duration) {
    match state
        .sessions
        .purge_expired(std::time::SystemTime::now())
        .await
    {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "removed expired sessions"),
        Err(error) => tracing::warn!(%error, "cannot purge expired sessions"),
    }
    let users = match state.users.list_users().await {
        Ok(users) => users,
        Err(error) => {
            tracing::warn!(%error, "partial sweep: cannot list users");
            return;
        }
    };
    let cutoff = crate::partials::cutoff(max_age);
    for user in users {
        let swept_state = Arc::clone(state);
        let record = user.clone();
        let swept =
            tokio::task::spawn_blocking(move || sweep_user(&swept_state, &record, cutoff)).await;
        let (removed, freed) = match swept {
            Ok(Ok(swept)) => swept,
            Ok(Err(error)) => {
                tracing::warn!(user = %user.name, %error, "partial sweep failed");
                continue;
            }
            Err(error) => {
                tracing::warn!(user = %user.name, %error, "partial sweep task failed");
                continue;
            }
        };
        if freed != Footprint::ZERO {
            let change = Change {
                added: qftp_store::Footprint::ZERO,
                removed: freed.into(),
            };
            if let Err(error) = state.ledger.adjust(&user.name, change).await {
                tracing::warn!(user = %user.name, %error, "cannot charge the partial sweep");
            }
        }
        if removed > 0 {
            tracing::info!(user = %user.name, removed, "removed abandoned partial uploads");
        }
    }
}

/// Removes `user`'s partial uploads that nothing touched since `cutoff`
/// and no upload is using, on a blocking thread. Those of the staging
/// directory are taken off the user's ledger at once; returns how many
/// went and what those of the old layout freed, which the caller charges.
fn sweep_user(
    state: &ServerState,
    user: &crate::userdb::UserRecord,
    cutoff: std::time::SystemTime,
) -> std::io::Result<(usize, Footprint)> {
    let home = state.root.home_of(&state.config, user);
    let home = match cap_std::fs::Dir::open_ambient_dir(&home, cap_std::ambient_authority()) {
        Ok(home) => home,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((0, Footprint::ZERO));
        }
        Err(error) => return Err(error),
    };
    let quota = state.quotas.user(user);
    let mut removed = 0;
    if let Some(staging) = Staging::open_existing(&home)? {
        let partials = staging.partials()?;
        removed += quota.sweep(partials.into_iter(), |partial| {
            partial.changed_before(cutoff)
        });
    }
    let freed = crate::partials::sweep_legacy(&home, cutoff)?;
    let legacy = usize::try_from(freed.entries).unwrap_or(usize::MAX);
    Ok((removed.saturating_add(legacy), freed))
}
