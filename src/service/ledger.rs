//! Proving every unit is accounted for: each product's stock must equal the sum of its ledger,
//! and its reserved units the sum of its active reservations.

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, FromQueryResult, Statement};
use uuid::Uuid;

use crate::database::Database;
use crate::error::Result;

/// A product whose stored figures disagree with its ledger or its reservations.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct LedgerMismatch {
    /// The product.
    pub product_id: Uuid,
    /// Its SKU.
    pub sku: String,
    /// Stock as stored.
    pub stock: i64,
    /// Stock as the ledger adds it up.
    pub ledger_stock: i64,
    /// Reserved units as stored.
    pub reserved: i64,
    /// Units held by its active reservations.
    pub active_reserved: i64,
}

/// The result of a full check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerReport {
    /// How many products (deleted ones included) were checked.
    pub products_checked: u64,
    /// Every product that disagrees; empty when all is well.
    pub mismatches: Vec<LedgerMismatch>,
}

/// A product's stock at some past instant, rebuilt from the ledger.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct StockAtTime {
    /// The product.
    pub product_id: Uuid,
    /// Its SKU (as it is now).
    pub sku: String,
    /// The sum of its movements up to the instant.
    pub stock: i64,
}

#[derive(FromQueryResult)]
struct Count {
    count: i64,
}

/// Checks the ledger against the products.
#[derive(Clone, Debug)]
pub struct LedgerService {
    database: Database,
}

impl LedgerService {
    /// Checks the ledger of `database`.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Checks every product; each disagreement is reported.
    pub async fn verify(&self) -> Result<LedgerReport> {
        let connection = self.database.connection();
        let backend = connection.get_database_backend();
        let mismatches = LedgerMismatch::find_by_statement(Statement::from_string(
            backend,
            "SELECT p.id AS product_id, p.sku, p.stock, \
                    CAST(COALESCE(m.total, 0) AS BIGINT) AS ledger_stock, p.reserved, \
                    CAST(COALESCE(r.total, 0) AS BIGINT) AS active_reserved \
             FROM products p \
             LEFT JOIN (SELECT product_id, SUM(delta) AS total FROM stock_movements \
                        GROUP BY product_id) m ON m.product_id = p.id \
             LEFT JOIN (SELECT product_id, SUM(quantity) AS total FROM reservations \
                        WHERE status = 'ACTIVE' GROUP BY product_id) r ON r.product_id = p.id \
             WHERE p.stock <> COALESCE(m.total, 0) OR p.reserved <> COALESCE(r.total, 0) \
             ORDER BY p.id",
        ))
        .all(connection)
        .await?;
        let checked = Count::find_by_statement(Statement::from_string(
            backend,
            "SELECT CAST(COUNT(*) AS BIGINT) AS count FROM products",
        ))
        .one(connection)
        .await?
        .map_or(0, |row| row.count);
        Ok(LedgerReport {
            products_checked: u64::try_from(checked).unwrap_or(0),
            mismatches,
        })
    }

    /// Every product's stock at `at`, from the movements committed up to then.
    pub async fn stock_as_of(&self, at: DateTime<Utc>) -> Result<Vec<StockAtTime>> {
        let connection = self.database.connection();
        let backend = connection.get_database_backend();
        // SQLite keeps timestamps as text whose format need not match a bound parameter's,
        // so it compares them as Julian days.
        let (moved, created) = if backend == DbBackend::Postgres {
            ("m.created_at <= $1", "p.created_at <= $1")
        } else {
            (
                "julianday(m.created_at) <= julianday(?1)",
                "julianday(p.created_at) <= julianday(?1)",
            )
        };
        Ok(StockAtTime::find_by_statement(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT p.id AS product_id, p.sku, CAST(COALESCE(SUM(m.delta), 0) AS BIGINT) AS stock \
                 FROM products p \
                 LEFT JOIN stock_movements m ON m.product_id = p.id AND {moved} \
                 WHERE {created} \
                 GROUP BY p.id, p.sku ORDER BY p.id"
            ),
            [at.into()],
        ))
        .all(connection)
        .await?)
    }
}
