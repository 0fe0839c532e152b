//! The database connection: pool settings per backend and the one way to begin a write.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::deadline::CommitGate;
use crate::error::{Error, Result};

/// How to reach the database and size its pool.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://...`.
    pub url: String,
    /// Most pooled connections.
    pub max_connections: u32,
    /// How long a request may wait for a pooled connection.
    pub acquire_timeout: Duration,
    /// PostgreSQL: the longest one statement may run.
    pub statement_timeout: Duration,
    /// How long a SQLite writer waits for the write lock before giving up.
    pub sqlite_busy_timeout: Duration,
}

/// A snapshot of the connection pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections running a query or transaction.
    pub in_use: u32,
    /// Connections waiting in the pool.
    pub idle: u32,
}

/// A pooled connection to PostgreSQL or SQLite.
#[derive(Clone, Debug)]
pub struct Database {
    connection: DatabaseConnection,
    statements: Arc<AtomicU64>,
    /// Write transactions may hold at most this many pooled connections at once, so that
    /// writers queued on a hot row's lock never take the connections readers and the readiness
    /// probe need.
    writers: Arc<Semaphore>,
    acquire_timeout: Duration,
}

/// How many of `max_connections` write transactions may hold at once: all but a fifth (at
/// least one) kept for reads, when the pool has room for both.
fn writer_slots(max_connections: u32) -> usize {
    let max = max_connections.max(1) as usize;
    if max <= 2 {
        max
    } else {
        max - (max / 5).max(1)
    }
}

/// A transaction that is going to write. It holds one of the writer slots until it ends, and
/// commits only if the request it serves has not been given up (see [`CommitGate`]).
pub struct WriteTransaction {
    transaction: DatabaseTransaction,
    _slot: OwnedSemaphorePermit,
}

impl Deref for WriteTransaction {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.transaction
    }
}

impl WriteTransaction {
    /// Commits, unless the request this task serves was given up or is past its deadline:
    /// then it rolls back and fails with `TIMEOUT`, so a request answered `TIMEOUT` never
    /// changed anything.
    pub async fn commit(self) -> Result<()> {
        self.claim_commit()?;
        self.commit_claimed().await
    }

    /// The first half of [`commit`](WriteTransaction::commit), for a caller that commits from
    /// another task: `TIMEOUT` if the request this task serves may no longer commit.
    pub fn claim_commit(&self) -> Result<()> {
        match CommitGate::current() {
            // Dropping the transaction rolls it back.
            Some(gate) if !gate.enter_commit() => Err(Error::Timeout),
            _ => Ok(()),
        }
    }

    /// The second half of [`commit`](WriteTransaction::commit): commits without asking again.
    pub async fn commit_claimed(self) -> Result<()> {
        Ok(self.transaction.commit().await?)
    }
}

impl Database {
    /// Connects (creating a SQLite file if missing) and tunes the pool for the backend.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(settings.url.clone());
        let busy_timeout = settings.sqlite_busy_timeout;
        options
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            // A statement log line per query costs more than the query on the hot path.
            .sqlx_logging(false)
            // A ping before every checkout doubles the round trips of short requests; broken
            // connections surface as errors and are replaced by the pool.
            .test_before_acquire(false)
            // A stuck statement fails with a clear error instead of hanging its request.
            .statement_timeout(settings.statement_timeout)
            // WAL lets readers run beside the single writer; writers queue on the busy timeout
            // instead of failing with "database is locked".
            .map_sqlx_sqlite_opts(move |sqlite| {
                sqlite
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(busy_timeout)
                    .foreign_keys(true)
            });
        let mut connection = sea_orm::Database::connect(options).await?;
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        connection.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("stockroom_db_statements_total").increment(1);
        });
        Ok(Self {
            connection,
            statements,
            writers: Arc::new(Semaphore::new(writer_slots(settings.max_connections))),
            acquire_timeout: settings.acquire_timeout,
        })
    }

    /// How many SQL statements this connection has run (tests use it to catch N+1 queries).
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// The pooled connection, for reads.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// Begins a transaction that is going to write.
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken up front, so a transaction
    /// that reads and then writes can never find its snapshot stale at the write (which SQLite
    /// reports as "database is locked" however long the busy timeout). On PostgreSQL the
    /// caller locks the rows it reads with `SELECT ... FOR UPDATE`.
    ///
    /// Waits for a writer slot first (at most the pool's acquire timeout, then `UNAVAILABLE`).
    pub async fn begin_write(&self) -> Result<WriteTransaction> {
        let slot = tokio::time::timeout(self.acquire_timeout, self.writers.clone().acquire_owned())
            .await
            .map_err(|_| Error::unavailable("every writer slot stayed busy"))?
            .map_err(|_| Error::unavailable("the database is shutting down"))?;
        let transaction = self
            .connection
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        Ok(WriteTransaction {
            transaction,
            _slot: slot,
        })
    }

    /// How many pooled connections are in use and idle right now.
    pub fn pool_status(&self) -> PoolStatus {
        let (size, idle) = if self.is_postgres() {
            let pool = self.connection.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        } else {
            let pool = self.connection.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX);
        PoolStatus {
            in_use: size.saturating_sub(idle),
            idle,
        }
    }

    /// Whether this is PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        matches!(
            self.connection.get_database_backend(),
            sea_orm::DbBackend::Postgres
        )
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.connection.ping().await
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        use migration::MigratorTrait;
        migration::Migrator::up(&self.connection, None).await
    }
}
