//! The qftp-store contract suite against real PostgreSQL (one server for
//! this test binary, a database per test), and checks of two nodes (two
//! stores on one database) at once.

use std::sync::Arc;
use std::time::Duration;

use qftp_store::contract;
use qftp_store::{LedgerError, QuotaLedger, SessionStore, UploadKey};
use qftp_store_pg::{PgOptions, PgStore};

/// A fresh database named `name` and a store on it.
async fn store(name: &str) -> (String, Arc<PgStore>) {
    let url = qftp_testbed::shared_postgres()
        .create_database(name)
        .unwrap_or_else(|error| panic!("creating database {name}: {error}"));
    let store = PgStore::connect(&url, PgOptions::default())
        .await
        .unwrap_or_else(|error| panic!("connecting to {url}: {error}"));
    (url, Arc::new(store))
}

/// Another node's store on the database at `url`.
async fn node(url: &str) -> Arc<PgStore> {
    Arc::new(
        PgStore::connect(url, PgOptions::default())
            .await
            .expect("a second node connects"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_contract() {
    let (_, store) = store("users_contract").await;
    contract::users::accounts(&*store, "u_").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_contract_across_two_nodes() {
    let (url, first) = store("sessions_contract").await;
    let second = node(&url).await;
    contract::sessions::sessions(&*first, &*first, &*second, "s_").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttle_contract() {
    let (_, store) = store("throttle_contract").await;
    contract::throttle::blocks_after_failures(&*store, PgOptions::default().throttle.pair, "t_")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_contract() {
    let (_, store) = store("ledger_contract").await;
    contract::ledger::reservation_race(&*store, store.clone(), "l1_").await;
    contract::ledger::commit_and_release(&*store, &*store, "l2_").await;
    contract::ledger::take_over_by_giving_way(&*store, store.clone(), "l3_").await;
    contract::ledger::expired_lease_is_taken_over(&*store, &*store, "l4_").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_race_reservations_to_exactly_the_quota() {
    let (url, first) = store("two_node_race").await;
    let second = node(&url).await;
    contract::add_user(&*first, "racer", Some(10_000)).await;
    let nodes: [Arc<dyn QuotaLedger>; 2] = [first.clone(), second.clone()];
    let mut running = Vec::new();
    for index in 0..40 {
        let ledger = Arc::clone(&nodes[index % 2]);
        running.push(tokio::spawn(async move {
            let key = UploadKey {
                user: "racer".to_owned(),
                path: format!("file-{index}"),
            };
            ledger.reserve(&key, 1000, Duration::from_secs(3600)).await
        }));
    }
    let mut granted = Vec::new();
    for task in running {
        match task.await.expect("a reserving task") {
            Ok(reservation) => granted.push(reservation),
            Err(LedgerError::QuotaExceeded { .. }) => {}
            Err(other) => panic!("a reservation failed with {other}"),
        }
    }
    assert_eq!(
        granted.len(),
        10,
        "exactly the quota's worth across both nodes"
    );
    let usage = second.usage("racer").await.expect("usage");
    assert_eq!(usage.reserved, 10_000);
    assert_eq!(usage.free(), Some(0));
    for (index, reservation) in granted.into_iter().enumerate() {
        nodes[index % 2]
            .release(reservation, qftp_store::Change::default())
            .await
            .expect("either node releases");
    }
    assert_eq!(first.usage("racer").await.expect("usage").reserved, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_on_one_node_reaches_the_other() {
    let (url, first) = store("two_node_revocation").await;
    let second = node(&url).await;
    contract::add_user(&*first, "leaver", None).await;
    let token = [42u8; 32];
    let now = std::time::SystemTime::now();
    first
        .create_session("leaver", &token, now + Duration::from_secs(600))
        .await
        .expect("create_session");
    assert_eq!(
        second.check_session(&token, now).await.expect("check"),
        Some("leaver".to_owned())
    );
    let mut feed = second.revocations();
    feed.mark_unchanged();
    assert!(first.revoke_session(&token).await.expect("revoke"));
    tokio::time::timeout(Duration::from_secs(10), feed.changed())
        .await
        .expect("the other node hears of the revocation")
        .expect("the feed stays open");
    assert_eq!(
        second.check_session(&token, now).await.expect("check"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_connecting_at_once_migrate_once() {
    let url = qftp_testbed::shared_postgres()
        .create_database("migrate_at_once")
        .expect("database");
    let connecting: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url, PgOptions::default()).await })
        })
        .collect();
    for task in connecting {
        task.await
            .expect("connecting task")
            .expect("every node connects while others migrate");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_node_takes_over_live_and_dead_nodes_uploads() {
    let (url, first) = store("two_node_take_over").await;
    let second = node(&url).await;
    contract::add_user(&*first, "mover", Some(10_000)).await;
    let key = |path: &str| UploadKey {
        user: "mover".to_owned(),
        path: path.to_owned(),
    };

    // A live holder on the first node is asked, across nodes, to give way.
    let live = key("live");
    let holder = first
        .reserve(&live, 4000, Duration::from_secs(3600))
        .await
        .expect("reserve");
    let mut asked = first.give_way(&holder);
    let giving_way = {
        let first = first.clone();
        tokio::spawn(async move {
            asked.wait_for(|asked| *asked).await.expect("give-way feed");
            first
                .release(holder, qftp_store::Change::default())
                .await
                .expect("release");
        })
    };
    second
        .take_over(&live, Duration::from_secs(20))
        .await
        .expect("the first node's holder gives way");
    giving_way.await.expect("holder task");

    // A node that crashed (dropped without releasing) stops renewing; its
    // upload is taken over once the lease expired.
    let dead = key("dead");
    first
        .reserve(&dead, 3000, Duration::from_millis(300))
        .await
        .expect("reserve");
    drop(first);
    let mut attempts = 0;
    loop {
        match second.take_over(&dead, Duration::from_millis(200)).await {
            Ok(()) => break,
            Err(LedgerError::Busy) if attempts < 100 => attempts += 1,
            Err(other) => panic!("the dead node's upload is never taken over: {other}"),
        }
    }
    let resumed = second
        .reserve(&dead, 3000, Duration::from_secs(3600))
        .await
        .expect("the second node reserves the taken-over upload");
    assert_eq!(second.usage("mover").await.expect("usage").reserved, 3000);
    second
        .release(resumed, qftp_store::Change::default())
        .await
        .expect("release");
}
