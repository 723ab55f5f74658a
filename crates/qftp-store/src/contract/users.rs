//! Checks of [`UserStore`]: add, refuse a duplicate, get, list, change the
//! password and quota, remove.

use crate::error::StoreError;
use crate::users::{NewUser, UserStore};

/// Every account operation, on users named `{prefix}…`.
pub async fn accounts(users: &dyn UserStore, prefix: &str) {
    let name = format!("{prefix}a");
    let added = super::add_user(users, &name, Some(1000)).await;
    assert_eq!(added.name, name, "add_user returns the stored record");
    assert_eq!(added.quota, Some(1000), "add_user stores the quota");
    assert_eq!(added.used, 0, "a new user has used nothing");

    let duplicate = users
        .add_user(NewUser {
            name: name.clone(),
            password_hash: "other".to_owned(),
            quota: None,
            home: None,
        })
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::UserExists(_))),
        "a second user of one name is refused: {duplicate:?}"
    );
    let stored = users.user(&name).await.expect("user").expect("exists");
    assert_eq!(stored, added, "a refused duplicate changes nothing");

    users
        .set_password(&name, "$argon2id$new")
        .await
        .expect("set_password");
    users.set_quota(&name, None).await.expect("set_quota");
    let changed = users.user(&name).await.expect("user").expect("exists");
    assert_eq!(
        changed.password_hash, "$argon2id$new",
        "set_password stores the hash"
    );
    assert_eq!(changed.quota, None, "set_quota stores unlimited");

    let other = format!("{prefix}b");
    super::add_user(users, &other, None).await;
    let listed: Vec<String> = users
        .list_users()
        .await
        .expect("list_users")
        .into_iter()
        .map(|user| user.name)
        .filter(|listed| listed.starts_with(prefix))
        .collect();
    assert_eq!(
        listed,
        vec![name.clone(), other.clone()],
        "list_users orders by name"
    );

    users.remove_user(&name).await.expect("remove_user");
    assert_eq!(
        users.user(&name).await.expect("user"),
        None,
        "a removed user is gone"
    );
    assert!(
        matches!(
            users.remove_user(&name).await,
            Err(StoreError::UnknownUser(_))
        ),
        "removing an unknown user is refused"
    );
    assert!(
        matches!(
            users.set_quota(&name, Some(1)).await,
            Err(StoreError::UnknownUser(_))
        ),
        "changing an unknown user is refused"
    );

    let again = super::add_user(users, &name, None).await;
    assert_ne!(
        again.account, added.account,
        "a user added again under the same name is another account"
    );
}
