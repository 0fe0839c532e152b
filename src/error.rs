//! The one error type of the domain and its mapping to the contract's error codes.
//!
//! Services return [`Error`]; each transport turns it into its own shape (GraphQL
//! `extensions.code`, REST status and body) through [`Error::code`]. Only [`Error::Internal`]
//! carries details that must never reach a client: transports log it in full and answer with a
//! generic message.

use sea_orm::{DbErr, SqlErr};

/// Everything a service can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value breaks one of the contract's rules.
    #[error("{0}")]
    BadUserInput(String),

    /// The product does not exist or is deleted.
    #[error("product not found")]
    NotFound,

    /// Another live product has this SKU (compared case-insensitively).
    #[error("SKU '{0}' is already in use")]
    SkuConflict(String),

    /// A reduction asked for more units than are available.
    #[error("Not enough stock available")]
    InsufficientStock {
        /// Units that could have been taken.
        available: i64,
        /// Units asked for.
        requested: i64,
    },

    /// The caller's `expectedVersion` is not the stored version.
    #[error("the product was changed meanwhile: expected version {expected}, found {actual}")]
    VersionConflict {
        /// The version the caller based its change on.
        expected: i32,
        /// The version that is stored now.
        actual: i32,
    },

    /// The idempotency key was used before for a different request.
    #[error("this idempotency key was already used for a different request")]
    IdempotencyKeyReused,

    /// The change would take stock past the GraphQL `Int` range.
    #[error("stock cannot exceed {}", crate::domain::MAX_STOCK)]
    StockLimitExceeded,

    /// No valid credentials came with a request that needs them.
    #[error("{0}")]
    Unauthenticated(String),

    /// The caller's role does not allow the operation.
    #[error("{0}")]
    Forbidden(String),

    /// The database did not answer in time (pool exhausted or statement timeout).
    #[error("the database did not answer in time; try again")]
    Unavailable,

    /// Anything unexpected: database failures, broken invariants. Logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The contract's code for this error (`extensions.code` in GraphQL, `code` in REST).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadUserInput(_) => "BAD_USER_INPUT",
            Error::NotFound => "NOT_FOUND",
            Error::SkuConflict(_) => "SKU_CONFLICT",
            Error::InsufficientStock { .. } => "INSUFFICIENT_STOCK",
            Error::VersionConflict { .. } => "VERSION_CONFLICT",
            Error::StockLimitExceeded => "STOCK_LIMIT_EXCEEDED",
            Error::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Error::Unauthenticated(_) => "UNAUTHENTICATED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::Unavailable | Error::Internal(_) => "INTERNAL",
        }
    }

    /// Shorthand for [`Error::BadUserInput`].
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::BadUserInput(message.into())
    }

    /// Wraps an unexpected failure.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(error.into())
    }

    /// Turns a database error from writing `sku` into [`Error::SkuConflict`] when it is the
    /// live-SKU unique index that refused it, and into [`Error::Internal`] otherwise.
    pub fn from_sku_write(error: DbErr, sku: &str) -> Self {
        match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) if detail.contains("sku_key") => {
                Error::SkuConflict(sku.to_owned())
            }
            _ => Error::from(error),
        }
    }
}

impl From<DbErr> for Error {
    fn from(error: DbErr) -> Self {
        let timed_out = matches!(error, DbErr::ConnectionAcquire(_))
            // PostgreSQL's `statement_timeout` cancels with SQLSTATE 57014.
            || error.to_string().contains("canceling statement due to statement timeout");
        if timed_out {
            tracing::warn!(%error, "the database did not answer in time");
            return Error::Unavailable;
        }
        Error::Internal(Box::new(error))
    }
}

/// Result with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
