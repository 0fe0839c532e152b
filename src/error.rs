//! The one error type of the domain and its mapping to the API's documented error codes.
//!
//! Services return [`Error`]; each transport turns it into its own shape (GraphQL
//! `extensions.code`, REST status and body) through [`Error::code`]. [`Error::Internal`] and
//! [`Error::Unavailable`] carry causes that must never reach a client: transports log them in
//! full, once, with the request's id ([`Error::log_cause`]) and answer with a fixed message.

use std::sync::Arc;

use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// The cause of a failure of the system, kept for the log.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Everything a service can refuse or fail with. `Clone`, so one failure of a shared
/// transaction can be the answer of every request in it, cause and all.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// A value breaks one of the API's rules.
    #[error("{message}")]
    BadUserInput {
        /// What is wrong, for a person.
        message: String,
        /// The argument at fault, as a path into the arguments (`["input", "sku"]`); empty
        /// when no single argument is.
        field: Vec<String>,
    },

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

    /// Committing or releasing a reservation that is no longer `ACTIVE`; says which it is.
    #[error("{0}")]
    ReservationNotActive(String),

    /// Archiving a location that still holds stock or reserved units; says how much.
    #[error("{0}")]
    LocationNotEmpty(String),

    /// No valid credentials came with a request that needs them.
    #[error("{0}")]
    Unauthenticated(String),

    /// The caller's role does not allow the operation.
    #[error("{0}")]
    Forbidden(String),

    /// The database is unreachable, restarting or overloaded (busy, locked, pool exhausted,
    /// statement timeout). Retrying later is safe; nothing was applied, except where a
    /// connection was lost during `COMMIT` (retry with the same idempotency key then).
    #[error("the database is unavailable or overloaded; try again shortly")]
    Unavailable(#[source] Cause),

    /// The request ran past its time limit before its change committed: nothing was applied.
    #[error("the request took too long and was stopped before anything was applied")]
    Timeout,

    /// Anything unexpected: database failures, broken invariants. Logged, never shown.
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl Error {
    /// The API's code for this error (`extensions.code` in GraphQL, `code` in REST).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadUserInput { .. } => "BAD_USER_INPUT",
            Error::NotFound => "NOT_FOUND",
            Error::SkuConflict(_) => "SKU_CONFLICT",
            Error::InsufficientStock { .. } => "INSUFFICIENT_STOCK",
            Error::VersionConflict { .. } => "VERSION_CONFLICT",
            Error::StockLimitExceeded => "STOCK_LIMIT_EXCEEDED",
            Error::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Error::ReservationNotActive(_) => "RESERVATION_NOT_ACTIVE",
            Error::LocationNotEmpty(_) => "LOCATION_NOT_EMPTY",
            Error::Unauthenticated(_) => "UNAUTHENTICATED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::Unavailable(_) => "UNAVAILABLE",
            Error::Timeout => "TIMEOUT",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// Shorthand for [`Error::BadUserInput`] about no one argument.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::BadUserInput {
            message: message.into(),
            field: Vec::new(),
        }
    }

    /// [`Error::BadUserInput`] about the argument (or input field) `field`.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        Error::BadUserInput {
            message: message.into(),
            field: vec![field.to_owned()],
        }
    }

    /// The same error, about the argument `field` when it names none yet. Other errors are
    /// returned unchanged.
    #[must_use]
    pub fn on_field(mut self, name: &str) -> Self {
        if let Error::BadUserInput { field, .. } = &mut self
            && field.is_empty()
        {
            field.push(name.to_owned());
        }
        self
    }

    /// The same error, its argument path nested under `parent` (an input object argument's
    /// field `sku` becomes `["input", "sku"]`). Other errors are returned unchanged.
    #[must_use]
    pub fn under(mut self, parent: &str) -> Self {
        if let Error::BadUserInput { field, .. } = &mut self
            && !field.is_empty()
        {
            field.insert(0, parent.to_owned());
        }
        self
    }

    /// Wraps an unexpected failure.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(Arc::from(error.into()))
    }

    /// The database (or the pool in front of it) cannot serve the request now.
    pub fn unavailable(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Unavailable(Arc::from(error.into()))
    }

    /// Writes a failure of the system to the log with its whole cause chain; the tracing span
    /// of the request adds its id. Errors that answer the request itself (bad input, not found,
    /// ...) are not failures and log nothing.
    pub fn log_cause(&self) {
        match self {
            Error::Internal(cause) => {
                tracing::error!(code = self.code(), cause = %CauseChain(cause.as_ref()), "request failed");
            }
            Error::Unavailable(cause) => {
                tracing::warn!(code = self.code(), cause = %CauseChain(cause.as_ref()), "the database could not serve a request");
            }
            _ => {}
        }
    }

    /// Turns a database error from writing `sku` into [`Error::SkuConflict`] when it is the
    /// live-SKU unique index that refused it, and into [`Error::Internal`] otherwise.
    /// Whether this is a write refused because a live product already has the SKU (as
    /// [`Error::from_sku_write`] judges it).
    pub fn is_sku_taken(&self) -> bool {
        match self {
            Error::SkuConflict(_) => true,
            Error::Internal(cause) => cause
                .downcast_ref::<DbErr>()
                .and_then(DbErr::sql_err)
                .is_some_and(|error| {
                    matches!(error, SqlErr::UniqueConstraintViolation(detail) if detail.contains("sku_key"))
                }),
            _ => false,
        }
    }

    pub fn from_sku_write(error: DbErr, sku: &str) -> Self {
        match error.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) if detail.contains("sku_key") => {
                Error::SkuConflict(sku.to_owned())
            }
            _ => Error::from(error),
        }
    }
}

/// An error and every cause under it, as `outer: inner: innermost`.
pub struct CauseChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for CauseChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(current) = cause {
            write!(f, ": {current}")?;
            cause = current.source();
        }
        Ok(())
    }
}

impl From<DbErr> for Error {
    fn from(error: DbErr) -> Self {
        if is_unavailable(&error) {
            Error::Unavailable(Arc::new(error))
        } else {
            Error::Internal(Arc::new(error))
        }
    }
}

/// Whether a database error says "not now" rather than "never": the pool is exhausted, the
/// connection is gone, the server is restarting or shedding load, or a lock or statement ran
/// out of time. Judged by error kind and SQLSTATE / SQLite result code, never by message text.
fn is_unavailable(error: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    let runtime = match error {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(runtime) | DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    match sqlx.as_ref() {
        Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::Io(_) | Sqlx::WorkerCrashed => true,
        Sqlx::Database(database) => {
            let Some(code) = database.code() else {
                return false;
            };
            // Told apart by the error's type, not by the code's looks: PostgreSQL's SQLSTATEs
            // can be all digits too (57014, 40001, 53300).
            if database
                .try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                is_retryable_sqlstate(&code)
            } else {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with any extended code.
                code.parse::<i32>()
                    .is_ok_and(|sqlite_code| matches!(sqlite_code & 0xff, 5 | 6))
            }
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs that mean "try again": connection exceptions (class 08), shutdown and
/// cannot-connect-now (57P01..57P03), a cancelled statement (57014, `statement_timeout`), too
/// many connections (53300), out of resources (53xxx), a lock not available (55P03), and
/// serialization failures and deadlocks (40001, 40P01).
fn is_retryable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57014" | "57P01" | "57P02" | "57P03" | "55P03" | "40001" | "40P01"
        )
}

/// Result with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_sqlstates_are_recognised_by_code() {
        for code in [
            "08006", "08003", "57P01", "57014", "53300", "40001", "40P01",
        ] {
            assert!(is_retryable_sqlstate(code), "{code}");
        }
        for code in ["23505", "22021", "42P01", "XX000"] {
            assert!(!is_retryable_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn a_cause_chain_names_every_cause() {
        let inner = std::io::Error::other("connection reset");
        let outer = DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sea_orm::sqlx::Error::Io(
            inner,
        ))));
        let text = CauseChain(&outer).to_string();
        assert!(text.contains("connection reset"), "{text}");
        assert_eq!(Error::from(outer).code(), "UNAVAILABLE");
    }
}
