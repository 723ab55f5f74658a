//! How database failures become the stores' errors.

use qftp_store::{LedgerError, StoreError};

/// A database or pool failure as [`StoreError::Unavailable`], its cause
/// chain in the message.
pub(crate) fn unavailable(error: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(qftp_store::error::cause_chain(&error))
}

/// A database or pool failure as a ledger error.
pub(crate) fn ledger_unavailable(error: impl std::error::Error) -> LedgerError {
    LedgerError::Store(unavailable(error))
}

/// Whether `error` is PostgreSQL's unique violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// A byte count as PostgreSQL's `bigint`; larger counts are refused.
pub(crate) fn to_bigint(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{value} does not fit a bigint")))
}

/// A stored `bigint` as a count (negative values are corrupt).
pub(crate) fn from_bigint(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative count {value}")))
}
