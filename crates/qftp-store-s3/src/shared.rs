//! [`Shared`]: what every home and upload of one store uses: the ledger's
//! database, the bucket, the options.

use std::sync::Arc;

use object_store::ObjectStore as _;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use qftp_proto::path::RemotePath;
use qftp_store::{FileError, LedgerError};
use qftp_store_pg::PgStore;

use crate::bucket::Keys;
use crate::error::{from_ledger, storage};
use crate::options::S3Options;

/// The parts of a store its homes and uploads share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The ledger every change is charged to, and its database, which
    /// holds the namespace too.
    pub(crate) ledger: Arc<PgStore>,
    /// The bucket.
    pub(crate) objects: Arc<AmazonS3>,
    /// Where objects go in it.
    pub(crate) keys: Keys,
    /// The options.
    pub(crate) options: S3Options,
}

impl Shared {
    /// A database connection, failures named after `path`.
    pub(crate) async fn client(
        &self,
        path: &RemotePath,
    ) -> Result<deadpool_postgres::Object, FileError> {
        self.ledger
            .client()
            .await
            .map_err(|error| from_ledger(path, LedgerError::Store(error)))
    }

    /// Deletes `objects`, a missing one being no failure. Called after the
    /// transaction that stopped naming them: a failure here leaves orphans
    /// for the sweep, never a file without its blob.
    pub(crate) async fn delete_objects(
        &self,
        path: &RemotePath,
        objects: &[Path],
    ) -> Result<(), FileError> {
        for object in objects {
            match self.objects.delete(object).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(storage(path, error)),
            }
        }
        Ok(())
    }
}
