//! [`S3Store`]: the file store of one node, on the bucket and the
//! database every node shares.

use std::sync::Arc;

use qftp_store::{BoxFuture, FileError, FileStore, HomeFiles, StoreError, UserRecord};
use qftp_store_pg::PgStore;

use crate::bucket::Bucket;
use crate::home::S3Home;
use crate::options::{S3Options, SweepReport, SweepRules};
use crate::schema::migrate;
use crate::shared::Shared;
use crate::sweep::sweep;

/// The files of every home: the namespace in the database of `ledger`,
/// the content in a bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    shared: Arc<Shared>,
}

impl S3Store {
    /// A store on `bucket`, its namespace beside the users of `ledger`
    /// (whose schema it extends with its own, brought up to date here) and
    /// every change charged to `ledger`.
    pub async fn connect(
        ledger: Arc<PgStore>,
        bucket: &Bucket,
        options: S3Options,
    ) -> Result<S3Store, StoreError> {
        {
            let mut client = ledger.client().await?;
            migrate(&mut client).await?;
        }
        Ok(S3Store {
            shared: Arc::new(Shared {
                ledger,
                objects: bucket.client()?,
                keys: bucket.keys(),
                options,
            }),
        })
    }

    /// Aborts abandoned uploads and deletes orphan objects (see
    /// [`crate::sweep`](crate#the-sweep)). Any node may run it at any time;
    /// several at once do no harm.
    pub async fn sweep(&self, rules: SweepRules) -> Result<SweepReport, FileError> {
        sweep(&self.shared, rules).await
    }
}

impl FileStore for S3Store {
    fn home<'a>(
        &'a self,
        user: &'a UserRecord,
    ) -> BoxFuture<'a, Result<Arc<dyn HomeFiles>, FileError>> {
        Box::pin(async move {
            let home: Arc<dyn HomeFiles> = Arc::new(S3Home {
                shared: Arc::clone(&self.shared),
                user: user.name.clone(),
            });
            Ok(home)
        })
    }
}
