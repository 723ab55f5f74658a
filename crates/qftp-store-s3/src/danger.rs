//! Sharp tools for tests of crash safety.
//!
//! [`BeforeDatabaseCommit`] runs inside [`qftp_store::OpenUpload::commit`]
//! after the object store completed the file's object and before the
//! database transaction that makes it visible and charges it. A test gives
//! it a future that never ends and drops the commit there, which is what a
//! node's crash at that moment looks like: the object exists, nothing
//! names it. Nothing but such a test sets it.

use std::sync::Arc;

use qftp_store::BoxFuture;

/// A pause between an object's completion and its database commit.
#[derive(Clone)]
pub struct BeforeDatabaseCommit(pub Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>);

impl std::fmt::Debug for BeforeDatabaseCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforeDatabaseCommit")
    }
}
