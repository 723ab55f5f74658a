//! The periodic sweep: expired sessions, and partial uploads nothing has
//! touched for `partial_max_age` (judged by the server's clock) and no
//! upload is using, taken off their user's ledger.
//!
//! This module decides nothing about what a partial file is or when it is
//! old (that is [`crate::partials`]'s) and charges through the user's
//! ledger ([`crate::quota::UserQuota::sweep`]) like every other change.

use std::sync::Arc;
use std::time::Duration;

use crate::error::RequestError;
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
    let swept_state = Arc::clone(state);
    let _ = tokio::task::spawn_blocking(move || sweep_users(&swept_state, users, max_age)).await;
}

/// Sweeps the partial uploads of `users`, on a blocking thread.
fn sweep_users(state: &ServerState, users: Vec<crate::userdb::UserRecord>, max_age: Duration) {
    let cutoff = crate::partials::cutoff(max_age);
    for user in users {
        match sweep_user(state, &user, cutoff) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(user = %user.name, removed, "removed abandoned partial uploads")
            }
            Err(error) => tracing::warn!(user = %user.name, %error, "partial sweep failed"),
        }
    }
}

/// Removes `user`'s partial uploads that nothing touched since `cutoff`
/// and no upload is using, and takes them off the user's ledger.
fn sweep_user(
    state: &ServerState,
    user: &crate::userdb::UserRecord,
    cutoff: std::time::SystemTime,
) -> std::io::Result<usize> {
    let home = state.root.home_of(&state.config, user);
    let home = match cap_std::fs::Dir::open_ambient_dir(&home, cap_std::ambient_authority()) {
        Ok(home) => home,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
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
    let legacy = quota
        .change(|tally| {
            let freed = crate::partials::sweep_legacy(&home, cutoff)
                .map_err(|error| RequestError::from_io(&error, "/"))?;
            tally.remove(freed);
            Ok(freed.entries)
        })
        .map_err(|error| std::io::Error::other(error.message))?;
    Ok(removed + legacy as usize)
}
