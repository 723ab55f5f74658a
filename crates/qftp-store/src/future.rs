//! The future every store method returns.
//!
//! Stores are used as trait objects (`Arc<dyn UserStore>`), so their async
//! methods return a boxed future rather than an `async fn`'s opaque type.
//! An implementation writes `Box::pin(async move { ... })`.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future borrowing for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
