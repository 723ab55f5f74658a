//! [`LoginThrottle`] for [`PgStore`]: failures counted per pair, address
//! and user in `login_failures`, shared by every node, so the bounds hold
//! for the whole cluster and not per process.

use std::net::IpAddr;
use std::time::Duration;

use qftp_store::{Blocked, Bound, BoxFuture, LoginAttempt, LoginThrottle, StoreError};

use crate::error::unavailable;
use crate::store::PgStore;

/// The counts an attempt touches: `(subject, bound kind)`, pair first.
fn subjects(attempt: LoginAttempt<'_>) -> Vec<(String, Bound)> {
    let address = attempt.address();
    match attempt {
        LoginAttempt::Password { user, .. } => vec![
            (pair_subject(address, user), Bound::Pair),
            (format!("address {address}"), Bound::Address),
            (format!("user {user}"), Bound::User),
        ],
        _ => vec![
            (format!("token {address}"), Bound::Pair),
            (format!("address {address}"), Bound::Address),
        ],
    }
}

/// The pair's subject (an address holds no space, so this is unambiguous).
fn pair_subject(address: IpAddr, user: &str) -> String {
    format!("pair {address} {user}")
}

impl LoginThrottle for PgStore {
    fn is_blocked<'a>(
        &'a self,
        attempt: LoginAttempt<'a>,
    ) -> BoxFuture<'a, Result<Option<Blocked>, StoreError>> {
        Box::pin(async move {
            let bounds = self.options.throttle;
            let client = self.client().await?;
            let mut counts = subjects(attempt);
            if let LoginAttempt::Password { address, user } = attempt {
                let known = client
                    .query_opt(
                        "SELECT 1 FROM login_origins WHERE user_name = $1 AND address = $2
                            AND seen > now() - make_interval(secs => $3)",
                        &[
                            &user,
                            &address.to_string(),
                            &bounds.remember_origin.as_secs_f64(),
                        ],
                    )
                    .await
                    .map_err(unavailable)?;
                if known.is_some() {
                    counts.retain(|(_, kind)| *kind != Bound::User);
                }
            }
            let names: Vec<&str> = counts.iter().map(|(subject, _)| subject.as_str()).collect();
            let rows = client
                .query(
                    "SELECT subject, extract(epoch FROM blocked_until - now())::float8
                       FROM login_failures WHERE subject = ANY($1) AND blocked_until > now()",
                    &[&names],
                )
                .await
                .map_err(unavailable)?;
            // The first bound in the attempt's order (pair, address, user).
            Ok(counts.iter().find_map(|(subject, kind)| {
                let row = rows.iter().find(|row| row.get::<_, &str>(0) == subject)?;
                Some(Blocked {
                    retry_after: Duration::from_secs_f64(row.get::<_, f64>(1).max(0.001)),
                    bound: *kind,
                    who: subject.clone(),
                })
            }))
        })
    }

    fn record_failure<'a>(
        &'a self,
        attempt: LoginAttempt<'a>,
    ) -> BoxFuture<'a, Result<Duration, StoreError>> {
        Box::pin(async move {
            let bounds = self.options.throttle;
            let counts = subjects(attempt);
            let names: Vec<&str> = counts.iter().map(|(subject, _)| subject.as_str()).collect();
            let limits: Vec<i32> = counts.iter().map(|(_, kind)| bounds.bound(*kind)).collect();
            let client = self.client().await?;
            let rows = client
                .query(
                    "INSERT INTO login_failures AS f (subject, failures, last_failure, blocked_until)
                     SELECT subject, 1, now(),
                            CASE WHEN 1 >= bound THEN now() + make_interval(secs => $4) END
                       FROM unnest($1::text[], $2::int[]) AS counted (subject, bound)
                     ON CONFLICT (subject) DO UPDATE SET
                       failures = CASE WHEN f.last_failure < now() - make_interval(secs => $3)
                                       THEN 1 ELSE f.failures + 1 END,
                       last_failure = now(),
                       blocked_until = CASE
                         WHEN (CASE WHEN f.last_failure < now() - make_interval(secs => $3)
                                    THEN 1 ELSE f.failures + 1 END)
                              >= (SELECT bound FROM unnest($1::text[], $2::int[])
                                    AS limits (subject, bound) WHERE limits.subject = f.subject)
                         THEN now() + make_interval(secs => $4)
                         ELSE f.blocked_until END
                     RETURNING subject, failures",
                    &[
                        &names,
                        &limits,
                        &bounds.window.as_secs_f64(),
                        &bounds.block.as_secs_f64(),
                    ],
                )
                .await
                .map_err(unavailable)?;
            let pair = &counts[0].0;
            let failures = rows
                .iter()
                .find(|row| row.get::<_, &str>(0) == pair)
                .map(|row| row.get::<_, i32>(1))
                .unwrap_or(1);
            Ok(bounds.delay(failures))
        })
    }

    fn record_success<'a>(
        &'a self,
        attempt: LoginAttempt<'a>,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let pair = match attempt {
                LoginAttempt::Password { address, user } => pair_subject(address, user),
                _ => format!("token {}", attempt.address()),
            };
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(unavailable)?;
            transaction
                .execute("DELETE FROM login_failures WHERE subject = $1", &[&pair])
                .await
                .map_err(unavailable)?;
            transaction
                .execute(
                    "INSERT INTO login_origins (user_name, address, seen) VALUES ($1, $2, now())
                     ON CONFLICT (user_name, address) DO UPDATE SET seen = now()",
                    &[&user, &attempt.address().to_string()],
                )
                .await
                .map_err(unavailable)?;
            transaction.commit().await.map_err(unavailable)
        })
    }
}
