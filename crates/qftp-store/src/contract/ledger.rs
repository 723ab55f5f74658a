//! Checks of [`QuotaLedger`]: the reservation race, commit, release,
//! busy keys, take-over by giving way, and (for ledgers shared between
//! nodes) take-over of an expired lease.

use std::sync::Arc;
use std::time::Duration;

use crate::error::LedgerError;
use crate::ledger::{Change, Footprint, QuotaLedger, UploadKey};
use crate::users::UserStore;

/// A lease long enough never to end during a check.
const LONG_LEASE: Duration = Duration::from_secs(3600);

/// How long a check lets a holder take to give way.
const PATIENCE: Duration = Duration::from_secs(10);

fn key(user: &str, path: &str) -> UploadKey {
    UploadKey {
        user: user.to_owned(),
        path: path.to_owned(),
    }
}

/// `tasks` uploads reserving 1000 bytes each at once, of a quota of ten
/// of them: exactly ten get theirs and the total never passes the quota.
pub async fn reservation_race(users: &dyn UserStore, ledger: Arc<dyn QuotaLedger>, prefix: &str) {
    let user = format!("{prefix}race");
    super::add_user(users, &user, Some(10_000)).await;
    let tasks = 40;
    let mut running = Vec::new();
    for index in 0..tasks {
        let ledger = Arc::clone(&ledger);
        let key = key(&user, &format!("file-{index}"));
        running.push(tokio::spawn(async move {
            ledger.reserve(&key, 1000, LONG_LEASE).await
        }));
    }
    let mut granted = Vec::new();
    for task in running {
        match task.await.expect("reserving task") {
            Ok(reservation) => granted.push(reservation),
            Err(LedgerError::QuotaExceeded { needed, .. }) => assert_eq!(needed, 1000),
            Err(other) => panic!("a reservation failed with {other}"),
        }
    }
    assert_eq!(
        granted.len(),
        10,
        "exactly the quota's worth of reservations is granted"
    );
    let usage = ledger.usage(&user).await.expect("usage");
    assert_eq!(
        usage.reserved, 10_000,
        "reserved is the sum of the granted ones"
    );
    assert_eq!(usage.free(), Some(0));

    for reservation in granted {
        ledger
            .release(reservation, Change::default())
            .await
            .expect("release");
    }
    let usage = ledger.usage(&user).await.expect("usage");
    assert_eq!(usage.reserved, 0, "released reservations free their bytes");
    assert_eq!(
        usage.used,
        Footprint::ZERO,
        "a discarded upload leaves nothing charged"
    );
}

/// Commit charges the file and frees the reservation; release of an
/// abandoned upload charges what its partial holds; a second upload of a
/// key in flight is busy.
pub async fn commit_and_release(users: &dyn UserStore, ledger: &dyn QuotaLedger, prefix: &str) {
    let user = format!("{prefix}settle");
    super::add_user(users, &user, Some(5000)).await;
    let first = key(&user, "a");
    let reservation = ledger
        .reserve(&first, 3000, LONG_LEASE)
        .await
        .expect("reserve");
    assert_eq!(reservation.bytes, 3000);
    assert!(
        matches!(
            ledger.reserve(&first, 10, LONG_LEASE).await,
            Err(LedgerError::Busy)
        ),
        "a key with a live reservation is busy"
    );
    assert!(
        matches!(
            ledger.reserve(&key(&user, "b"), 2001, LONG_LEASE).await,
            Err(LedgerError::QuotaExceeded {
                needed: 2001,
                free: 2000
            })
        ),
        "reserve counts what is reserved already"
    );
    let usage = ledger
        .commit(
            reservation,
            Change {
                added: Footprint::file(3000),
                removed: Footprint::ZERO,
            },
        )
        .await
        .expect("commit");
    assert_eq!(usage.used, Footprint::file(3000), "commit charges the file");
    assert_eq!(usage.reserved, 0, "commit frees the reservation");

    let abandoned = ledger
        .reserve(&key(&user, "b"), 2000, LONG_LEASE)
        .await
        .expect("reserve");
    ledger
        .release(
            abandoned,
            Change {
                added: Footprint::file(500),
                removed: Footprint::ZERO,
            },
        )
        .await
        .expect("release");
    let usage = ledger.usage(&user).await.expect("usage");
    assert_eq!(
        usage.used,
        Footprint::file(3000) + Footprint::file(500),
        "an abandoned partial stays charged for what it holds"
    );
    assert_eq!(usage.reserved, 0);

    let over = ledger
        .adjust(
            &user,
            Change {
                added: Footprint::file(2000),
                removed: Footprint::ZERO,
            },
        )
        .await;
    assert!(
        matches!(over, Err(LedgerError::QuotaExceeded { .. })),
        "adjust refuses a change past the quota: {over:?}"
    );
    let freed = ledger
        .adjust(
            &user,
            Change {
                added: Footprint::ZERO,
                removed: Footprint::file(500),
            },
        )
        .await
        .expect("a change that frees is always applied");
    assert_eq!(freed.used, Footprint::file(3000));

    let recounted = ledger
        .recount(&user, Footprint::file(1234))
        .await
        .expect("recount");
    assert_eq!(
        recounted.used,
        Footprint::file(1234),
        "recount replaces used"
    );
    assert!(recounted.measured, "recount marks the account measured");
}

/// An upload asked to give way by a new upload of the same key sees its
/// `give_way` turn, releases, and the new one reserves.
pub async fn take_over_by_giving_way(
    users: &dyn UserStore,
    ledger: Arc<dyn QuotaLedger>,
    prefix: &str,
) {
    let user = format!("{prefix}giveway");
    super::add_user(users, &user, Some(5000)).await;
    let path = key(&user, "same");
    let holder = ledger
        .reserve(&path, 4000, LONG_LEASE)
        .await
        .expect("reserve");
    let mut asked = ledger.give_way(&holder);
    assert!(
        !*asked.borrow(),
        "a fresh reservation is not asked to give way"
    );
    let holding = {
        let ledger = Arc::clone(&ledger);
        tokio::spawn(async move {
            asked.wait_for(|asked| *asked).await.expect("give_way feed");
            ledger
                .release(
                    holder,
                    Change {
                        added: Footprint::file(100),
                        removed: Footprint::ZERO,
                    },
                )
                .await
                .expect("release");
        })
    };
    ledger
        .take_over(&path, PATIENCE)
        .await
        .expect("the holder gives way within the patience");
    holding.await.expect("holder task");
    let usage = ledger.usage(&user).await.expect("usage");
    assert_eq!(usage.reserved, 0, "the old reservation is gone");
    assert_eq!(
        usage.used,
        Footprint::file(100),
        "its partial stays charged"
    );
    let next = ledger
        .reserve(&path, 4900, LONG_LEASE)
        .await
        .expect("the new upload reserves after the take-over");
    ledger
        .release(next, Change::default())
        .await
        .expect("release");
    ledger
        .take_over(&key(&user, "nobody"), PATIENCE)
        .await
        .expect("taking over a free key succeeds at once");
}

/// For ledgers shared between nodes: a reservation whose holder stopped
/// renewing (its node crashed) is taken over once its lease expired, and
/// its holder's later calls fail with [`LedgerError::LeaseLost`]. (The
/// embedded ledger's leases end only with its process.)
pub async fn expired_lease_is_taken_over(
    users: &dyn UserStore,
    ledger: &dyn QuotaLedger,
    prefix: &str,
) {
    let user = format!("{prefix}lease");
    super::add_user(users, &user, Some(5000)).await;
    let path = key(&user, "crashed");
    let crashed = ledger
        .reserve(&path, 4000, Duration::from_millis(200))
        .await
        .expect("reserve");
    ledger
        .renew(&crashed, 700, Duration::from_millis(200))
        .await
        .expect("renew while live");
    let mut attempts = 0;
    loop {
        match ledger.take_over(&path, Duration::from_millis(100)).await {
            Ok(()) => break,
            Err(LedgerError::Busy) if attempts < 200 => attempts += 1,
            Err(other) => panic!("an expired lease is never taken over: {other}"),
        }
    }
    let usage = ledger.usage(&user).await.expect("usage");
    assert_eq!(usage.reserved, 0, "the expired reservation is released");
    assert_eq!(
        usage.used,
        Footprint::file(700),
        "its partial is charged as last renewed"
    );
    assert!(
        matches!(
            ledger.renew(&crashed, 800, LONG_LEASE).await,
            Err(LedgerError::LeaseLost)
        ),
        "the old holder's lease is lost"
    );
    assert!(
        matches!(
            ledger.commit(crashed, Change::default()).await,
            Err(LedgerError::LeaseLost)
        ),
        "the old holder cannot commit"
    );
}
