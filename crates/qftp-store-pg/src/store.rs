//! [`PgStore`]: the connection pool, the listener, and the options.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use qftp_store::StoreError;
use tokio_postgres::NoTls;

use crate::error::unavailable;
use crate::notify::{Feeds, listen};
use crate::options::PgOptions;
use crate::schema::migrate;

/// The stores of one node on a shared PostgreSQL database.
#[derive(Debug)]
pub struct PgStore {
    pub(crate) pool: Pool,
    pub(crate) feeds: Arc<Feeds>,
    pub(crate) options: PgOptions,
    /// The accounts whose homes this node measured (`LedgerUsage::measured`).
    pub(crate) measured_accounts: Mutex<HashSet<u64>>,
    listener: tokio::task::JoinHandle<()>,
}

impl PgStore {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`),
    /// brings the schema up to date and starts listening for other nodes'
    /// announcements. Must be called inside a tokio runtime, which then
    /// runs the listener.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| StoreError::Unavailable(format!("invalid database URL: {error}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(unavailable)?;
        {
            let mut client = pool.get().await.map_err(unavailable)?;
            migrate(&mut client).await?;
        }
        let feeds = Arc::new(Feeds::new());
        let listener = listen(url.to_owned(), Arc::clone(&feeds))
            .await
            .map_err(unavailable)?;
        Ok(PgStore {
            pool,
            feeds,
            options,
            measured_accounts: Mutex::new(HashSet::new()),
            listener,
        })
    }

    /// A connection from the pool, also for stores that keep tables of
    /// their own in the same database and change them in one transaction
    /// with the ledger ([`PgStore::settle_in`], [`PgStore::adjust_in`]).
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}
