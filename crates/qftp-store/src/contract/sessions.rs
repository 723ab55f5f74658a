//! Checks of [`SessionStore`]: create, check, expire, revoke, and the
//! revocation feed reaching a subscriber on another node.

use std::time::{Duration, SystemTime};

use crate::sessions::SessionStore;
use crate::users::UserStore;

/// How long a check waits for a revocation to arrive: the contract says a
/// second; this bound only keeps a loaded machine from failing the check.
const DELIVERY_BOUND: Duration = Duration::from_secs(10);

/// Sessions live, expire and end on revocation; `node` and `other_node`
/// share one storage (pass the same store twice for a single-node store).
pub async fn sessions(
    users: &dyn UserStore,
    node: &dyn SessionStore,
    other_node: &dyn SessionStore,
    prefix: &str,
) {
    let name = format!("{prefix}s");
    super::add_user(users, &name, None).await;
    let now = SystemTime::now();
    let token = [7u8; 32];
    let stale = [8u8; 32];
    node.create_session(&name, &token, now + Duration::from_secs(3600))
        .await
        .expect("create_session");
    node.create_session(&name, &stale, now + Duration::from_secs(60))
        .await
        .expect("create_session");
    assert!(
        node.create_session(
            "no such user here",
            &[9u8; 32],
            now + Duration::from_secs(60)
        )
        .await
        .is_err(),
        "a session of an unknown user is refused"
    );

    assert_eq!(
        other_node.check_session(&token, now).await.expect("check"),
        Some(name.clone()),
        "a live session checks as its user on every node"
    );
    assert_eq!(
        node.check_session(&stale, now + Duration::from_secs(120))
            .await
            .expect("check"),
        None,
        "an expired session checks as none"
    );
    assert!(
        node.purge_expired(now + Duration::from_secs(120))
            .await
            .expect("purge")
            >= 1,
        "purge_expired removes the expired session"
    );
    assert_eq!(
        node.check_session(&token, now).await.expect("check"),
        Some(name.clone()),
        "purging leaves live sessions"
    );

    let mut feed = other_node.revocations();
    feed.mark_unchanged();
    assert!(
        node.revoke_session(&token).await.expect("revoke"),
        "revoking a live session says it existed"
    );
    tokio::time::timeout(DELIVERY_BOUND, feed.changed())
        .await
        .expect("a revocation reaches the other node's feed")
        .expect("the feed stays open");
    assert_eq!(
        other_node.check_session(&token, now).await.expect("check"),
        None,
        "a revoked session checks as none everywhere"
    );
    assert!(
        !node.revoke_session(&token).await.expect("revoke"),
        "revoking it again says it did not exist"
    );

    let before_change = [9u8; 32];
    node.create_session(&name, &before_change, now + Duration::from_secs(3600))
        .await
        .expect("create_session");
    users
        .set_password(&name, "$argon2id$changed")
        .await
        .expect("set_password");
    assert_eq!(
        other_node
            .check_session(&before_change, now)
            .await
            .expect("check"),
        None,
        "a new password ends the sessions of the old one"
    );

    let second = [10u8; 32];
    node.create_session(&name, &second, now + Duration::from_secs(3600))
        .await
        .expect("create_session");
    users.remove_user(&name).await.expect("remove_user");
    assert_eq!(
        other_node.check_session(&second, now).await.expect("check"),
        None,
        "removing a user ends their sessions"
    );
}
