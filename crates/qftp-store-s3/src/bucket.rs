//! [`Bucket`]: where the blobs are, and the keys they have there.
//!
//! Every object lives under the bucket's prefix: `PREFIX/blobs/ID` for a
//! file's content (immutable; a file that changes gets a new blob) and
//! `PREFIX/partials/ID` for the bytes kept of an interrupted small upload.
//! IDs are 32 random hex digits, so no two uploads on any nodes meet.

use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use qftp_store::StoreError;

/// An S3-compatible bucket and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The service's URL (`https://s3.example.net`, `http://127.0.0.1:8333`).
    pub endpoint: String,
    /// The region the service expects in signatures.
    pub region: String,
    /// The bucket's name.
    pub name: String,
    /// The key prefix all of qftp's objects live under (may be empty).
    pub prefix: String,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`; never printed.
    pub secret_access_key: String,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<secret>")
            .finish()
    }
}

impl Bucket {
    /// A client of the bucket (path-style requests; plain HTTP allowed
    /// only for an `http://` endpoint).
    pub(crate) fn client(&self) -> Result<Arc<AmazonS3>, StoreError> {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_region(&self.region)
            .with_bucket_name(&self.name)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_allow_http(self.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .build()
            .map(Arc::new)
            .map_err(|error| {
                StoreError::Unavailable(format!("object store {}: {error}", self.endpoint))
            })
    }

    /// The keys of this bucket's objects.
    pub(crate) fn keys(&self) -> Keys {
        Keys {
            prefix: self.prefix.trim_matches('/').to_owned(),
        }
    }
}

/// The keys of blobs and partials under a prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// The two kinds of object the store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectKind {
    /// A file's content.
    Blob,
    /// The bytes kept of an interrupted small upload.
    Partial,
}

impl ObjectKind {
    fn folder(self) -> &'static str {
        match self {
            ObjectKind::Blob => "blobs",
            ObjectKind::Partial => "partials",
        }
    }
}

impl Keys {
    /// The folder of `kind`'s objects.
    pub(crate) fn folder(&self, kind: ObjectKind) -> Path {
        if self.prefix.is_empty() {
            Path::from(kind.folder())
        } else {
            Path::from(format!("{}/{}", self.prefix, kind.folder()))
        }
    }

    /// The object of `kind` with the id `id`.
    pub(crate) fn object(&self, kind: ObjectKind, id: &str) -> Path {
        self.folder(kind).child(id)
    }
}

/// A fresh blob id: 32 hex digits from the system's random source.
pub(crate) fn new_blob_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}
